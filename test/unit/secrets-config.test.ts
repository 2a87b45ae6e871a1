import fc from 'fast-check';
import {
  MAX_CONFIG_BYTES,
  parseReplicatorConfig,
  ReplicatorConfigError,
  type Destination,
  type ReplicatorConfig,
} from '../../runtime/secrets/config';
import { globProblem } from '../../runtime/secrets/filters';
import { arnWildcard, globWildcard, iamScopeOf, wildcardMatches } from '../../runtime/secrets/iam-scope';
import { NameMappingError } from '../../runtime/secrets/names';

const ROLE = 'arn:aws:iam::222222222222:role/replicas';
const KEY_ARN = 'arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const SECRET_VALUE = 'hunter2-path-step-value';
const SECRET_EXTERNAL_ID = 'ext-id-do-not-print';

/** The document of the design, with a target name Secrets Manager does not take for an ARN suffix. */
const EXAMPLE = {
  defaults: {
    filters: [
      {
        match: 'app/prod/*',
        tags: { replicate: 'true' },
        transform: [
          { sed: 's/us-west-2/us-east-1/g' },
          { path: '$.db.host', sed: 's/usw2/use1/' },
          { path: '$.db.port', value: 5433 },
        ],
      },
    ],
    names: { 'app/prod/db': 'app/prod/db-replica', 'app/prod/*': 'app/dr/*' },
    deletePolicy: 'ignore',
    kmsKeyId: 'alias/replicas',
    twoWay: false,
  },
  exclude: ['infra/*'],
  destinations: [
    {
      name: 'dr-east',
      region: 'us-east-1',
      roleArn: ROLE,
      externalId: 'abc',
      kmsKeyId: KEY_ARN,
      filters: { 'app/prod/*': 's/us-west-2/us-east-1/g', 'db/prod/*': '' },
      names: {},
      deletePolicy: { propagateAfterDays: 7 },
      twoWay: true,
    },
    { region: 'eu-west-1' },
  ],
};

const parse = (document: unknown): ReplicatorConfig => parseReplicatorConfig(JSON.stringify(document));

/** One destination in us-east-1 with these fields (and a catch-all filter unless given). */
const withDestination = (fields: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({
  destinations: [{ region: 'us-east-1', filters: { '**': '' }, ...fields }],
  ...rest,
});

function issuesOf(text: string): readonly string[] {
  try {
    parseReplicatorConfig(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ReplicatorConfigError);
    const issues = (error as ReplicatorConfigError).issues;
    for (const secret of [SECRET_VALUE, SECRET_EXTERNAL_ID]) {
      expect((error as Error).message).not.toContain(secret);
      for (const issue of issues) expect(issue).not.toContain(secret);
    }
    return issues;
  }
  throw new Error('expected the configuration to be refused');
}

const issuesOfDocument = (document: unknown): readonly string[] => issuesOf(JSON.stringify(document));

const destination = (config: ReplicatorConfig, i: number): Destination =>
  config.destinations[i] as Destination;

describe('parseReplicatorConfig: the model', () => {
  it('reads the documented example, defaults applied field by field as a whole', () => {
    const config = parse(EXAMPLE);
    const [east, west] = [destination(config, 0), destination(config, 1)];
    expect(east).toMatchObject({
      name: 'dr-east',
      region: 'us-east-1',
      roleArn: ROLE,
      externalId: 'abc',
      kmsKeyId: KEY_ARN,
      deletePolicy: { kind: 'grace', days: 7 },
      twoWay: true,
    });
    expect(west).toMatchObject({
      name: 'eu-west-1',
      region: 'eu-west-1',
      kmsKeyId: 'alias/replicas',
      deletePolicy: { kind: 'ignore' },
      twoWay: false,
    });
    expect(west.roleArn).toBeUndefined();
    expect(config.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('routes by the first matching rule, with its transform and name mapping', () => {
    const config = parse(EXAMPLE);
    const [east, west] = [destination(config, 0), destination(config, 1)];
    const value = JSON.stringify({ db: { host: 'db.usw2.internal', port: 5432 }, url: 'https://us-west-2' });

    const viaDefaults = west.route('app/prod/db', { replicate: 'true' });
    expect(viaDefaults).toMatchObject({ targetName: 'app/prod/db-replica', rule: 'defaults.filters[0]' });
    expect(JSON.parse(viaDefaults?.transform(value) ?? '')).toEqual({
      db: { host: 'db.use1.internal', port: 5433 },
      url: 'https://us-east-1',
    });
    expect(west.route('app/prod/api', { replicate: 'true' })?.targetName).toBe('app/dr/api');
    expect(west.route('app/prod/api', { replicate: 'false' })).toBeUndefined();
    expect(west.route('app/prod/api', {})).toBeUndefined();

    // The destination's own filters and its empty names replace the defaults' as a whole.
    const own = east.route('app/prod/db', {});
    expect(own).toMatchObject({ targetName: 'app/prod/db', rule: 'filters[0]' });
    expect(own?.transform('us-west-2')).toBe('us-east-1');
    const untransformed = east.route('db/prod/main', {});
    expect(untransformed).toMatchObject({ targetName: 'db/prod/main', rule: 'filters[1]' });
    expect(untransformed?.transform(value)).toBe(value);
    expect(east.route('other/x', {})).toBeUndefined();
  });

  it('leaves out excluded names whatever the filters say', () => {
    const config = parse(withDestination({ filters: { '**': '' } }, { exclude: ['infra/*', 'tmp/**'] }));
    const only = destination(config, 0);
    expect(only.route('infra/x', {})).toBeUndefined();
    expect(only.route('tmp/a/b', {})).toBeUndefined();
    expect(only.route('infra/x/y', {})?.targetName).toBe('infra/x/y');
  });

  it('matches globs as picomatch does with dot: * stops at /, ** crosses it, dot names match', () => {
    const config = parse(withDestination({ filters: { 'a/*': '', 'b/**': '' } }));
    const only = destination(config, 0);
    expect(only.route('a/x', {})).toBeDefined();
    expect(only.route('a/.hidden', {})).toBeDefined();
    expect(only.route('a/x/y', {})).toBeUndefined();
    expect(only.route('b/x/y/z', {})).toBeDefined();
  });

  it('matches tags exactly, or by presence with *', () => {
    const config = parse(
      withDestination({
        filters: [
          { match: '**', tags: { team: '*', tier: 'gold' }, transform: 's/a/G/' },
          { match: '**', tags: { team: '*' }, transform: 's/a/T/' },
        ],
      }),
    );
    const only = destination(config, 0);
    expect(only.route('x', { team: 'a', tier: 'gold' })?.rule).toBe('filters[0]');
    expect(only.route('x', { team: '', tier: 'silver' })?.rule).toBe('filters[1]');
    expect(only.route('x', { tier: 'gold' })).toBeUndefined();
  });

  it('names destinations by their region, after the role account when they assume one', () => {
    const config = parse({
      defaults: { filters: { '**': '' } },
      destinations: [
        { region: 'us-east-1' },
        { region: 'us-east-1', roleArn: ROLE },
        { region: 'us-east-2', name: 'x' },
      ],
    });
    expect(config.destinations.map((d) => d.name)).toEqual(['us-east-1', '222222222222/us-east-1', 'x']);
  });

  it('takes delete policies: propagate, ignore (the default) and a grace period', () => {
    const policies = [
      'propagate',
      'ignore',
      { propagateAfterDays: 1 },
      { propagateAfterDays: 365 },
      undefined,
    ];
    const config = parse({
      defaults: { filters: { '**': '' } },
      destinations: policies.map((deletePolicy, i) => ({ region: `us-east-${i + 1}`, deletePolicy })),
    });
    expect(config.destinations.map((d) => d.deletePolicy)).toEqual([
      { kind: 'propagate' },
      { kind: 'ignore' },
      { kind: 'grace', days: 1 },
      { kind: 'grace', days: 365 },
      { kind: 'ignore' },
    ]);
  });

  it('keeps the short form of filters in the order written, integer-like globs included', () => {
    const text =
      '{"destinations":[{"region":"us-east-1","filters":{"9":"s/x/nine/","**":"s/x/any/","1":"s/x/one/"}}]}';
    const only = destination(parseReplicatorConfig(text), 0);
    expect(only.route('9', {})?.rule).toBe('filters[0]');
    expect(only.route('1', {})?.rule).toBe('filters[1]');
    expect(only.route('1', {})?.transform('x')).toBe('any');
  });

  it('takes __proto__ and constructor as ordinary keys of filters, names and tags, polluting nothing', () => {
    const text = JSON.stringify({
      destinations: [
        {
          region: 'us-east-1',
          filters: [
            { match: '__proto__', tags: { ['__proto__']: '*', constructor: 'x' } },
            { match: 'constructor' },
          ],
          names: {},
        },
        {
          region: 'us-east-2',
          filters: { constructor: 's/a/b/', toString: '' },
          names: { constructor: '__proto__', toString: 'valueOf' },
        },
      ],
    }).replace('"names":{}', '"names":{"__proto__":"prototype"}');
    const config = parseReplicatorConfig(text);
    const [first, second] = [destination(config, 0), destination(config, 1)];
    const tags = Object.fromEntries([
      ['__proto__', 'v'],
      ['constructor', 'x'],
    ]) as Record<string, string>;
    expect(first.route('__proto__', tags)?.targetName).toBe('prototype');
    expect(first.route('__proto__', {})).toBeUndefined();
    expect(first.route('constructor', {})?.rule).toBe('filters[1]');
    expect(second.route('constructor', {})).toMatchObject({ targetName: '__proto__', rule: 'filters[0]' });
    expect(second.route('toString', {})?.targetName).toBe('valueOf');
    expect(second.route('hasOwnProperty', {})).toBeUndefined();
    expect(({} as Record<string, unknown>).prototype).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('does not show the external id when a destination is logged, and still gives it', () => {
    const only = destination(parse(withDestination({ roleArn: ROLE, externalId: SECRET_EXTERNAL_ID })), 0);
    expect(only.externalId).toBe(SECRET_EXTERNAL_ID);
    expect(JSON.stringify(only)).not.toContain(SECRET_EXTERNAL_ID);
  });

  it('hashes the configuration canonically: formatting and defaults spelled out do not change it', () => {
    const compact = parse(EXAMPLE);
    const pretty = parseReplicatorConfig(JSON.stringify(EXAMPLE, null, 2));
    expect(pretty.hash).toBe(compact.hash);
    const spelledOut = parse({
      ...EXAMPLE,
      destinations: [EXAMPLE.destinations[0], { region: 'eu-west-1', twoWay: false, deletePolicy: 'ignore' }],
    });
    expect(spelledOut.hash).toBe(compact.hash);
    const changed = parse({ ...EXAMPLE, exclude: ['infra/**'] });
    expect(changed.hash).not.toBe(compact.hash);
  });

  it('hashes a rule with the name mapping used: stable, and changed by either', () => {
    const hashOf = (document: unknown, name: string) =>
      destination(parse(document), 0).route(name, { replicate: 'true' })?.ruleHash;
    const base = withDestination({ filters: { 'app/*': 's/a/b/' }, names: { 'app/*': 'dr/*' } });
    const hash = hashOf(base, 'app/x');
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hashOf(base, 'app/y')).toBe(hash);
    expect(
      hashOf(
        withDestination({
          filters: [{ match: 'app/*', transform: [{ sed: 's/a/b/' }] }],
          names: { 'app/*': 'dr/*' },
        }),
        'app/x',
      ),
    ).toBe(hash);
    expect(
      hashOf(withDestination({ filters: { 'app/*': 's/a/c/' }, names: { 'app/*': 'dr/*' } }), 'app/x'),
    ).not.toBe(hash);
    expect(
      hashOf(withDestination({ filters: { 'app/*': 's/a/b/' }, names: { 'app/*': 'dr2/*' } }), 'app/x'),
    ).not.toBe(hash);
    expect(hashOf(withDestination({ filters: { 'app/*': 's/a/b/' } }), 'app/x')).not.toBe(hash);
  });

  it('throws a NameMappingError when a wildcard mapping gives an invalid name', () => {
    const only = destination(parse(withDestination({ names: { 'app/*': 'dr/*-copy' } })), 0);
    expect(only.route('app/x', {})?.targetName).toBe('dr/x-copy');
    expect(() => only.route('app/x!', {})).toThrow(NameMappingError);
    expect(() => only.route('app/x!', {})).toThrow(
      'names["app/*"]: "app/x!" maps to an invalid name: expected a Secrets Manager name: 1 to 512 ASCII letters, digits and /_+=.@-',
    );
  });
});

describe('parseReplicatorConfig: refusals, each naming its field and what was expected', () => {
  it('refuses unknown keys anywhere, naming them', () => {
    expect(
      issuesOfDocument({
        ...withDestination({ regoin: 'us-east-1', filters: [{ match: '**', trasnform: '' }] }),
        defaults: { filter: [] },
        extra: 1,
      }),
    ).toEqual([
      'extra: unknown property; expected defaults, exclude, destinations',
      'defaults.filter: unknown property; expected filters, names, deletePolicy, kmsKeyId, twoWay',
      'destinations[0] (us-east-1).filters[0].trasnform: unknown property; expected match, tags, transform',
      'destinations[0] (us-east-1).regoin: unknown property; expected name, region, roleArn, externalId, kmsKeyId, filters, names, deletePolicy, twoWay',
    ]);
  });

  it('refuses a bad or missing region', () => {
    expect(issuesOfDocument(withDestination({ region: 'US-EAST-1' }))).toEqual([
      'destinations[0].region: expected an AWS region name such as us-east-1',
    ]);
    expect(issuesOfDocument({ destinations: [{ name: 'x', filters: { '**': '' } }] })).toEqual([
      'destinations[0] (x).region: missing: expected an AWS region name such as us-east-1',
    ]);
  });

  it('refuses a bad role ARN without quoting it', () => {
    const issues = issuesOfDocument(withDestination({ name: 'dr', roleArn: 'arn:aws:iam::12345:user/x' }));
    expect(issues).toEqual([
      'destinations[0] (dr).roleArn: expected an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<path/name>',
    ]);
  });

  it('refuses an external id without a role, or a malformed one, never quoting it', () => {
    expect(issuesOfDocument(withDestination({ externalId: SECRET_EXTERNAL_ID }))).toEqual([
      'destinations[0] (us-east-1).externalId: expected only with roleArn (it is passed to STS when assuming the role)',
    ]);
    expect(
      issuesOfDocument(withDestination({ roleArn: ROLE, externalId: `${SECRET_EXTERNAL_ID} !` })),
    ).toEqual([
      'destinations[0] (us-east-1).externalId: expected 2 to 1224 ASCII letters, digits and _+=,.@:/-',
    ]);
  });

  it('refuses duplicate names, given or default, naming both destinations', () => {
    expect(
      issuesOfDocument({
        defaults: { filters: { '**': '' } },
        destinations: [
          { name: 'dr', region: 'us-east-1' },
          { region: 'us-east-2' },
          { name: 'dr', region: 'us-west-2' },
          { region: 'us-east-2' },
          { region: 'us-east-2', roleArn: ROLE },
        ],
      }),
    ).toEqual([
      'destinations[2] (dr).name: expected a name no other destination has; destinations[0] has the same',
      "destinations[3] (us-east-2).name: expected a name no other destination has; destinations[1] has the same (a destination's default name is its region, after the role's account id and / when roleArn is set)",
    ]);
  });

  it('refuses a destination without filters: it would replicate nothing', () => {
    expect(issuesOfDocument({ destinations: [{ region: 'us-east-1' }] })).toEqual([
      'destinations[0] (us-east-1).filters: missing: expected filters here or in defaults (without them the destination replicates nothing)',
    ]);
    expect(issuesOfDocument(withDestination({ filters: [] }))).toEqual([
      'destinations[0] (us-east-1).filters: expected at least one rule (a destination without rules replicates nothing)',
    ]);
    expect(issuesOfDocument(withDestination({ filters: {} }))).toEqual([
      'destinations[0] (us-east-1).filters: expected at least one rule (a destination without rules replicates nothing)',
    ]);
  });

  it('refuses bad globs in filters and excludes', () => {
    expect(
      issuesOfDocument(
        withDestination(
          {
            filters: [
              { match: '' },
              { match: 'a{b' },
              { match: '*a*b*c' },
              { match: '+(a|b)' },
              { match: './a' },
            ],
          },
          { exclude: ['[z-a]', 7] },
        ),
      ),
    ).toEqual([
      'exclude[0]: expected a picomatch glob (this one does not compile: an unclosed {, [ or a trailing \\?)',
      'exclude[1]: expected a glob',
      'destinations[0] (us-east-1).filters[0].match: expected a non-empty glob',
      'destinations[0] (us-east-1).filters[1].match: expected a picomatch glob (this one does not compile: an unclosed {, [ or a trailing \\?)',
      "destinations[0] (us-east-1).filters[2].match: expected at most 2 * or ** besides a * standing for a whole segment (matching time grows as the name's length to the power of their number)",
      'destinations[0] (us-east-1).filters[3].match: expected no parentheses: extglobs and groups are not supported (their matching time can explode)',
      'destinations[0] (us-east-1).filters[4].match: expected no leading ./ (picomatch drops it, so the glob would match names without it)',
    ]);
    expect(issuesOfDocument(withDestination({ filters: { 'a/**/b/**/c/**': '' } }))).toEqual([
      `destinations[0] (us-east-1).filters["a/**/b/**/c/**"]: ${globProblem('a/**/b/**/c/**')}`,
    ]);
  });

  it('accepts only globs that match fast: the worst accepted ones on adversarial names take milliseconds', () => {
    const globs = ['*a*b', '**/a/**', '*/*/*/*/*a*b', '{a,aa}*{a,aa}*b', '**/a*b', '?*?*b'];
    const only = destination(
      parse(withDestination({ filters: globs.map((match) => ({ match, tags: { t: '*' } })) })),
      0,
    );
    const names = ['a'.repeat(511), Array(256).fill('a').join('/'), `${'a/'.repeat(100)}${'a'.repeat(311)}`];
    const started = performance.now();
    for (const name of names) expect(only.route(name, {})).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(globProblem('?*?*?*b')).toBe(globProblem('*a*a*b'));
    expect(globProblem('*a*a*b')).toMatch(/^expected at most 2 \* or \*\*/);
  });

  it('refuses a bad sed script at its line and column, wherever it is', () => {
    expect(
      issuesOfDocument({
        defaults: { filters: { 'a/*': 's/a/b' } },
        destinations: [
          {
            name: 'dr-east',
            region: 'us-east-1',
            filters: [
              {
                match: '**',
                transform: [{ sed: '' }, { sed: 's/x/y/\ns/a/b/q' }, { path: '$.a', sed: 'y/a/b/' }],
              },
            ],
          },
        ],
      }),
    ).toEqual([
      'defaults.filters["a/*"]: line 1, column 6: unterminated s command',
      "destinations[0] (dr-east).filters[0].transform[1].sed: line 2, column 7: unknown option to s command: 'q'",
      "destinations[0] (dr-east).filters[0].transform[2].sed: line 1, column 1: unknown command 'y': only s commands are allowed",
    ]);
  });

  it('refuses bad JSON paths, filter and script expressions among them', () => {
    const pathsOf = (paths: string[]) =>
      issuesOfDocument(
        withDestination({
          filters: [{ match: '**', transform: paths.map((path) => ({ path, value: SECRET_VALUE })) }],
        }),
      );
    expect(pathsOf(['db.host', '$..[?(@.x)]', '$[(@.length-1)]', '$.a^', '$.a[', '$..'])).toEqual([
      'destinations[0] (us-east-1).filters[0].transform[0].path: expected a JSON path starting with $ (for example $.db.host)',
      'destinations[0] (us-east-1).filters[0].transform[1].path: expected no filter or script expression ([?(...)], [(...)]): they are not supported',
      'destinations[0] (us-east-1).filters[0].transform[2].path: expected no filter or script expression ([?(...)], [(...)]): they are not supported',
      'destinations[0] (us-east-1).filters[0].transform[3].path: expected no parent (^) or property name (~) operator: they are not supported',
      "destinations[0] (us-east-1).filters[0].transform[4].path: expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character 4",
      'destinations[0] (us-east-1).filters[0].transform[5].path: expected a name, * or [...] after ..',
    ]);
  });

  it('refuses a step that is none of the three forms', () => {
    expect(
      issuesOfDocument(
        withDestination({
          filters: [{ match: '**', transform: [{ path: '$.a', sed: '', value: SECRET_VALUE }, {}, 'x', 5] }],
        }),
      ),
    ).toEqual([
      'destinations[0] (us-east-1).filters[0].transform[0].sed: unknown property; expected path, value',
      'destinations[0] (us-east-1).filters[0].transform[1].sed: missing: expected a sed script',
      'destinations[0] (us-east-1).filters[0].transform[2]: expected a step { sed }, { path, sed } or { path, value }',
      'destinations[0] (us-east-1).filters[0].transform[3]: expected a step { sed }, { path, sed } or { path, value }',
    ]);
  });

  it('refuses more than 20 steps', () => {
    const steps = Array.from({ length: 21 }, () => ({ sed: 's/a/b/' }));
    expect(issuesOfDocument(withDestination({ filters: [{ match: '**', transform: steps }] }))).toEqual([
      'destinations[0] (us-east-1).filters[0].transform: expected at most 20 steps',
    ]);
    expect(() =>
      parse(withDestination({ filters: [{ match: '**', transform: steps.slice(1) }] })),
    ).not.toThrow();
  });

  it('refuses bad delete policies', () => {
    expect(
      issuesOfDocument({
        defaults: { filters: { '**': '' }, deletePolicy: 'sometimes' },
        destinations: [
          { region: 'us-east-1', deletePolicy: { propagateAfterDays: 0 } },
          { region: 'us-east-2', deletePolicy: { propagateAfterDays: 1.5, days: 2 } },
          { region: 'us-west-1', deletePolicy: {} },
        ],
      }),
    ).toEqual([
      'defaults.deletePolicy: expected "propagate", "ignore" or { "propagateAfterDays": <1 to 365> }',
      'destinations[0] (us-east-1).deletePolicy.propagateAfterDays: expected a whole number of days from 1 to 365',
      'destinations[1] (us-east-2).deletePolicy.propagateAfterDays: expected a whole number of days from 1 to 365',
      'destinations[1] (us-east-2).deletePolicy.days: unknown property; expected propagateAfterDays',
      'destinations[2] (us-west-1).deletePolicy.propagateAfterDays: expected a whole number of days from 1 to 365',
    ]);
  });

  it('refuses a document over 64 KiB before parsing it, counting UTF-8 bytes', () => {
    const padding = (chars: number, char: string) => ({ ...withDestination({}), _: char.repeat(chars) });
    const exactly = JSON.stringify(padding(0, 'x'));
    const fits = JSON.stringify(padding(MAX_CONFIG_BYTES - exactly.length, 'x'));
    expect(Buffer.byteLength(fits)).toBe(MAX_CONFIG_BYTES);
    expect(issuesOf(fits)).toEqual(['_: unknown property; expected defaults, exclude, destinations']);
    const multibyte = JSON.stringify(padding(33_000, 'é'));
    expect(multibyte.length).toBeLessThan(MAX_CONFIG_BYTES);
    expect(issuesOf(multibyte)).toEqual([
      `config: expected at most 65536 bytes (a secret's maximum size); the document has ${Buffer.byteLength(multibyte)}`,
    ]);
    expect(issuesOf(`{${' '.repeat(MAX_CONFIG_BYTES)}`)).toEqual([
      "config: expected at most 65536 bytes (a secret's maximum size); the document has 65537",
    ]);
  });

  it('refuses invalid JSON with a position and no text of it', () => {
    expect(issuesOf('')).toEqual(['config: expected a JSON document; expected a value at line 1, column 1']);
    expect(issuesOf(`{\n  "destinations": [\n    {"externalId": "${SECRET_EXTERNAL_ID}",}\n  ]\n}`)).toEqual([
      'config: expected a JSON document; expected a property name in double quotes at line 3, column 42',
    ]);
    expect(issuesOf(`{"a": "${SECRET_VALUE}"} x`)).toEqual([
      'config: expected a JSON document; expected the end of the document at line 1, column 34',
    ]);
    expect(issuesOf('[1, 2')).toEqual([
      "config: expected a JSON document; expected ',' or ']' at line 1, column 6",
    ]);
    expect(issuesOf('"\u0001"')).toEqual([
      'config: expected a JSON document; expected a string without control characters or bad escapes at line 1, column 1',
    ]);
  });

  it('refuses what JSON.parse would silently change: keys twice, numbers past 2^53, deep nesting', () => {
    expect(
      issuesOf(
        '{"destinations": [{"region": "us-east-1", "filters": {"a/*": "", "a/*": "s/a/b/"}, "names": {"x": 12345678901234567890}}]}',
      ),
    ).toEqual([
      'destinations[0] (us-east-1).filters["a/*"]: expected each key once (JSON would keep only the last)',
      'destinations[0] (us-east-1).names["x"]: expected a finite number, integers within 2^53 - 1 (this one would not survive as written)',
      'destinations[0] (us-east-1).names["x"]: expected a target name',
    ]);
    expect(issuesOf(`${'['.repeat(40)}${']'.repeat(40)}`)).toEqual([
      `config${'[0]'.repeat(32)}: expected at most 32 levels of nesting`,
    ]);
  });

  it('refuses ambiguous wildcard mappings', () => {
    expect(
      issuesOfDocument(withDestination({ names: { 'app/*': 'a/*', '*/api': 'b/*', 'apps/*': 'c/*' } })),
    ).toEqual([
      'destinations[0] (us-east-1).names: expected wildcard patterns that no name matches equally well: "*/api" and "app/*" both match "app/api" with 4 literal characters each (make one of them more specific)',
    ]);
  });

  it('refuses invalid target names and patterns', () => {
    expect(
      issuesOfDocument(
        withDestination({
          names: {
            'app/prod/db': 'app/prod/db-backup',
            a: 'b c',
            'x*y*': 'z',
            x: 'y*',
            'p/*': 'q/**',
            q: '',
          },
        }),
      ),
    ).toEqual([
      'destinations[0] (us-east-1).names["app/prod/db"]: target: expected a name not ending in a hyphen and six characters (Secrets Manager takes them for the random suffix of an ARN)',
      'destinations[0] (us-east-1).names["a"]: target: expected a Secrets Manager name: 1 to 512 ASCII letters, digits and /_+=.@-',
      'destinations[0] (us-east-1).names["x*y*"]: expected a secret name or a pattern with one * (1 to 512 ASCII letters, digits and /_+=.@- besides it)',
      'destinations[0] (us-east-1).names["x"]: target: expected no * (the pattern has none to fill it with)',
      'destinations[0] (us-east-1).names["p/*"]: target: expected at most one *, which is what the pattern matched',
      'destinations[0] (us-east-1).names["q"]: target: expected a Secrets Manager name: 1 to 512 ASCII letters, digits and /_+=.@-',
    ]);
  });

  it('refuses KMS keys that are malformed or of another region', () => {
    expect(
      issuesOfDocument({
        defaults: { filters: { '**': '' }, kmsKeyId: KEY_ARN },
        destinations: [
          { region: 'us-east-1' },
          { region: 'eu-west-1' },
          { region: 'eu-west-2', kmsKeyId: 'arn:aws:kms:eu-west-1:222222222222:alias/replicas' },
          { region: 'eu-west-3', kmsKeyId: 'key/1234' },
        ],
      }),
    ).toEqual([
      "destinations[1] (eu-west-1).kmsKeyId: expected a key of the destination's region eu-west-1; this key ARN (from defaults) is in us-east-1",
      "destinations[2] (eu-west-2).kmsKeyId: expected a key of the destination's region eu-west-2; this key ARN is in eu-west-1",
      'destinations[3] (eu-west-3).kmsKeyId: expected a KMS key id, key ARN, alias name (alias/...) or alias ARN',
    ]);
  });

  it('refuses a document that is not an object, and between 1 and 50 destinations', () => {
    expect(issuesOf('[]')).toEqual(['config: expected a JSON object { defaults?, exclude?, destinations }']);
    expect(issuesOfDocument({})).toEqual(['destinations: missing: expected a list of 1 to 50 destinations']);
    expect(issuesOfDocument({ destinations: [] })).toEqual([
      'destinations: expected a list of 1 to 50 destinations',
    ]);
    const many = Array.from({ length: 51 }, (_, i) => ({
      region: 'us-east-1',
      name: `d${i}`,
      filters: { '**': '' },
    }));
    expect(issuesOfDocument({ destinations: many })).toEqual([
      'destinations: expected a list of 1 to 50 destinations',
    ]);
  });

  it('reports several problems at once, grouped by destination, and bounds the message', () => {
    const issues = issuesOfDocument({
      defaults: { twoWay: 'yes' },
      destinations: [
        {
          region: 'moon-1',
          roleArn: 'x',
          twoWay: 1,
          filters: { '**': [{ path: '$.x', value: SECRET_VALUE }, { sed: 's/' }] },
        },
        { name: 'ok', region: 'us-east-1', externalId: SECRET_EXTERNAL_ID },
      ],
    });
    expect(issues).toEqual([
      'defaults.twoWay: expected true or false',
      'destinations[0].region: expected an AWS region name such as us-east-1',
      'destinations[0].roleArn: expected an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<path/name>',
      'destinations[0].filters["**"][1].sed: line 1, column 3: unterminated s command',
      'destinations[0].twoWay: expected true or false',
      'destinations[1] (ok).externalId: expected only with roleArn (it is passed to STS when assuming the role)',
      'destinations[1] (ok).filters: missing: expected filters here or in defaults (without them the destination replicates nothing)',
    ]);

    const many = Array.from({ length: 25 }, (_, i) => ({
      region: 'nowhere',
      name: `d${i}`,
      filters: { '**': '' },
    }));
    let error: ReplicatorConfigError | undefined;
    try {
      parse({ destinations: many.slice(0, 25) });
    } catch (e) {
      error = e as ReplicatorConfigError;
    }
    expect(error?.issues).toHaveLength(25);
    const lines = error?.message.split('\n') ?? [];
    expect(lines[0]).toBe('Invalid replicator configuration:');
    expect(lines).toHaveLength(22);
    expect(lines[20]).toBe(
      '  - destinations[19] (d19).region: expected an AWS region name such as us-east-1',
    );
    expect(lines[21]).toBe('  - +5 more');
  });

  it('never quotes a path step value or an external id, whatever goes wrong around them', () => {
    const hostile = [
      withDestination({ roleArn: 'bad', externalId: SECRET_EXTERNAL_ID }),
      withDestination({ externalId: SECRET_EXTERNAL_ID }),
      withDestination({ roleArn: ROLE, externalId: [SECRET_EXTERNAL_ID] }),
      withDestination({
        filters: [
          { match: '**', transform: [{ path: '$.a', value: SECRET_VALUE, [SECRET_VALUE.slice(0, 5)]: 1 }] },
        ],
      }),
      withDestination({
        filters: [{ match: '**', transform: [{ path: SECRET_VALUE, value: { x: [SECRET_VALUE] } }] }],
      }),
      withDestination({ filters: [{ match: '**', transform: [{ value: SECRET_VALUE }] }] }),
    ];
    for (const document of hostile) expect(issuesOfDocument(document).length).toBeGreaterThan(0);
    const infinite = JSON.stringify(
      withDestination({ filters: [{ match: '**', transform: [{ path: '$', value: [0] }] }] }),
    );
    const nested = infinite.replace('[0]', `{"${SECRET_VALUE}": [1e400], "k": 1, "k": 2}`);
    expect(issuesOf(nested)).toEqual([
      'destinations[0] (us-east-1).filters[0].transform[0].value: expected a finite number, integers within 2^53 - 1 (this one would not survive as written)',
      'destinations[0] (us-east-1).filters[0].transform[0].value: expected each key once (JSON would keep only the last)',
    ]);
    expect(issuesOf(infinite.replace('[0]', '1e400'))).toEqual([
      'destinations[0] (us-east-1).filters[0].transform[0].value: expected a finite number, integers within 2^53 - 1 (this one would not survive as written)',
    ]);
    expect(
      issuesOf(
        JSON.stringify(
          withDestination({ filters: [{ match: '**', transform: [{ path: '$', value: SECRET_VALUE }] }] }),
        ).replace('"}', '"'),
      ),
    ).toHaveLength(1);
  });

  it('never evaluates code in a JSON path', () => {
    const marker = globalThis as { pwned?: unknown };
    issuesOfDocument(
      withDestination({
        filters: [
          {
            match: '**',
            transform: [
              { path: '$..[?(globalThis.pwned = 1)]', sed: '' },
              { path: '$[(globalThis.pwned = 2)]', value: 0 },
            ],
          },
        ],
      }),
    );
    expect(marker.pwned).toBeUndefined();
  });
});

describe('iamScopeOf', () => {
  it('gives the source and destination name wildcards of the example', () => {
    const scope = iamScopeOf(parse(EXAMPLE));
    expect(scope).toEqual({
      sourceNames: ['app/prod/*', 'db/prod/*'],
      destinations: [
        {
          name: 'dr-east',
          region: 'us-east-1',
          roleArn: ROLE,
          kmsKeyId: KEY_ARN,
          names: ['app/prod/*', 'db/prod/*'],
        },
        {
          name: 'eu-west-1',
          region: 'eu-west-1',
          kmsKeyId: 'alias/replicas',
          names: ['app/dr/*', 'app/prod/*', 'app/prod/db-replica-??????'],
        },
      ],
    });
    expect(iamScopeOf(JSON.stringify(EXAMPLE))).toEqual(scope);
  });

  it('widens what IAM cannot express to a prefix and *, and suffixes exact names', () => {
    const widened = (glob: string) => arnWildcard(globWildcard(glob));
    expect(widened('app/{a,b}/*')).toBe('app/*');
    expect(widened('app/[ab]*')).toBe('app/*');
    expect(widened('!x')).toBe('*');
    expect(widened('a/**/b')).toBe('a*b-??????');
    expect(widened('a/**')).toBe('a*');
    expect(widened('**/x')).toBe('*x-??????');
    expect(widened('app/x?')).toBe('app/x?-??????');
    expect(widened('app/db')).toBe('app/db-??????');
    expect(widened('a\\*b')).toBe('a*');
    expect(widened('a+b@c')).toBe('a+b@c-??????');
  });

  it('refuses a configuration it did not parse', () => {
    expect(() => iamScopeOf({ destinations: [], hash: 'x' })).toThrow(
      'iamScopeOf: expected a configuration returned by parseReplicatorConfig',
    );
  });

  const letters = ['a', 'b', '/', '.', '-'];
  const name = fc.array(fc.constantFrom(...letters), { minLength: 1, maxLength: 10 }).map((c) => c.join(''));
  const suffix = fc
    .array(fc.constantFrom('A', 'b', '0', '9'), { minLength: 6, maxLength: 6 })
    .map((c) => `-${c.join('')}`);
  const globToken = fc.constantFrom(
    'a',
    'b',
    '/',
    '.',
    '-',
    '*',
    '**',
    '?',
    '{a,b}',
    '[ab]',
    '[!a]',
    '\\a',
    '+',
    '@',
    '=',
  );
  const glob = fc
    .tuple(fc.boolean(), fc.array(globToken, { minLength: 1, maxLength: 6 }))
    .map(([negated, tokens]) => `${negated ? '!' : ''}${tokens.join('')}`)
    .filter((g) => globProblem(g) === undefined);

  it('widens every glob to a superset of the names picomatch matches (property)', () => {
    fc.assert(
      fc.property(glob, fc.array(name, { minLength: 20, maxLength: 20 }), suffix, (g, names, arnSuffix) => {
        const only = destination(parse(withDestination({ filters: { [g]: '' } })), 0);
        const wildcard = arnWildcard(globWildcard(g));
        for (const n of names)
          if (only.route(n, {}))
            expect([g, n, wildcardMatches(wildcard, `${n}${arnSuffix}`)]).toEqual([g, n, true]);
      }),
      { numRuns: 400 },
    );
  });

  it('covers every name a route can produce, and every source name that routes (property)', () => {
    const pattern = fc
      .tuple(
        fc.array(fc.constantFrom('a', 'b', '/'), { maxLength: 3 }),
        fc.boolean(),
        fc.array(fc.constantFrom('a', 'b', '/'), { maxLength: 3 }),
      )
      .map(([prefix, star, rest]) => `${prefix.join('')}${star ? '*' : ''}${rest.join('')}`)
      .filter((p) => p.length > 0);
    const target = fc
      .tuple(fc.array(fc.constantFrom('x', 'y', '/', '.'), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([chars, star]) => `${chars.join('')}${star ? '*' : ''}`);
    const destinationDoc = fc.record({
      filters: fc.array(glob, { minLength: 1, maxLength: 3 }),
      names: fc.array(fc.tuple(pattern, target), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(
        fc.array(destinationDoc, { minLength: 1, maxLength: 3 }),
        fc.array(name, { minLength: 30, maxLength: 30 }),
        suffix,
        (docs, names, arnSuffix) => {
          const text = JSON.stringify({
            destinations: docs.map((d, i) => ({
              region: `us-east-${i + 1}`,
              filters: d.filters.map((match) => ({ match })),
              names: Object.fromEntries(
                d.names.map(([p, t]) => [p, p.includes('*') ? t : t.replace('*', '')]),
              ),
            })),
          });
          let config: ReplicatorConfig;
          try {
            config = parseReplicatorConfig(text);
          } catch (error) {
            if (error instanceof ReplicatorConfigError) return;
            throw error;
          }
          const scope = iamScopeOf(config);
          config.destinations.forEach((d, i) => {
            const wildcards = scope.destinations[i]?.names ?? [];
            for (const n of names) {
              let route;
              try {
                route = d.route(n, {});
              } catch (error) {
                if (error instanceof NameMappingError) continue;
                throw error;
              }
              if (!route) continue;
              const arnName = `${route.targetName}${arnSuffix}`;
              expect([arnName, wildcards.some((w) => wildcardMatches(w, arnName))]).toEqual([arnName, true]);
              expect([n, scope.sourceNames.some((w) => wildcardMatches(w, `${n}${arnSuffix}`))]).toEqual([
                n,
                true,
              ]);
            }
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
