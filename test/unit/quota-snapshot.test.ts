import { configHash, type AllocationConfig } from '../../runtime/quota/config';
import {
  decodeSnapshot,
  encodeSnapshot,
  isValidEntity,
  MAX_SNAPSHOT_BYTES,
  SnapshotError,
  type Snapshot,
  type SnapshotEntry,
} from '../../runtime/quota/snapshot';

const config: AllocationConfig = {
  windowSec: 60,
  activationDelayMs: 10_000,
  regions: [
    { region: 'eu-central-1', weight: 2 },
    { region: 'us-east-1', weight: 1 },
  ],
  resources: [
    { name: 'bytes', limit: 1_000_000, burstSec: 10, floors: [] },
    { name: 'requests', limit: 50_000, burstSec: 5, floors: [{ region: 'us-east-1', floor: 1000 }] },
  ],
};
const EPOCH = 29_411_200;
const GENERATED_AT = 1_764_672_000_123;

const entries: SnapshotEntry[] = [
  { entity: 'tenant-1', resource: 'requests', consumed: 1200, demand: 1500 },
  { entity: 'tenant-1', resource: 'bytes', consumed: 0, demand: 0 },
  { entity: 'tenant-2', resource: 'requests', consumed: 0, demand: 5000, operator: 12_000 },
  { entity: 'tenant-3', resource: 'requests', consumed: 7, demand: 7 },
];
const input: Omit<Snapshot, 'schema' | 'configHash'> = {
  region: 'eu-central-1',
  epoch: EPOCH,
  generatedAt: GENERATED_AT,
  config,
  entries,
};

/** The wire form of `input`, to patch. */
const wire = (): Record<string, unknown> => JSON.parse(encodeSnapshot(input)) as Record<string, unknown>;
const patched = (patch: Record<string, unknown>) => JSON.stringify({ ...wire(), ...patch });
const without = (key: string) =>
  JSON.stringify(Object.fromEntries(Object.entries(wire()).filter(([k]) => k !== key)));
/** `entries[i]` replaced by `entry`. */
const withEntry = (i: number, entry: unknown) => {
  const list = (wire().entries as unknown[]).slice();
  list[i] = entry;
  return patched({ entries: list });
};
/** Another configuration, with its (matching) hash. */
const withConfig = (other: AllocationConfig) => patched({ config: other, configHash: configHash(other) });

function refusal(decode: () => unknown): SnapshotError {
  expect(decode).toThrow(SnapshotError);
  try {
    decode();
  } catch (error) {
    return error as SnapshotError;
  }
  throw new Error('unreachable');
}

describe('quota snapshots', () => {
  it('round-trips a snapshot, member-named entities, 512-byte entities and the operator form included', () => {
    const snapshot: Omit<Snapshot, 'schema' | 'configHash'> = {
      ...input,
      entries: [
        ...entries,
        { entity: '__proto__', resource: 'requests', consumed: 1, demand: 2 },
        { entity: 'constructor', resource: 'requests', consumed: 3, demand: 4, operator: 0 },
        { entity: 'hasOwnProperty', resource: 'bytes', consumed: 5, demand: 6 },
        { entity: 'é'.repeat(256), resource: 'bytes', consumed: 0, demand: 9 },
        { entity: '😀'.repeat(128), resource: 'requests', consumed: 9, demand: 9, operator: 123 },
        {
          entity: 'tenant with spaces / ünïcödé',
          resource: 'bytes',
          consumed: 2 ** 53 - 2,
          demand: 2 ** 53 - 1,
        },
      ],
    };
    const text = encodeSnapshot(snapshot);
    const decoded = decodeSnapshot(text, { region: 'eu-central-1', epoch: EPOCH });
    expect(decoded).toStrictEqual({ schema: 1, configHash: configHash(config), ...snapshot });
    expect(decoded.entries).toHaveLength(snapshot.entries.length);
    expect(Object.getPrototypeOf(decoded.entries[4])).toBe(Object.prototype);
    expect(Object.keys(decoded.entries[4] as object)).toEqual(['entity', 'resource', 'consumed', 'demand']);
    expect(Object.keys(decoded.entries[2] as object)).toContain('operator');
    expect(decodeSnapshot(new TextEncoder().encode(text))).toStrictEqual(decoded);
    expect(encodeSnapshot(decoded)).toBe(text);
  });

  it('writes compact JSON with the schema, the configuration hash and the configuration in canonical form', () => {
    const text = encodeSnapshot(input);
    expect(text).not.toMatch(/\n/);
    expect(text.startsWith('{"schema":1,"region":"eu-central-1",')).toBe(true);
    expect(text).toContain(`"configHash":"${configHash(config)}"`);
    expect(text).toContain('["tenant-2","requests",0,5000,12000]');
    expect(text).toContain('["tenant-1","requests",1200,1500]');
  });

  it('decodes an empty list of entries', () => {
    expect(decodeSnapshot(patched({ entries: [] })).entries).toEqual([]);
  });

  it('decodes 100,000 entries, every one of them (its speed is measured by bench/quota.ts)', () => {
    const many: SnapshotEntry[] = Array.from({ length: 100_000 }, (_, i) => ({
      entity: `tenant-${i}`,
      resource: i % 2 === 0 ? 'requests' : 'bytes',
      consumed: i,
      demand: i * 2,
      ...(i % 10 === 0 ? { operator: 1000 } : {}),
    }));
    const decoded = decodeSnapshot(encodeSnapshot({ ...input, entries: many }));
    expect(decoded.entries).toHaveLength(100_000);
    expect(decoded.entries[99_999]).toEqual(many[99_999]);
    expect(decoded.entries[10]).toEqual(many[10]);
  });

  const invalidUtf8 = () => {
    const bytes = Buffer.from(patched({ entries: [['tenant-AAAA', 'requests', 0, 0]] }), 'utf8');
    bytes[bytes.indexOf('AAAA') + 1] = 0xff;
    return new Uint8Array(bytes);
  };
  const generatedBefore = EPOCH * 60_000 - 1;

  it.each<[string, string | (() => string | Uint8Array), string]>([
    ['an empty body', '', 'snapshot: not valid JSON'],
    ['a body that is not JSON', 'snapshot', 'snapshot: not valid JSON'],
    ['a body with a byte order mark', () => `\ufeff${patched({})}`, 'snapshot: not valid JSON'],
    ['a JSON array', '[]', 'snapshot: expected a JSON object'],
    ['JSON null', 'null', 'snapshot: expected a JSON object'],
    ['a JSON string', '"snapshot"', 'snapshot: expected a JSON object'],
    [
      'an unexpected property',
      () => patched({ extra: 1 }),
      'snapshot: unexpected property; expected schema, region, epoch, generatedAt, configHash, config, entries',
    ],
    [
      'a __proto__ property',
      () => patched({}).replace('{', '{"__proto__":{},'),
      'snapshot: unexpected property',
    ],
    ['no schema', () => without('schema'), 'schema: unsupported; expected 1'],
    ['schema 2', () => patched({ schema: 2 }), 'schema: unsupported; expected 1'],
    [
      'schema 2 with properties of its own',
      () => patched({ schema: 2, x: 1 }),
      'schema: unsupported; expected 1',
    ],
    ['schema given as text', () => patched({ schema: '1' }), 'schema: unsupported; expected 1'],
    ['no region', () => without('region'), 'region: expected a region code'],
    [
      'a region that is no region code',
      () => patched({ region: 'Europe' }),
      'region: expected a region code',
    ],
    ['a negative epoch', () => patched({ epoch: -1 }), 'epoch: expected an integer from 0'],
    ['an epoch of 2^53', () => patched({ epoch: 2 ** 53 }), 'epoch: expected an integer from 0'],
    ['a fractional epoch', () => patched({ epoch: EPOCH + 0.5 }), 'epoch: expected an integer from 0'],
    [
      'generatedAt before its epoch started',
      () => patched({ generatedAt: generatedBefore }),
      'generatedAt: expected a time at or after the start of its epoch',
    ],
    [
      'generatedAt given as text',
      () => patched({ generatedAt: String(GENERATED_AT) }),
      'generatedAt: expected',
    ],
    ['generatedAt in 2019', () => patched({ generatedAt: Date.UTC(2019, 11, 31) }), 'generatedAt: expected'],
    [
      'generatedAt after the year 3000',
      () => patched({ generatedAt: Date.UTC(3000, 0, 2) }),
      'generatedAt: expected',
    ],
    ['no config', () => without('config'), 'config: expected an object'],
    [
      'a window of 61 seconds',
      () => withConfig({ ...config, windowSec: 61 }),
      'config.windowSec: expected whole minutes that divide an hour',
    ],
    [
      'a config with an unexpected property',
      () => patched({ config: { ...config, extra: 1 } }),
      'config: unexpected property',
    ],
    [
      "a config that does not include the snapshot's region",
      () =>
        withConfig({
          ...config,
          regions: [{ region: 'us-east-1', weight: 1 }],
        }),
      "config.regions: expected to include the snapshot's region",
    ],
    [
      'a configHash of another config',
      () => patched({ configHash: configHash({ ...config, activationDelayMs: 0 }) }),
      'configHash: does not match config',
    ],
    [
      'a config changed after hashing',
      () => patched({ config: { ...config, activationDelayMs: 0 } }),
      'configHash: does not match config',
    ],
    [
      'a configHash in upper case',
      () => patched({ configHash: configHash(config).toUpperCase() }),
      'configHash: expected 64 lower-case hex digits',
    ],
    [
      'a configHash that is not hex',
      () => patched({ configHash: 'z'.repeat(64) }),
      'configHash: expected 64',
    ],
    ['no configHash', () => without('configHash'), 'configHash: expected 64'],
    ['entries that are not a list', () => patched({ entries: {} }), 'entries: expected a list of entries'],
    ['no entries', () => without('entries'), 'entries: expected a list of entries'],
    [
      'an entry of 3 elements',
      () => withEntry(3, ['tenant-3', 'requests', 7]),
      'entries[3]: expected [entity',
    ],
    [
      'an entry of 6 elements',
      () => withEntry(3, ['tenant-3', 'requests', 7, 7, 7, 7]),
      'entries[3]: expected',
    ],
    ['an entry that is an object', () => withEntry(0, { entity: 'tenant-1' }), 'entries[0]: expected'],
    ['an empty entity', () => withEntry(3, ['', 'requests', 0, 0]), 'entries[3][0] (entity): expected 1-512'],
    [
      'an entity that is a number',
      () => withEntry(3, [7, 'requests', 0, 0]),
      'entries[3][0] (entity): expected',
    ],
    [
      'an entity of 513 UTF-8 bytes in 171 characters',
      () => withEntry(3, ['€'.repeat(171), 'requests', 0, 0]),
      'entries[3][0] (entity): expected 1-512 UTF-8 bytes',
    ],
    ['an entity with a newline', () => withEntry(2, ['a\nb', 'requests', 0, 0]), 'entries[2][0] (entity)'],
    ['an entity with DEL', () => withEntry(2, ['a\u007fb', 'requests', 0, 0]), 'entries[2][0] (entity)'],
    [
      'an entity with a C1 control',
      () => withEntry(2, ['a\u0085b', 'requests', 0, 0]),
      'entries[2][0] (entity)',
    ],
    [
      'an entity with a lone surrogate',
      () => withEntry(1, ['a\udfffb', 'bytes', 0, 0]),
      'entries[1][0] (entity)',
    ],
    [
      'an entity starting with #',
      () => withEntry(0, ['#config', 'requests', 0, 0]),
      'entries[0][0] (entity)',
    ],
    [
      'a resource not in the config',
      () => withEntry(3, ['tenant-3', 'storage', 0, 0]),
      "entries[3][1] (resource): expected a resource of the snapshot's config",
    ],
    [
      'a resource that is no resource name',
      () => withEntry(3, ['tenant-3', 'Requests!', 0, 0]),
      'entries[3][1] (resource): expected',
    ],
    [
      'a resource named __proto__',
      () => withEntry(3, ['tenant-3', '__proto__', 0, 0]),
      'entries[3][1] (resource)',
    ],
    [
      'consumed over demand',
      () => withEntry(3, ['tenant-3', 'requests', 8, 7]),
      'entries[3][2] (consumed): expected at most demand',
    ],
    [
      'a negative demand',
      () => withEntry(3, ['tenant-3', 'requests', 0, -1]),
      'entries[3][3] (demand): expected an integer from 0',
    ],
    [
      'a fractional consumed',
      () => withEntry(3, ['tenant-3', 'requests', 0.5, 7]),
      'entries[3][2] (consumed): expected an integer from 0',
    ],
    [
      'consumed given as text',
      () => withEntry(3, ['tenant-3', 'requests', '1', 7]),
      'entries[3][2] (consumed)',
    ],
    ['a demand of 2^53', () => withEntry(3, ['tenant-3', 'requests', 0, 2 ** 53]), 'entries[3][3] (demand)'],
    ['a null demand', () => withEntry(3, ['tenant-3', 'requests', 0, null]), 'entries[3][3] (demand)'],
    [
      'a negative operator limit',
      () => withEntry(3, ['tenant-3', 'requests', 0, 0, -1]),
      'entries[3][4] (operator): expected an integer from 0',
    ],
    [
      'an operator limit over the largest limit',
      () => withEntry(3, ['tenant-3', 'requests', 0, 0, Math.floor(Number.MAX_SAFE_INTEGER / 1000) + 1]),
      'entries[3][4] (operator)',
    ],
    [
      'a null operator limit',
      () => withEntry(3, ['tenant-3', 'requests', 0, 0, null]),
      'entries[3][4] (operator)',
    ],
    [
      'a (entity, resource) pair twice',
      () => withEntry(3, ['tenant-1', 'requests', 1, 1]),
      'entries[3]: appears twice; first at entries[0]',
    ],
    [
      '__proto__ twice',
      () =>
        patched({
          entries: [
            ['__proto__', 'requests', 0, 0],
            ['__proto__', 'bytes', 0, 0],
            ['__proto__', 'requests', 1, 1],
          ],
        }),
      'entries[2]: appears twice; first at entries[0]',
    ],
    ['invalid UTF-8', invalidUtf8, 'snapshot: not valid UTF-8'],
    [
      'a body over 32 MiB (bytes)',
      () => new Uint8Array(MAX_SNAPSHOT_BYTES + 1),
      `snapshot: larger than ${MAX_SNAPSHOT_BYTES} bytes`,
    ],
    [
      'a body over 32 MiB (text)',
      () => ' '.repeat(MAX_SNAPSHOT_BYTES + 1),
      `snapshot: larger than ${MAX_SNAPSHOT_BYTES} bytes`,
    ],
    [
      'a body over 32 MiB in UTF-8, under it in characters',
      () => 'é'.repeat(MAX_SNAPSHOT_BYTES / 2 + 1),
      `snapshot: larger than ${MAX_SNAPSHOT_BYTES} bytes`,
    ],
  ])('refuses %s', (_what, body, message) => {
    const text = typeof body === 'function' ? body() : body;
    const error = refusal(() => decodeSnapshot(text));
    // The message starts with the exact field.
    expect(error.message.slice(0, message.length)).toBe(message);
    expect(error.reason).toBe(error.message);
    expect(error.message).toBe(`${error.field}: ${error.rule}`);
    expect(error.code).toBe('quota-snapshot');
    expect(error.message.length).toBeLessThanOrEqual(240);
  });

  it('refuses more entries than the limit before reading them', () => {
    // 250,001 entries of one byte each: the count is refused, not the first (invalid) entry.
    const text = patched({ entries: [] }).replace('"entries":[]', `"entries":[${'0,'.repeat(250_000)}0]`);
    expect(refusal(() => decodeSnapshot(text)).message).toBe('entries: expected at most 250000 entries');
  });

  it.each<[string, { region?: string; epoch?: number }, string]>([
    [
      'another region than the one asked for',
      { region: 'us-east-1' },
      'region: expected the snapshot of us-east-1',
    ],
    ['another epoch than the one asked for', { epoch: EPOCH + 1 }, `epoch: expected epoch ${EPOCH + 1}`],
  ])('refuses %s', (_what, expected, message) => {
    const error = refusal(() => decodeSnapshot(encodeSnapshot(input), expected));
    expect(error.message).toBe(message);
  });

  it('accepts the region and epoch asked for', () => {
    expect(decodeSnapshot(encodeSnapshot(input), { region: 'eu-central-1', epoch: EPOCH }).epoch).toBe(EPOCH);
  });

  it('quotes no value in its errors', () => {
    const secret = 'secret-tenant';
    const bodies = [
      `${secret} not json`,
      patched({ [secret]: 1 }),
      patched({ schema: secret }),
      patched({ region: secret }),
      patched({ region: 'ap-southeast-1' }),
      patched({ configHash: secret }),
      patched({ config: { ...config, [secret]: 1 } }),
      withEntry(0, [`${secret}\n`, 'requests', 0, 0]),
      withEntry(0, [`#${secret}`, 'requests', 0, 0]),
      withEntry(0, [`${secret}\udc00`, 'requests', 0, 0]),
      withEntry(0, [secret, secret, 0, 0]),
      withEntry(0, [secret, 'requests', secret, 0]),
      withEntry(0, [secret, 'requests', 9, 8]),
      withEntry(0, [secret, 'requests', 0, 0, secret]),
      withEntry(0, [secret, 'requests', 0, 0, secret, secret]),
      patched({
        entries: [
          [secret, 'requests', 0, 0],
          [secret, 'requests', 0, 0],
        ],
      }),
    ];
    for (const body of bodies) {
      const error = refusal(() => decodeSnapshot(body, { region: 'eu-central-1' }));
      expect(error.message).not.toContain(secret);
      expect(error.reason).not.toContain(secret);
      expect(error.rule).not.toContain(secret);
      expect(error.field).not.toContain(secret);
    }
  });

  it('refuses to encode what a peer would refuse', () => {
    const entry = (e: Partial<SnapshotEntry>): Omit<Snapshot, 'schema' | 'configHash'> => ({
      ...input,
      entries: [{ ...(entries[0] as SnapshotEntry), ...e }],
    });
    expect(refusal(() => encodeSnapshot(entry({ entity: 'a\nb' }))).message).toMatch(
      /^entries\[0\]\[0\] \(entity\)/,
    );
    expect(refusal(() => encodeSnapshot(entry({ consumed: 2000, demand: 1000 }))).message).toBe(
      'entries[0][2] (consumed): expected at most demand',
    );
    expect(refusal(() => encodeSnapshot(entry({ demand: Number.NaN }))).message).toMatch(
      /^entries\[0\]\[3\] \(demand\)/,
    );
    expect(refusal(() => encodeSnapshot(entry({ resource: 'storage' }))).message).toMatch(
      /^entries\[0\]\[1\]/,
    );
    expect(refusal(() => encodeSnapshot({ ...input, region: 'ap-southeast-1' })).message).toBe(
      "config.regions: expected to include the snapshot's region",
    );
    expect(refusal(() => encodeSnapshot({ ...input, generatedAt: generatedBefore })).field).toBe(
      'generatedAt',
    );
    expect(refusal(() => encodeSnapshot({ ...input, config: { ...config, windowSec: 61 } })).field).toBe(
      'config.windowSec',
    );
    expect(
      refusal(() =>
        encodeSnapshot({ ...input, entries: [entries[0] as SnapshotEntry, entries[0] as SnapshotEntry] }),
      ).message,
    ).toBe('entries[1]: appears twice; first at entries[0]');
  });

  it.each<[string, boolean]>([
    ['tenant-1', true],
    ['__proto__', true],
    ['constructor', true],
    ['a#b', true],
    ['é'.repeat(256), true],
    ['😀'.repeat(128), true],
    ['', false],
    ['#x', false],
    ['a\tb', false],
    ['a\u0000', false],
    ['\ud800', false],
    ['x'.repeat(513), false],
    ['é'.repeat(256) + 'x', false],
  ])('isValidEntity(%j) is %s', (entity, valid) => {
    expect(isValidEntity(entity)).toBe(valid);
  });
});
