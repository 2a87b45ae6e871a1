import fc from 'fast-check';
import { NameMap, NameMappingError, secretNameProblem } from '../../runtime/secrets/names';

const compile = (entries: Record<string, string>) => NameMap.compile(Object.entries(entries));

function mapOf(entries: Record<string, string>): NameMap {
  const { map, problems } = compile(entries);
  expect(problems).toEqual([]);
  return map;
}

const INVALID_NAME = 'expected a Secrets Manager name: 1 to 512 ASCII letters, digits and /_+=.@-';
const ARN_SUFFIX =
  'expected a name not ending in a hyphen and six characters (Secrets Manager takes them for the random suffix of an ARN)';

describe('secretNameProblem', () => {
  it('accepts 1 to 512 ASCII letters, digits and /_+=.@-', () => {
    for (const name of ['a', 'app/prod/db', 'A-Z_a+z=0.9@x/-', 'x'.repeat(512), 'db-abcde', 'db-abcdefg'])
      expect([name, secretNameProblem(name)]).toEqual([name, undefined]);
  });

  it('refuses empty, longer, and other characters', () => {
    for (const name of ['', 'x'.repeat(513), 'a b', 'café', 'a*', 'a\\b', 'a,b'])
      expect([name, secretNameProblem(name)]).toEqual([name, INVALID_NAME]);
  });

  it('refuses a hyphen and six characters at the end: Secrets Manager would take them for an ARN suffix', () => {
    for (const name of ['db-backup', 'db-abcdef', 'x-AB12cd', 'x-ab/d.f', 'a--_____'])
      expect([name, secretNameProblem(name)]).toEqual([name, ARN_SUFFIX]);
  });
});

describe('NameMap', () => {
  it('maps exact names first, then the wildcard with the longest literal part', () => {
    const map = mapOf({
      'app/*': 'a/*',
      'app/prod/*': 'p/*',
      '*/db': 'd/*',
      'app/prod/db': 'exact',
      'app/*/db': 'mid/*',
    });
    expect(map.map('app/prod/db')).toEqual({
      name: 'exact',
      mapping: { pattern: 'app/prod/db', target: 'exact' },
    });
    expect(map.map('app/prod/x/db').name).toBe('p/x/db');
    expect(map.map('app/test/db').name).toBe('mid/test');
    expect(map.map('app/test/x').name).toBe('a/test/x');
    expect(map.map('other/db').name).toBe('d/other');
  });

  it('keeps unmapped names, and lets * match the empty text', () => {
    const map = mapOf({ 'app/*': 'dr/*x' });
    expect(map.map('other')).toEqual({ name: 'other', mapping: undefined });
    expect(map.map('app/').name).toBe('dr/x');
  });

  it('refuses a pattern mapped onto one fixed name: its secrets would overwrite each other', () => {
    expect(compile({ 'one/*': 'fixed' }).problems).toEqual([
      {
        key: 'one/*',
        rule: 'target: expected a * (a pattern mapped onto one name would make its secrets overwrite each other)',
      },
    ]);
  });

  it('throws a NameMappingError naming the pattern and the name when a wildcard gives an invalid name', () => {
    const map = mapOf({ 'app/*': 'dr/*' });
    expect(() => map.map('app/db-abcdef')).toThrow(NameMappingError);
    expect(() => map.map('app/db-abcdef')).toThrow(
      `names["app/*"]: "app/db-abcdef" maps to an invalid name: ${ARN_SUFFIX}`,
    );
    expect(() => map.map(`app/${'x'.repeat(510)}`)).toThrow(
      /^names\["app\/\*"\]: "app\/x{94}… maps to an invalid name: expected a Secrets Manager name/,
    );
  });

  it('reports each bad entry by its key, and ambiguous wildcards together', () => {
    expect(
      compile({
        'a/*/b/*': 'x',
        '': 'x',
        'a b': 'x',
        exact: 'with*star',
        'w/*': 'two/*/*',
        'v/*': 'bad chars/*',
        'u/*': 'ok/*',
        '*/u': 'ok2/*',
      }).problems,
    ).toEqual([
      {
        key: 'a/*/b/*',
        rule: 'expected a secret name or a pattern with one * (1 to 512 ASCII letters, digits and /_+=.@- besides it)',
      },
      {
        key: '',
        rule: 'expected a secret name or a pattern with one * (1 to 512 ASCII letters, digits and /_+=.@- besides it)',
      },
      {
        key: 'a b',
        rule: 'expected a secret name or a pattern with one * (1 to 512 ASCII letters, digits and /_+=.@- besides it)',
      },
      { key: 'exact', rule: 'target: expected no * (the pattern has none to fill it with)' },
      { key: 'w/*', rule: 'target: expected at most one *, which is what the pattern matched' },
      { key: 'v/*', rule: 'target: expected at most 511 ASCII letters, digits and /_+=.@- besides its *' },
      {
        key: undefined,
        rule: 'expected wildcard patterns that no name matches equally well: "*/u" and "u/*" both match "u/u" with 2 literal characters each (make one of them more specific)',
      },
    ]);
  });

  it('accepts equally long wildcards that no name can match both', () => {
    expect(
      compile({ 'app/prod/*': 'a/*', 'app/test/*': 'b/*', '*.json': 'c/*', '*.yaml': 'd/*' }).problems,
    ).toEqual([]);
  });

  it('keeps __proto__ and constructor as ordinary names', () => {
    const map = mapOf({ ['__proto__']: 'constructor', constructor: '__proto__', 'toString*': 'x*' });
    expect(map.map('__proto__').name).toBe('constructor');
    expect(map.map('constructor').name).toBe('__proto__');
    expect(map.map('toStringy').name).toBe('xy');
    expect(map.map('hasOwnProperty').mapping).toBeUndefined();
  });

  const chars = fc.constantFrom('a', 'b', '/', '.', '_');
  const text = (maxLength: number) => fc.array(chars, { maxLength }).map((c) => c.join(''));

  it('carries the matched middle over, and back with the inverse mapping (property)', () => {
    fc.assert(
      fc.property(
        text(6),
        text(6),
        text(6),
        text(6),
        text(20),
        (prefix, suffix, targetPrefix, targetSuffix, middle) => {
          fc.pre(targetPrefix.length + targetSuffix.length > 0);
          const forward = mapOf({ [`${prefix}*${suffix}`]: `${targetPrefix}*${targetSuffix}` });
          const backward = mapOf({ [`${targetPrefix}*${targetSuffix}`]: `${prefix}*${suffix}` });
          const name = `${prefix}${middle}${suffix}`;
          fc.pre(secretNameProblem(name) === undefined);
          const mapped = forward.map(name);
          expect(mapped.name).toBe(`${targetPrefix}${middle}${targetSuffix}`);
          expect(mapped.mapping?.pattern).toBe(`${prefix}*${suffix}`);
          expect(backward.map(mapped.name).name).toBe(name);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never leaves two wildcards matching a name equally well, and shows a name both match when refusing (property)', () => {
    const pattern = fc.tuple(text(3), text(3)).map(([prefix, suffix]) => `${prefix}*${suffix}`);
    const matches = (p: string, name: string) => {
      const [prefix = '', suffix = ''] = p.split('*');
      return name.length >= prefix.length + suffix.length && name.startsWith(prefix) && name.endsWith(suffix);
    };
    fc.assert(
      fc.property(
        fc.uniqueArray(pattern, { minLength: 2, maxLength: 5 }),
        fc.array(text(8), { maxLength: 30 }),
        (patterns, names) => {
          const { map, problems } = NameMap.compile(patterns.map((p, i) => [p, `t${i}/*`]));
          for (const problem of problems) {
            const [, a, b, example] = /"(.*)" and "(.*)" both match "(.*)" with/.exec(problem.rule) ?? [];
            expect([a, b, example].every((s) => s !== undefined)).toBe(true);
            expect([
              matches(a as string, example as string),
              matches(b as string, example as string),
            ]).toEqual([true, true]);
          }
          if (problems.length > 0) return;
          for (const name of names) {
            const literal = (p: string) => p.length - 1;
            const best = Math.max(-1, ...patterns.filter((p) => matches(p, name)).map(literal));
            const tied = patterns.filter((p) => matches(p, name) && literal(p) === best);
            expect(tied.length).toBeLessThanOrEqual(1);
            if (tied.length === 0) continue;
            let chosen: string | undefined;
            try {
              chosen = map.map(name).mapping?.pattern;
            } catch (error) {
              if (!(error instanceof NameMappingError)) throw error;
              chosen = error.pattern;
            }
            expect(chosen).toBe(tied[0]);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
