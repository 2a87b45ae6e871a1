import { encodeMap, readCrdt, type CrdtMap } from '../../runtime/crdt';
import {
  decodeEnvelope,
  encodeEnvelope,
  EnvelopeError,
  SyncReplica,
  type DocumentStore,
  type Envelope,
  type StoredDocument,
} from '../../runtime/sync';

/** A region's table in memory, with the conditional write DynamoDB gives. */
function memoryStore(): DocumentStore {
  const items = new Map<string, StoredDocument>();
  return {
    load: async (document) => items.get(document),
    save: async (document, next, expected) => {
      if ((items.get(document)?.version ?? 0) !== expected) return false;
      items.set(document, next);
      return true;
    },
    documents: async () => [...items.keys()],
  };
}

function region(name: string) {
  const published: Envelope[] = [];
  const replica = new SyncReplica({
    region: name,
    store: memoryStore(),
    publisher: { publish: async (e) => void published.push(e) },
    now: () => 1_000,
  });
  return { replica, published };
}

describe('SyncReplica', () => {
  it('ships the delta of a change, not the document: its size does not grow with the set', async () => {
    const { replica, published } = region('eu-central-1');
    const sizeOfLast = () => Buffer.byteLength(encodeEnvelope(published[published.length - 1] as Envelope));
    for (let i = 0; i < 10; i++)
      await replica.update('presence', { kind: 'add', field: 'members', element: `user-${i}` });
    const small = sizeOfLast();
    for (let i = 10; i < 1_000; i++)
      await replica.update('presence', { kind: 'add', field: 'members', element: `user-${i}` });
    const large = sizeOfLast();
    expect(published.every((e) => e.kind === 'delta')).toBe(true);
    expect(large).toBeLessThanOrEqual(200);
    expect(large - small).toBeLessThanOrEqual(12); // digits only: element name, dot counter, clock
    expect((readCrdt((await replica.read('presence')).get('members') as never) as string[]).length).toBe(
      1_000,
    );
  });

  it('merges what other regions publish and ignores its own messages', async () => {
    const eu = region('eu-central-1');
    const us = region('us-east-1');
    await eu.replica.update('quota', { kind: 'increment', field: 'used', by: 5 });
    await us.replica.update('quota', { kind: 'increment', field: 'used', by: 7 });
    for (const envelope of eu.published)
      await expect(us.replica.receive(decodeEnvelope(encodeEnvelope(envelope)))).resolves.toBe('merged');
    for (const envelope of us.published) await expect(us.replica.receive(envelope)).resolves.toBe('own');
    expect(readCrdt((await us.replica.read('quota')).get('used') as never)).toBe(12);
  });

  it('keeps a stored change when its publish fails, counts it, and lets anti-entropy carry it', async () => {
    let failures = 0;
    const replica = new SyncReplica({
      region: 'eu-central-1',
      store: memoryStore(),
      publisher: { publish: () => Promise.reject(new Error('SNS unavailable')) },
      now: () => 1_000,
      metrics: {
        merged: () => undefined,
        conflictRetried: () => undefined,
        lagMs: () => undefined,
        publishFailed: (n) => (failures += n),
      },
    });
    await expect(replica.update('quota', { kind: 'increment', field: 'used', by: 4 })).resolves.toBeDefined();
    expect(failures).toBe(1);
    expect(readCrdt((await replica.read('quota')).get('used') as never)).toBe(4);
  });

  it('repairs a region that lost every message with one anti-entropy pass', async () => {
    const eu = region('eu-central-1');
    const us = region('us-east-1');
    for (let i = 0; i < 10; i++)
      await eu.replica.update('flags', { kind: 'set', field: 'mode', value: `v${i}` });
    eu.published.length = 0; // all lost
    await eu.replica.publishFullState();
    for (const envelope of eu.published) await us.replica.receive(envelope);
    const encode = (state: CrdtMap) => encodeMap(state);
    expect(encode(await us.replica.read('flags'))).toBe(encode(await eu.replica.read('flags')));
  });
});

describe('decodeEnvelope', () => {
  const valid = encodeEnvelope({
    origin: 'eu-central-1',
    document: 'quota',
    kind: 'delta',
    hlc: { wallMs: 5, logical: 0, replica: 'eu-central-1' },
    body: new Map([['used', { type: 'gcounter', state: { 'eu-central-1': 3 } }]]),
  });
  const patched = (patch: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(valid), ...patch });

  it('round-trips', () => {
    expect(encodeEnvelope(decodeEnvelope(valid))).toBe(valid);
  });

  it.each([
    ['another protocol version', patched({ v: 2 }), 'unsupported protocol version 2; expected 1'],
    ['no origin', patched({ o: '' }), 'o (origin): expected the sending region'],
    ['a bad kind', patched({ k: 'patch' }), 'k (kind): expected "s" (full state) or no kind (a delta)'],
    ['a bad clock', patched({ h: [1, -1, 'x'] }), 'h (clock): expected [wallMs, logical, replica]'],
    ['a body that is not a document', patched({ b: 'x' }), 'b (body): expected the encoded document'],
    [
      'a corrupt CRDT',
      patched({ b: { m: { used: { t: 'g', s: { r: -4 } } } } }),
      'b (body): invalid CRDT at $.m["used"].s.r',
    ],
    ['not JSON', 'garbage', 'not valid JSON'],
  ])('refuses %s with the reason the dead-letter queue keeps', (_what, text, reason) => {
    expect(() => decodeEnvelope(text)).toThrow(EnvelopeError);
    expect(() => decodeEnvelope(text)).toThrow(reason);
  });
});
