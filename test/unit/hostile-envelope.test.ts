import { RetryableError } from '../../runtime/lib/failures';
import { decodeEnvelope, encodeEnvelope, EnvelopeError, type Envelope } from '../../runtime/sync';
import { testRegion } from '../support/sync-harness';

const NOW = 1_700_000_000_000;
const ORIGIN_REPLICA = 'eu-central-1@00lmw3ai8abcd';

async function validDelta(): Promise<Envelope> {
  const eu = testRegion('eu-central-1', { now: () => NOW });
  await eu.replica.update('doc', { kind: 'set', field: 'v', value: 'x' });
  return eu.published[0] as Envelope;
}

const base = {
  v: 2,
  o: 'eu-central-1',
  d: 'doc',
  h: [NOW, 0, ORIGIN_REPLICA],
  b: { m: { n: { t: 'g', a: [NOW, 0, ORIGIN_REPLICA], r: { [ORIGIN_REPLICA]: 1 } } } },
};
const patched = (patch: Record<string, unknown>) => JSON.stringify({ ...base, ...patch });
const without = (key: string) =>
  JSON.stringify(Object.fromEntries(Object.entries(base).filter(([k]) => k !== key)));

describe('decodeEnvelope refuses malformed messages with a reason that quotes nothing', () => {
  it('accepts the valid message these cases start from', () => {
    expect(decodeEnvelope(JSON.stringify(base)).document).toBe('doc');
  });

  it.each<[string, string, string]>([
    ['an empty message', '', 'message: not valid JSON'],
    ['a JSON array', '[]', 'message: expected a JSON object'],
    ['JSON null', 'null', 'message: expected a JSON object'],
    ['no version', without('v'), 'v (version): unsupported; expected 2 to 3'],
    ['version 1', patched({ v: 1 }), 'v (version): unsupported; expected 2 to 3'],
    ['a version given as text', patched({ v: '2' }), 'v (version): unsupported; expected 2 to 3'],
    ['an unexpected property', patched({ x: 1 }), 'message: unexpected property; expected v, o, d, k, h, b'],
    ['no origin', without('o'), 'o (origin): expected a region name'],
    ['an origin with a space', patched({ o: 'eu central' }), 'o (origin): expected a region name'],
    ['an origin of 51 characters', patched({ o: 'r'.repeat(51) }), 'o (origin): expected a region name'],
    ['no document', without('d'), 'd document key: expected 1-1024 UTF-8 bytes'],
    ['an empty document key', patched({ d: '' }), 'd document key: expected 1-1024 UTF-8 bytes'],
    [
      'a document key of 1,025 UTF-8 bytes in 513 characters',
      patched({ d: 'é'.repeat(513) }),
      'd document key',
    ],
    ['a document key with a control character', patched({ d: 'a\nb' }), 'd document key'],
    ['a document key with a lone surrogate', patched({ d: '\udfff' }), 'd document key'],
    ['a kind other than state', patched({ k: 'patch' }), 'k (kind): expected "s" (full state) or no kind'],
    ['a clock that is not a list', patched({ h: 'now' }), 'h: expected [wallMs'],
    ['a negative clock', patched({ h: [-1, 0, ORIGIN_REPLICA] }), 'h: expected [wallMs'],
    ['a clock of 2^53', patched({ h: [2 ** 53, 0, ORIGIN_REPLICA] }), 'h: expected [wallMs'],
    ['a body that is not a document', patched({ b: 'x' }), 'b.m: expected an object of fields by key'],
    [
      'a body with a corrupt counter',
      patched({ b: { m: { n: { t: 'g', a: [1, 0, 'r'], r: { r: -4 } } } } }),
      'b.m[0].r[0]: expected a count',
    ],
    [
      'a body nested 200,000 deep',
      patched({ b: { m: { n: { t: 'lww', a: [1, 0, 'r'], h: [1, 0, 'r'], x: 0 } } } }).replace(
        '"x":0',
        `"x":${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      ),
      'b.m[0].x: nesting deeper than 32 levels',
    ],
    [
      'a message over 262,144 bytes',
      patched({ d: 'doc', pad: 'x'.repeat(262_144) }),
      'message: larger than 262144 bytes',
    ],
  ])('%s', (_what, text, reason) => {
    let error: unknown;
    try {
      decodeEnvelope(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EnvelopeError);
    expect((error as EnvelopeError).reason).toContain(reason);
    expect((error as EnvelopeError).reason.length).toBeLessThanOrEqual(240);
  });

  it('keeps a message of a newer version for retry: a later release reads it', () => {
    expect(() => decodeEnvelope(patched({ v: 4 }))).toThrow(RetryableError);
  });
});

describe('SyncReplica.receive refuses envelopes from outside its trust boundary', () => {
  const receiver = () => testRegion('us-east-1', { now: () => NOW });

  it.each<[string, (e: Envelope) => Envelope, string]>([
    ['its own region as origin', (e) => ({ ...e, origin: 'us-east-1' }), 'own-origin'],
    ['an origin that is no peer', (e) => ({ ...e, origin: 'ap-southeast-1' }), 'unknown-origin'],
    ['an origin named like a prototype member', (e) => ({ ...e, origin: '__proto__' }), 'unknown-origin'],
    [
      'a clock of another region',
      (e) => ({ ...e, hlc: { ...e.hlc, replica: 'us-east-1@00lmw3ai8abcd' } }),
      'clock-not-origin',
    ],
    [
      'a clock without a region epoch',
      (e) => ({ ...e, hlc: { ...e.hlc, replica: 'constructor' } }),
      'clock-not-origin',
    ],
    [
      'a clock in the year 2286',
      (e) => ({ ...e, hlc: { ...e.hlc, wallMs: 9_999_999_999_999 } }),
      'clock-ahead',
    ],
    [
      'a clock 5 minutes and 1 ms ahead',
      (e) => ({ ...e, hlc: { ...e.hlc, wallMs: NOW + 300_001 } }),
      'clock-ahead',
    ],
  ])('%s', async (_what, change, code) => {
    const us = receiver();
    const envelope = change(await validDelta());
    await expect(us.replica.receive(envelope)).rejects.toMatchObject({ code });
    expect(us.store.items.size).toBe(0);
  });

  describe('folds and horizons', () => {
    const A = [1, 0, ORIGIN_REPLICA];
    const DAY = 24 * 3600 * 1000;
    const message = (kind: 'delta' | 'state', fields: Record<string, unknown>) =>
      decodeEnvelope(
        JSON.stringify({
          v: 2,
          o: 'eu-central-1',
          d: 'doc',
          ...(kind === 'state' ? { k: 's' } : {}),
          h: [NOW, 0, ORIGIN_REPLICA],
          b: { m: fields },
        }),
      );
    const counter = (group: string, beforeMs: number) => ({
      t: 'pn',
      a: A,
      p: { r: {}, f: { [group]: [beforeMs, 1] } },
      n: { r: {} },
    });
    const set = (group: string, beforeMs: number) => ({
      t: 'or',
      a: A,
      r: [],
      e: [],
      vv: [],
      c: [],
      z: { [group]: beforeMs },
    });

    it.each<[string, Envelope | (() => Envelope), string]>([
      [
        "a fold of the receiver's epochs dated in the year 2999",
        () => message('state', { n: counter('us-east-1', Date.UTC(2999, 0, 1)) }),
        'fold-too-recent',
      ],
      [
        'a horizon dated yesterday',
        () => message('state', { s: set('us-east-1', NOW - DAY) }),
        'fold-too-recent',
      ],
      [
        'a horizon in a delta',
        () => message('delta', { s: set('eu-central-1', NOW - 30 * DAY) }),
        'fold-in-delta',
      ],
      [
        "a delta carrying another region's fold",
        () => message('delta', { n: counter('us-east-1', NOW - 30 * DAY) }),
        'fold-in-delta',
      ],
    ])('refuses %s, leaving the document as it was', async (_what, envelope, code) => {
      const us = receiver();
      await us.replica.update('doc', { kind: 'increment', field: 'n', by: 40 });
      await us.replica.update('doc', { kind: 'add', field: 's', element: 'x' });
      const before = us.store.items.get('doc');
      await expect(
        us.replica.receive(typeof envelope === 'function' ? envelope() : envelope),
      ).rejects.toMatchObject({ code });
      expect(us.store.items.get('doc')).toBe(before);
      await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).resolves.toBeDefined();
    });

    it.each<[string, Record<string, unknown>, string]>([
      [
        "another region's count in a delta",
        { n: { t: 'g', a: A, r: { 'us-east-1@00lmw3ai8abcd': 5 } } },
        'foreign-change',
      ],
      [
        "another region's element in a delta",
        { s: { t: 'or', a: A, r: ['us-east-1@00lmw3ai8abcd'], e: [['x', [0, 1]]], vv: [0, 1], c: [] } },
        'foreign-change',
      ],
      [
        'a delta context that claims a whole history of a replica',
        { s: { t: 'or', a: A, r: ['us-east-1@00lmw3ai8abcd'], e: [], vv: [0, 2 ** 53 - 1], c: [] } },
        'delta-context',
      ],
      [
        'a replica id without a region epoch',
        { n: { t: 'g', a: A, r: { constructor: 1 } } },
        'unknown-replica',
      ],
      [
        'an epoch that has not begun',
        { n: { t: 'g', a: A, r: { 'eu-central-1@0zzzzzzzzabcd': 1 } } },
        'unknown-replica',
      ],
    ])('refuses %s', async (_what, fields, code) => {
      const us = receiver();
      await expect(us.replica.receive(message('delta', fields))).rejects.toMatchObject({ code });
      expect(us.store.items.size).toBe(0);
    });

    it("accepts an origin's own old fold in a delta, and an old horizon in a full state", async () => {
      const us = receiver();
      await expect(
        us.replica.receive(message('delta', { n: counter('eu-central-1', NOW - 30 * DAY) })),
      ).resolves.toBe('merged');
      await expect(
        us.replica.receive(message('state', { s: set('eu-central-1', NOW - 30 * DAY) })),
      ).resolves.toBe('merged');
    });
  });

  it('refuses a body stamp later than the message clock', async () => {
    const us = receiver();
    const envelope = await validDelta();
    await expect(
      us.replica.receive({ ...envelope, hlc: { ...envelope.hlc, wallMs: NOW - 1 } }),
    ).rejects.toMatchObject({
      code: 'stamp-after-clock',
    });
  });

  it('accepts a clock exactly 5 minutes ahead', async () => {
    const us = receiver();
    const envelope = await validDelta();
    await expect(
      us.replica.receive({ ...envelope, hlc: { ...envelope.hlc, wallMs: NOW + 300_000 } }),
    ).resolves.toBe('merged');
  });

  it('round-trips what it accepts', async () => {
    const envelope = await validDelta();
    expect(encodeEnvelope(decodeEnvelope(encodeEnvelope(envelope)))).toBe(encodeEnvelope(envelope));
  });
});
