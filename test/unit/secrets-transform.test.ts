import fc from 'fast-check';
import { compileSed } from '../../runtime/secrets/sed';
import {
  jsonPathProblem,
  MAX_VALUE_BYTES,
  TransformError,
  transformChain,
  type TransformStep,
} from '../../runtime/secrets/transform';

const sed = (script: string): TransformStep => ({ kind: 'sed', script, sed: compileSed(script) });
const pathSed = (path: string, script: string): TransformStep => ({
  kind: 'path-sed',
  path,
  script,
  sed: compileSed(script),
});
const pathValue = (path: string, value: unknown): TransformStep => ({
  kind: 'path-value',
  path,
  valueJson: JSON.stringify(value),
});

const SECRET = 'hunter2-secret-value';

function failureOf(steps: readonly TransformStep[], value: string): TransformError {
  try {
    transformChain(steps)(value);
  } catch (error) {
    expect(error).toBeInstanceOf(TransformError);
    expect((error as Error).message).not.toContain(SECRET);
    return error as TransformError;
  }
  throw new Error('expected the transform to fail');
}

describe('transformChain', () => {
  it('gives all the steps of one value one time budget (2 s), not one each', () => {
    // Each step takes 600 ms (a fake clock): alone well inside the budget, four of them past it.
    jest.useFakeTimers();
    try {
      const script = 's/[ab]/b/g';
      const apply = compileSed(script);
      const slowStep: TransformStep = {
        kind: 'sed',
        script,
        sed: (text) => {
          jest.advanceTimersByTime(600);
          return apply(text);
        },
      };
      expect(transformChain([slowStep, slowStep, slowStep])('aaaa')).toBe('bbbb');
      const failure = failureOf([slowStep, slowStep, slowStep, slowStep], 'aaaa');
      expect(failure.message).toBe('transform step 3: the substitution ran past its 2000 ms budget');
    } finally {
      jest.useRealTimers();
    }
  });

  it('is the identity without steps', () => {
    expect(transformChain([])(`{ "a" : ${SECRET} }`)).toBe(`{ "a" : ${SECRET} }`);
  });

  it('applies the steps in order: whole value, strings a path selects, values a path replaces', () => {
    const value = JSON.stringify({
      db: { host: 'db.usw2.internal', port: 5432, user: 'app' },
      url: 'https://us-west-2',
    });
    const chain = transformChain([
      sed('s/us-west-2/us-east-1/g'),
      pathSed('$.db.host', 's/usw2/use1/'),
      pathValue('$.db.port', 5433),
      pathValue('$.db.extra', { nested: [1, 'two'] }),
    ]);
    expect(JSON.parse(chain(value))).toEqual({
      db: { host: 'db.use1.internal', port: 5433, user: 'app' },
      url: 'https://us-east-1',
    });
  });

  it('applies a path step to every location it selects, each once', () => {
    const value = JSON.stringify({ a: ['x', 'xx', { b: 'x' }], c: { b: 'xb' } });
    expect(JSON.parse(transformChain([pathSed('$..b', 's/x/y/')])(value))).toEqual({
      a: ['x', 'xx', { b: 'y' }],
      c: { b: 'yb' },
    });
    expect(JSON.parse(transformChain([pathSed('$.a[0,1]', 's/^/+/')])(value)).a.slice(0, 2)).toEqual([
      '+x',
      '+xx',
    ]);
    expect(JSON.parse(transformChain([pathSed("$['c','c'].b", 's/^/+/')])(value)).c).toEqual({ b: '+xb' });
    expect(JSON.parse(transformChain([pathSed('$.a[0:2]', 's/$/!/')])(value)).a).toEqual([
      'x!',
      'xx!',
      { b: 'x' },
    ]);
    expect(JSON.parse(transformChain([pathValue('$.a[*]', 0)])(value)).a).toEqual([0, 0, 0]);
  });

  it('leaves the value as it was when the path selects nothing, and normalises its JSON when it does', () => {
    const value = '{ "a" : 1,\n  "b": "x" }';
    expect(transformChain([pathValue('$.missing', 2), pathSed('$.c[3]', 's/x/y/')])(value)).toBe(value);
    expect(transformChain([pathSed('$.b', 's/x/y/')])(value)).toBe('{"a":1,"b":"y"}');
  });

  it('replaces the whole document with the path $', () => {
    expect(transformChain([pathValue('$', { fresh: true })])('[1, 2]')).toBe('{"fresh":true}');
    expect(transformChain([pathSed('$', 's/a/b/')])('"aa"')).toBe('"ba"');
    expect(transformChain([pathValue('$', 'x')])('0')).toBe('"x"');
    expect(transformChain([pathValue('$.a', 'x')])('null')).toBe('null');
  });

  it('gives each replaced location a fresh copy of the value', () => {
    const chain = transformChain([pathValue('$.*', { s: 'a' }), pathSed('$.first.s', 's/a/changed/')]);
    expect(JSON.parse(chain('{"first":0,"second":0}'))).toEqual({
      first: { s: 'changed' },
      second: { s: 'a' },
    });
    expect(JSON.parse(chain('{"first":0,"second":0}'))).toEqual({
      first: { s: 'changed' },
      second: { s: 'a' },
    });
  });

  it('writes __proto__ as an own key, and never follows a prototype', () => {
    const chain = transformChain([
      pathValue('$.__proto__', { polluted: true }),
      pathSed('$.constructor', 's/^/x/'),
    ]);
    expect(chain('{"__proto__":{"a":1},"constructor":"c"}')).toBe(
      '{"__proto__":{"polluted":true},"constructor":"xc"}',
    );
    expect(chain('{"a":1}')).toBe('{"a":1}');
    expect(
      transformChain([pathValue('$.a.length', 0), pathValue('$.s.length', 0)])('{"a":[1,2],"s":"ab"}'),
    ).toBe('{"a":[1,2],"s":"ab"}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('fails a path step on a value that is not JSON, without the value', () => {
    const error = failureOf([sed('s/a/b/'), pathSed('$.x', 's/a/b/')], `not json ${SECRET}`);
    expect(error.message).toBe('transform step 1 (path $.x): the value is not a JSON document');
    expect(error).toMatchObject({ step: 1, path: '$.x', code: 'secret-transform' });
  });

  it('fails a sed path step that selects something other than a string', () => {
    expect(failureOf([pathSed('$.a', 's/a/b/')], JSON.stringify({ a: { SECRET } })).message).toBe(
      'transform step 0 (path $.a): expected the path to select strings only; it selects an object',
    );
    expect(failureOf([pathSed('$.*', 's/a/b/')], JSON.stringify({ s: SECRET, n: 5 })).message).toBe(
      'transform step 0 (path $.*): expected the path to select strings only; it selects a number',
    );
  });

  it(`fails a step whose result is over ${MAX_VALUE_BYTES} bytes`, () => {
    const error = failureOf([sed('s/./&&/g')], SECRET.repeat(2000));
    expect(error.message).toBe(
      "transform step 0: the result is larger than 65536 bytes (a secret's maximum)",
    );
  });

  it('fails cleanly on a document too deep to walk', () => {
    const deep = `${'['.repeat(20_000)}"${SECRET}"${']'.repeat(20_000)}`;
    const error = failureOf([pathSed('$..*', 's/a/b/')], deep);
    expect(error.message).toMatch(
      /^transform step 0 \(path \$\.\.\*\): (the path could not be evaluated|the document could not be written back) \(RangeError\)$/,
    );
  });

  it('keeps a JSON document valid whatever a path step writes, or fails with a TransformError (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (document, replacement) => {
        const text = JSON.stringify({ root: document, s: 'x' });
        const script = `s/.*/${replacement.replace(/[\\/&\n]/g, '')}/`;
        let out: string;
        try {
          out = transformChain([pathSed('$..s', script)])(text);
        } catch (error) {
          expect(error).toBeInstanceOf(TransformError);
          expect((error as Error).message).toMatch(
            /^transform step 0 \(path \$\.\.s\): expected the path to select strings only/,
          );
          return;
        }
        expect(() => JSON.parse(out) as unknown).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });
});

describe('jsonPathProblem', () => {
  it('accepts the supported forms', () => {
    for (const path of [
      '$',
      '$.a',
      '$.db.host',
      '$..x',
      '$.*',
      '$..*',
      '$.a[0]',
      '$.a[0,2]',
      '$.a[1:]',
      '$.a[-2:]',
      '$.a[::2]',
      "$['a b']",
      "$['a.b']",
      '$["x"]',
      "$['a','b']",
      '$.a[*]',
      '$..[0]',
      '$.a-b',
      '$.__proto__',
    ])
      expect([path, jsonPathProblem(path)]).toEqual([path, undefined]);
  });

  it('refuses what it does not support, filter and script expressions first', () => {
    const cases: [string, string][] = [
      ['', 'expected a JSON path starting with $ (for example $.db.host)'],
      ['a.b', 'expected a JSON path starting with $ (for example $.db.host)'],
      ['$..[?(@.x)]', 'expected no filter or script expression ([?(...)], [(...)]): they are not supported'],
      [
        '$[?(@.price < 10)]',
        'expected no filter or script expression ([?(...)], [(...)]): they are not supported',
      ],
      [
        '$[(@.length-1)]',
        'expected no filter or script expression ([?(...)], [(...)]): they are not supported',
      ],
      ['$.a^', 'expected no parent (^) or property name (~) operator: they are not supported'],
      ['$.*~', 'expected no parent (^) or property name (~) operator: they are not supported'],
      ['$..@string()', 'expected no type selector (@string() ...): they are not supported'],
      ['$.a[', "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 4"],
      ['$a', "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 2"],
      ['$.', "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 3"],
      ['$[]', "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 2"],
      ["$['a;b']", "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 2"],
      ['$.a[-1]', "expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 4"],
      ["$['..']", 'expected a quoted name that is not made of dots only'],
      ['$..', 'expected a name, * or [...] after ..'],
      [`$.${'a'.repeat(1024)}`, 'expected at most 1024 characters'],
    ];
    for (const [path, problem] of cases) expect([path, jsonPathProblem(path)]).toEqual([path, problem]);
  });

  it('never evaluates code, even on a path it would refuse', () => {
    const marker = globalThis as { evaluated?: unknown };
    jsonPathProblem('$[?(globalThis.evaluated = 1)]');
    jsonPathProblem("$[(globalThis.evaluated = 'x')]");
    expect(marker.evaluated).toBeUndefined();
  });

  it('is applied with eval off: a filter expression that got past validation fails instead of running', () => {
    const marker = globalThis as { evaluated?: unknown };
    const path = '$[?(globalThis.evaluated = 1)]';
    expect(failureOf([pathValue(path, 0)], '{"a":{}}').message).toBe(
      `transform step 0 (path ${path}): the path could not be evaluated (Error)`,
    );
    expect(marker.evaluated).toBeUndefined();
  });
});
