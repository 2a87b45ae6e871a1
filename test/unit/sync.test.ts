import { encodeDocument, lineageOf, readField, type CrdtDocument, type Field } from '../../runtime/crdt';
import {
  DocumentKeyError,
  DocumentTooLargeError,
  decodeEnvelope,
  encodeEnvelope,
  MAX_PART_BYTES,
  MAX_LOCAL_DOCUMENT_BYTES,
  OperationError,
  SyncReplica,
  type Envelope,
  type StoredDocument,
} from '../../runtime/sync';
import { memoryStore, testRegion, type TestRegion } from '../support/sync-harness';

const read = async (region: TestRegion, document: string, field: string) => {
  const value = (await region.replica.read(document)).get(field);
  return value ? readField(value) : undefined;
};
/** Delivers everything `from` published (through the wire encoding) to `to`, then forgets it. */
const deliver = async (from: TestRegion, to: TestRegion) => {
  for (const envelope of from.published.splice(0))
    await to.replica.receive(decodeEnvelope(encodeEnvelope(envelope)));
};
const antiEntropy = async (from: TestRegion, to: TestRegion) => {
  await from.replica.publishFullState();
  await deliver(from, to);
};

describe('SyncReplica', () => {
  it('ships the delta of a change, not the document: its size does not grow with the set', async () => {
    const eu = testRegion('eu-central-1');
    const sizeOfLast = () =>
      Buffer.byteLength(encodeEnvelope(eu.published[eu.published.length - 1] as Envelope));
    for (let i = 0; i < 10; i++)
      await eu.replica.update('presence', { kind: 'add', field: 'members', element: `user-${i}` });
    const small = sizeOfLast();
    for (let i = 10; i < 1_000; i++)
      await eu.replica.update('presence', { kind: 'add', field: 'members', element: `user-${i}` });
    const large = sizeOfLast();
    expect(eu.published.every((e) => e.kind === 'delta')).toBe(true);
    expect(large).toBeLessThanOrEqual(300);
    expect(large - small).toBeLessThanOrEqual(12); // digits only: element name, dot counter, clock
    expect(((await read(eu, 'presence', 'members')) as string[]).length).toBe(1_000);
  });

  it('merges what its peers publish', async () => {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    await eu.replica.update('quota', { kind: 'increment', field: 'used', by: 5 });
    await us.replica.update('quota', { kind: 'increment', field: 'used', by: 7 });
    await deliver(eu, us);
    await deliver(us, eu);
    expect(await read(us, 'quota', 'used')).toBe(12);
    expect(await read(eu, 'quota', 'used')).toBe(12);
    expect(us.calls.merged).toBe(1);
  });

  it('issues changes under a replica of its region with an epoch, a new one per process', async () => {
    const eu = testRegion('eu-central-1');
    await eu.replica.update('quota', { kind: 'increment', field: 'used', by: 1 });
    const first = eu.published[0]?.hlc.replica as string;
    eu.restart();
    await eu.replica.update('quota', { kind: 'increment', field: 'used', by: 1 });
    const second = eu.published[1]?.hlc.replica as string;
    expect(lineageOf(first)?.group).toBe('eu-central-1');
    expect(lineageOf(second)?.group).toBe('eu-central-1');
    expect(second).not.toBe(first);
    expect(await read(eu, 'quota', 'used')).toBe(2);
  });

  it('keeps a stored change when its publish fails, counts it, and lets anti-entropy carry it', async () => {
    const eu = testRegion('eu-central-1', {
      publisher: { publish: () => Promise.reject(new Error('SNS unavailable')) },
    });
    await expect(
      eu.replica.update('quota', { kind: 'increment', field: 'used', by: 4 }),
    ).resolves.toBeDefined();
    expect(eu.calls.publishFailed).toBe(1);
    expect(await read(eu, 'quota', 'used')).toBe(4);
  });

  it('repairs a region that lost every message with one anti-entropy pass', async () => {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    for (let i = 0; i < 10; i++)
      await eu.replica.update('flags', { kind: 'set', field: 'mode', value: `v${i}` });
    eu.published.length = 0; // all lost
    await antiEntropy(eu, us);
    expect(encodeDocument(await us.replica.read('flags'))).toBe(
      encodeDocument(await eu.replica.read('flags')),
    );
    expect(us.calls.lag).toEqual([]); // full state is not lag
  });

  it('does not acknowledge a message before its write is stored', async () => {
    const store = memoryStore();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = {
      ...store,
      save: async (...args: Parameters<typeof store.save>) => (await gate, store.save(...args)),
    };
    const us = new SyncReplica({
      region: 'us-east-1',
      peers: ['eu-central-1'],
      store: slow,
      publisher: { publish: async () => undefined },
      now: () => 1_700_000_000_000,
    });
    const eu = testRegion('eu-central-1');
    await eu.replica.update('quota', { kind: 'increment', field: 'used', by: 3 });
    let settled = false;
    const receiving = us.receive(eu.published[0] as Envelope).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    release();
    await receiving;
    expect(store.items.get('quota')).toBeDefined();
  });
});

describe('a restored table', () => {
  /**
   * eu adds 5 and 5 and x, y; both delivered; eu's item goes back to before the second pair; eu adds 7 and
   * z; anti-entropy both ways. Every update lives somewhere, so both regions must end with 17 and x, y, z.
   */
  async function restoreScenario(afterRestore: (eu: TestRegion) => void) {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 5 });
    await eu.replica.update('doc', { kind: 'add', field: 's', element: 'x' });
    const snapshot = eu.store.items.get('doc') as StoredDocument;
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 5 });
    await eu.replica.update('doc', { kind: 'add', field: 's', element: 'y' });
    await deliver(eu, us);
    eu.store.items.set('doc', snapshot); // point-in-time restore of the item
    afterRestore(eu);
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 7 });
    await eu.replica.update('doc', { kind: 'add', field: 's', element: 'z' });
    await deliver(eu, us);
    await antiEntropy(eu, us);
    await antiEntropy(us, eu);
    for (const region of [eu, us]) {
      expect({ region: region.name, n: await read(region, 'doc', 'n') }).toEqual({
        region: region.name,
        n: 17,
      });
      expect({ region: region.name, s: await read(region, 'doc', 's') }).toEqual({
        region: region.name,
        s: ['x', 'y', 'z'],
      });
    }
  }

  it('loses no update when the same process writes after the restore (it starts a new epoch)', () =>
    restoreScenario(() => undefined));

  it('loses no update when a new process writes after the restore', () =>
    restoreScenario((eu) => void eu.restart()));

  it('loses no update when the item was deleted and written again', async () => {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 5 });
    await deliver(eu, us);
    eu.store.items.delete('doc');
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 2 });
    await deliver(eu, us);
    await antiEntropy(us, eu);
    expect(await read(us, 'doc', 'n')).toBe(7);
    expect(await read(eu, 'doc', 'n')).toBe(7);
  });

  const DAY = 24 * 3600 * 1000;

  it('folds old epochs once every peer has sent a full state late enough, keeping every value', async () => {
    let now = 1_700_000_000_000;
    const eu = testRegion('eu-central-1', { now: () => now });
    const us = testRegion('us-east-1', { now: () => now });
    for (let process = 0; process < 30; process++) {
      eu.restart(); // a cold start: a new epoch
      await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
      await eu.replica.update('doc', { kind: 'add', field: 's', element: `e${process % 3}` });
      await deliver(eu, us);
      if (process % 5 === 0) await antiEntropy(us, eu); // eu hears the whole document from us now and then
      now += 6 * 3600 * 1000;
    }
    const counts = (region: TestRegion) => {
      const variant = (region.store.items.get('doc')?.state.get('n') as Field)[0];
      return variant?.crdt.type === 'pncounter' ? variant.crdt.state.p.counts.size : -1;
    };
    expect(counts(eu)).toBeLessThan(30); // older epochs folded into one total
    expect(counts(eu)).toBeGreaterThan(0);
    expect(counts(us)).toBe(counts(eu)); // the deltas carried the fold
    expect(await read(eu, 'doc', 'n')).toBe(30);
    await antiEntropy(eu, us);
    expect(await read(us, 'doc', 'n')).toBe(30);
    expect(await read(us, 'doc', 's')).toEqual(['e0', 'e1', 'e2']);
    expect(encodeDocument(await us.replica.read('doc'))).toBe(encodeDocument(await eu.replica.read('doc')));
  });

  it('folds nothing while a peer has not sent a full state since the epochs ended', async () => {
    let now = 1_700_000_000_000;
    const eu = testRegion('eu-central-1', { now: () => now });
    for (let process = 0; process < 10; process++) {
      eu.restart();
      await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
      now += 2 * DAY;
    }
    const variant = (eu.store.items.get('doc')?.state.get('n') as Field)[0];
    expect(variant?.crdt.type === 'pncounter' && variant.crdt.state.p.folds.size).toBe(0);
  });

  it.each([
    ['3 hours', 3 * 3600 * 1000],
    ['6 days', 6 * DAY],
    ['30 days', 30 * DAY],
  ])('loses no update when the item goes %s back while the clock moves on for weeks', async (_what, back) => {
    let now = 1_700_000_000_000;
    const eu = testRegion('eu-central-1', { now: () => now });
    const us = testRegion('us-east-1', { now: () => now });
    const history: StoredDocument[] = [];
    const at = new Map<StoredDocument, number>();
    const step = async (ms: number) => {
      now += ms;
      const stored = eu.store.items.get('doc');
      if (stored && !at.has(stored)) {
        history.push(stored);
        at.set(stored, now);
      }
    };
    let n = 0;
    for (let i = 0; i < 40; i++) {
      if (i % 7 === 0) eu.restart();
      await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
      await eu.replica.update('doc', { kind: 'add', field: 's', element: `e${i}` });
      n++;
      await deliver(eu, us);
      if (i % 4 === 0) {
        await antiEntropy(us, eu);
        await antiEntropy(eu, us);
      }
      await step(DAY);
    }
    const restorePoint = [...history].reverse().find((stored) => (at.get(stored) as number) <= now - back);
    eu.store.items.set('doc', restorePoint as StoredDocument); // point-in-time restore
    for (let i = 40; i < 50; i++) {
      await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
      await eu.replica.update('doc', { kind: 'add', field: 's', element: `e${i}` });
      n++;
      await deliver(eu, us);
      if (i % 3 === 0) {
        await antiEntropy(us, eu);
        await antiEntropy(eu, us);
      }
      await step(DAY);
    }
    await antiEntropy(us, eu);
    await antiEntropy(eu, us);
    const everything = Array.from({ length: 50 }, (_, i) => `e${i}`).sort();
    for (const region of [eu, us]) {
      expect({ region: region.name, n: await read(region, 'doc', 'n') }).toEqual({ region: region.name, n });
      expect({ region: region.name, s: await read(region, 'doc', 's') }).toEqual({
        region: region.name,
        s: everything,
      });
    }
  });
});

describe('a type clash', () => {
  it('merges key by key: the other fields repair, and every region reads the clashing field the same', async () => {
    let now = 1_700_000_000_000;
    const eu = testRegion('eu-central-1', { now: () => now });
    const us = testRegion('us-east-1', { now: () => now });
    await eu.replica.update('doc', { kind: 'increment', field: 'f', by: 4 }); // created first
    now += 1;
    await us.replica.update('doc', { kind: 'add', field: 'f', element: 'x' });
    await eu.replica.update('doc', { kind: 'set', field: 'other', value: 'from eu' });
    eu.published.splice(1); // the delta of `other` is lost
    await deliver(eu, us);
    await deliver(us, eu);
    await antiEntropy(eu, us);
    await antiEntropy(us, eu);
    for (const region of [eu, us]) {
      expect(await read(region, 'doc', 'f')).toBe(4);
      expect(await read(region, 'doc', 'other')).toBe('from eu');
    }
    expect(encodeDocument(await us.replica.read('doc'))).toBe(encodeDocument(await eu.replica.read('doc')));
    expect(us.calls.clashes).toEqual([['doc', 'f', 'pncounter', 'orset']]);
    expect(eu.calls.clashes).toEqual([['doc', 'f', 'pncounter', 'orset']]);
    // writes of the losing type are refused where the field reads as the winner
    await expect(us.replica.update('doc', { kind: 'add', field: 'f', element: 'y' })).rejects.toThrow(
      OperationError,
    );
  });
});

describe('trust boundaries', () => {
  const envelopeFrom = async (origin: string, patch: Partial<Envelope> = {}) => {
    const sender = testRegion(origin, { peers: ['us-east-1'] });
    await sender.replica.update('doc', { kind: 'set', field: 'v', value: 1 });
    return { ...(sender.published[0] as Envelope), ...patch };
  };

  it.each([
    ['its own region as origin', 'us-east-1', {}, 'own-origin'],
    ['a region that is not a configured peer', 'ap-southeast-1', {}, 'unknown-origin'],
  ])('refuses an envelope naming %s', async (_what, origin, patch, code) => {
    const us = testRegion('us-east-1');
    const envelope = await envelopeFrom(origin, patch);
    await expect(us.replica.receive(envelope)).rejects.toMatchObject({ code });
    expect(us.store.items.size).toBe(0);
  });

  it("refuses a clock that is not the origin's", async () => {
    const us = testRegion('us-east-1');
    const envelope = await envelopeFrom('eu-central-1');
    const forged = { ...envelope, hlc: { ...envelope.hlc, replica: 'ap-southeast-1@000000001abcd' } };
    await expect(us.replica.receive(forged)).rejects.toMatchObject({ code: 'clock-not-origin' });
  });

  it('refuses a clock or a stamp more than the skew ahead, and its own clock does not move', async () => {
    const now = 1_700_000_000_000;
    const us = testRegion('us-east-1', { now: () => now });
    await us.replica.update('doc', { kind: 'set', field: 'v', value: 'mine' });
    const before = us.store.items.get('doc') as StoredDocument;
    const envelope = await envelopeFrom('eu-central-1');
    const year2286 = 9_999_999_999_999;
    await expect(
      us.replica.receive({ ...envelope, hlc: { ...envelope.hlc, wallMs: year2286 } }),
    ).rejects.toMatchObject({ code: 'clock-ahead' });
    const field = envelope.body.get('v') as Field;
    const variant = field[0];
    if (variant?.crdt.type !== 'lww') throw new Error('expected a register');
    const futureBody: CrdtDocument = new Map([
      [
        'v',
        [
          {
            ...variant,
            crdt: {
              type: 'lww',
              state: {
                ...variant.crdt.state,
                stamp: { ...variant.crdt.state.stamp, wallMs: now + 6 * 60_000 },
              },
            },
          },
        ],
      ],
    ]);
    await expect(us.replica.receive({ ...envelope, body: futureBody })).rejects.toMatchObject({
      code: 'stamp-after-clock',
    });
    await expect(
      us.replica.receive({
        ...envelope,
        hlc: { ...envelope.hlc, wallMs: now + 6 * 60_000 },
        body: futureBody,
      }),
    ).rejects.toMatchObject({ code: 'clock-ahead' });
    expect(us.store.items.get('doc')).toBe(before);
    await us.replica.update('doc', { kind: 'set', field: 'v', value: 'later' });
    expect(us.store.items.get('doc')?.clock?.wallMs).toBeLessThan(now + 1000);
  });
});

describe('limits', () => {
  it('refuses a local change that would make one part too large, naming the document and the size', async () => {
    const eu = testRegion('eu-central-1');
    await eu.replica.update('big', { kind: 'set', field: 'small', value: 'ok' });
    const error = await eu.replica
      .update('big', { kind: 'set', field: 'huge', value: 'x'.repeat(MAX_PART_BYTES) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentTooLargeError);
    expect((error as DocumentTooLargeError).document).toBe('big');
    expect((error as DocumentTooLargeError).bytes).toBeGreaterThan(MAX_PART_BYTES);
    expect((error as Error).message).toMatch(
      /^document "big": a part of the document would be \d+ bytes stored; the limit is 258048 bytes$/,
    );
    expect(await read(eu, 'big', 'huge')).toBeUndefined();
    expect(eu.published).toHaveLength(1);
  });

  it('stores a document larger than one item, and refuses a local change past the local limit', async () => {
    const eu = testRegion('eu-central-1');
    const value = 'x'.repeat(200_000);
    const fields = Math.floor(MAX_LOCAL_DOCUMENT_BYTES / 200_200);
    for (let i = 0; i < fields; i++) await eu.replica.update('big', { kind: 'set', field: `f${i}`, value });
    expect((await eu.replica.read('big')).size).toBe(fields);
    const error = await eu.replica
      .update('big', { kind: 'set', field: 'one-more', value })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentTooLargeError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^document "big": the document would be \\d+ bytes stored; the limit is ${MAX_LOCAL_DOCUMENT_BYTES} bytes$`,
      ),
    );
    expect(await read(eu, 'big', 'one-more')).toBeUndefined();
  });

  it('counts a document key in UTF-8 bytes, not characters', async () => {
    const eu = testRegion('eu-central-1');
    await expect(
      eu.replica.update('é'.repeat(512), { kind: 'increment', field: 'n', by: 1 }),
    ).resolves.toBeDefined();
    await expect(
      eu.replica.update('é'.repeat(513), { kind: 'increment', field: 'n', by: 1 }),
    ).rejects.toThrow(DocumentKeyError);
  });

  it('keeps its own state of a counter whose merge would pass 2^53 - 1, merges the other fields, and reports it', async () => {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: Number.MAX_SAFE_INTEGER - 10 });
    await eu.replica.update('doc', { kind: 'set', field: 'label', value: 'kept' });
    await us.replica.update('doc', { kind: 'increment', field: 'n', by: 100 });
    eu.published.length = 0;
    await eu.replica.publishFullState();
    await expect(us.replica.receive(eu.published[0] as Envelope)).resolves.toBe('merged');
    expect(await read(us, 'doc', 'n')).toBe(100);
    expect(await read(us, 'doc', 'label')).toBe('kept');
    expect(us.calls.refused).toEqual([['doc', 1, "a counter's total may not pass 9007199254740991"]]);
    await expect(eu.replica.update('doc', { kind: 'increment', field: 'n', by: 11 })).rejects.toThrow(
      "a counter's total may not pass",
    );
    expect(await read(eu, 'doc', 'n')).toBe(Number.MAX_SAFE_INTEGER - 10);
  });
});
