import {
  AntiEntropy,
  ContentionError,
  decodeMessage,
  DynamodbDocumentStore,
  encodeControl,
  encodeEnvelope,
  NO_METRICS,
  retryDelayMs,
  SnsPublisher,
  turnDelayMs,
  SyncReplica,
  type ControlMessage,
  type DigestMessage,
  type Envelope,
  type PullMessage,
} from '../../runtime/sync';
import { TransactWriteItemsCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { CrdtDocument, ORSet, Variant } from '../../runtime/crdt';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { MemoryDynamodb } from '../support/memory-dynamodb';
import { seededRandom } from '../support/seeded-random';
import { inboxContext, sqsEvent } from '../support/inbox-harness';
import {
  memoryCheckpoints,
  memoryIndex,
  recordingMetrics,
  testRegion,
  type TestRegion,
} from '../support/sync-harness';

const EU = 'eu-central-1';
const US = 'us-east-1';
const T0 = 1_700_000_000_000;

/** Counts the store's loads and saves. */
function counting(region: TestRegion) {
  const counts = { loads: 0, saves: 0 };
  const { load, save } = region.store;
  region.store.load = (...args) => (counts.loads++, load(...args));
  region.store.save = (...args) => (counts.saves++, save(...args));
  return counts;
}

async function deltas(count: number, document = 'doc', field = 'n'): Promise<Envelope[]> {
  const eu = testRegion(EU);
  for (let i = 0; i < count; i++) await eu.replica.update(document, { kind: 'increment', field, by: 1 });
  await eu.replica.update(document, { kind: 'add', field: 's', element: 'x' });
  return eu.published.splice(0);
}

describe('one load and one save per document per batch', () => {
  it('merges 10 deltas of one document in one batch with one load and one save', async () => {
    const us = testRegion(US);
    const counts = counting(us);
    const batch = (await deltas(10)).map((e) => encodeEnvelope(e));
    const { ctx, deadLettered } = inboxContext(us.replica);
    await expect(processInbox(ctx, sqsEvent(batch))).resolves.toEqual({ batchItemFailures: [] });
    expect(counts).toEqual({ loads: 1, saves: 1 });
    expect(deadLettered).toEqual([]);
    expect((await us.replica.read('doc')).get('n')?.[0]?.crdt).toMatchObject({ type: 'pncounter' });
    expect(us.calls.merged).toBe(11);
  });

  it('merges documents of one batch apart: a document that fails leaves the others merged', async () => {
    const us = testRegion(US);
    const a = (await deltas(2, 'a')).map((e) => encodeEnvelope(e));
    const b = (await deltas(2, 'b')).map((e) => encodeEnvelope(e));
    const { save } = us.store;
    us.store.save = async (document, ...rest) => {
      if (document === 'a') throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
      return save(document, ...rest);
    };
    const { ctx } = inboxContext(us.replica);
    const response = await processInbox(ctx, sqsEvent([...a, ...b]));
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['m0', 'm1', 'm2']);
    expect(us.store.items.has('b')).toBe(true);
    expect(us.store.items.has('a')).toBe(false);
  });

  it('refuses an untrusted envelope of a document alone; the batch merges the rest of that document', async () => {
    const us = testRegion(US);
    const [good, other] = await deltas(1);
    const foreign = { ...(good as Envelope), origin: 'ap-south-1' };
    const outcomes = await us.replica.receiveAll([good as Envelope, foreign, other as Envelope]);
    expect(outcomes.map((o) => (o instanceof Error ? (o as { code?: string }).code : o))).toEqual([
      'merged',
      'unknown-origin',
      'merged',
    ]);
  });
});

describe('a merge that changes nothing', () => {
  it('writes nothing and keeps the version: a duplicate, and a full state the region already holds', async () => {
    const us = testRegion(US);
    const [delta] = await deltas(1);
    await us.replica.receive(delta as Envelope);
    const version = us.store.items.get('doc')?.version;
    const counts = counting(us);
    await us.replica.receive(delta as Envelope);
    const full = (await us.replica.fullState('doc')) as Envelope;
    const eu = testRegion(EU);
    await eu.replica.receive({ ...full, origin: US });
    await us.replica.receive({ ...(await eu.replica.fullState('doc')), origin: EU } as Envelope);
    expect(counts.saves).toBe(1); // only the `heard` of eu's full state (what folding rests on) changed
    expect(us.store.items.get('doc')?.version).toBe((version as number) + 1);
    await us.replica.receive(delta as Envelope);
    expect(counts.saves).toBe(1);
  });
});

describe('replication lag', () => {
  it('is measured from deltas only, per peer: from the write at the origin to the merge here', async () => {
    let now = T0;
    const eu = testRegion(EU, { now: () => now });
    const us = testRegion(US, { now: () => now });
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    now += 2_500;
    await us.replica.receive(eu.published[0] as Envelope);
    now += 6 * 3600_000;
    await us.replica.receive((await eu.replica.fullState('doc')) as Envelope);
    expect(us.calls.lag).toEqual([[2_500, EU]]);
  });
});

describe('conflicting writes', () => {
  it('retry after a capped exponential backoff with full jitter, then give up counted as contention', async () => {
    const waits: number[] = [];
    const us = testRegion(US, {
      sleep: async (ms: number) => void waits.push(ms),
      maxAttempts: 8,
      random: () => 0.999,
    });
    us.store.save = async () => false;
    await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).rejects.toBeInstanceOf(
      ContentionError,
    );
    expect(waits).toHaveLength(7);
    waits.forEach((ms, i) => expect(ms).toBeCloseTo(0.999 * Math.min(8000, 250 * 2 ** i), 6));
    expect(us.calls.contention).toBe(1);
    expect(us.calls.retried).toBe(8);
    for (let attempt = 1; attempt < 20; attempt++) {
      expect(retryDelayMs(attempt, () => 0)).toBe(0);
      expect(retryDelayMs(attempt, () => 1)).toBeLessThanOrEqual(8000);
    }
  });

  it('take turns in the document’s line, one ticket per update, for the first three lost races; then full jitter', async () => {
    let clock = T0;
    const waits: number[] = [];
    const seen: number[] = [];
    const us = testRegion(US, {
      now: () => clock,
      sleep: async (ms: number) => void waits.push(ms),
      maxAttempts: 6,
      random: () => 0.5,
    });
    await us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 }); // version 1
    us.store.save = async () => ((clock += 40), false); // every attempt takes 40 ms and loses
    us.store.queue = async (_document, version) => (seen.push(version), version + 8); // 7th in line
    await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).rejects.toBeInstanceOf(
      ContentionError,
    );
    expect(seen).toEqual([1]); // one ticket: its turn (version 9) was still to come at each loss
    // Six turns of 40 ms before its own, then the middle of its own; then 0.5 of full jitter's 1 s and 2 s.
    expect(waits).toEqual([260, 260, 260, 1000, 2000]);
  });

  it.each([
    [3, 125], // third in line: full jitter (250 ms at the first retry)
    [4, 140], // fourth: three turns of 40 ms, then the middle of its own
  ])('wait at place %i in line %i ms', async (place, wait) => {
    let clock = T0;
    const waits: number[] = [];
    const us = testRegion(US, {
      now: () => clock,
      sleep: async (ms: number) => void waits.push(ms),
      maxAttempts: 2,
      random: () => 0.5,
    });
    us.store.save = async () => ((clock += 40), false);
    us.store.queue = async (_document, read) => read + 1 + place;
    await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).rejects.toBeInstanceOf(
      ContentionError,
    );
    expect(waits).toEqual([wait]);
  });

  it('take a new ticket once passed; leave a short line (a few writers) to full jitter', async () => {
    let version = 1;
    const waits: number[] = [];
    const seen: number[] = [];
    const us = testRegion(US, {
      sleep: async (ms: number) => void waits.push(ms),
      maxAttempts: 4,
      random: () => 0.5,
    });
    await us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    const { load } = us.store;
    us.store.load = async (...args) => {
      const stored = await load(...args);
      return stored && { ...stored, version }; // others commit: each read sees a later version
    };
    us.store.save = async () => ((version += 2), false);
    us.store.queue = async (_document, read) => (seen.push(read), read + 3); // second in line
    await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).rejects.toBeInstanceOf(
      ContentionError,
    );
    expect(seen).toEqual([1, 3, 5]); // passed every time: a new ticket each time
    expect(waits).toEqual([125, 250, 500]); // second in line: full jitter
  });

  it('bound a turn’s wait to 2 s, spread at the back too', async () => {
    expect(turnDelayMs(1, 20, () => 0)).toBe(0);
    expect(turnDelayMs(1, 20, () => 0.999)).toBeCloseTo(19.98, 6);
    expect(turnDelayMs(0, 20, () => 0.5)).toBe(10); // a place before the first is the first
    expect(turnDelayMs(3, 0, () => 0)).toBe(10); // turns of at least 5 ms
    expect(turnDelayMs(3, 60_000, () => 0)).toBe(1000); // of at most 1 s, 2 s in all
    expect(turnDelayMs(100, 20, () => 0)).toBe(1980);
    expect(turnDelayMs(100, 20, () => 1)).toBe(2000);
    // Turns that come after 2 s: spread over its second half, not all at its end.
    expect(turnDelayMs(200, 20, () => 0)).toBe(1000);
    expect(turnDelayMs(200, 20, () => 0.5)).toBe(1500);
    expect(turnDelayMs(200, 20, () => 1)).toBe(2000);
    expect(turnDelayMs(Number.NaN, Number.NaN, () => 0.5)).toBe(2.5); // first, turns of 5 ms
  });

  const refused = (name: string, message: string) => async (): Promise<number> => {
    throw Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 } });
  };
  it.each([
    ['throttled', refused('ThrottlingException', 'Rate exceeded'), 2],
    ['denied', refused('AccessDeniedException', 'not authorized to perform: dynamodb:UpdateItem'), 2],
    ['no version after the one read', async () => Number.NaN, 0],
  ])('back off with full jitter when the line is %s (failures counted)', async (_case, queue, failures) => {
    const waits: number[] = [];
    const us = testRegion(US, {
      sleep: async (ms: number) => void waits.push(ms),
      maxAttempts: 3,
      random: () => 0.5,
    });
    us.store.save = async () => false;
    us.store.queue = queue;
    await expect(us.replica.update('doc', { kind: 'increment', field: 'n', by: 1 })).rejects.toBeInstanceOf(
      ContentionError,
    );
    expect(waits).toEqual([125, 250]);
    expect(us.calls.lineFailed).toBe(failures);
  });

  it('lose nothing when 20 writers of one region change one document at once', async () => {
    const us = testRegion(US);
    const writers = Array.from(
      { length: 20 },
      (_, i) =>
        new SyncReplica({
          region: US,
          peers: [EU],
          store: us.store,
          publisher: { publish: async () => undefined },
          now: () => T0,
          random: () => ((i * 7919) % 1000) / 1000,
          sleep: () => new Promise((resolve) => setImmediate(resolve)),
        }),
    );
    await Promise.all(writers.map((w, i) => w.update('doc', { kind: 'add', field: 's', element: `e${i}` })));
    const set = (await us.replica.read('doc')).get('s')?.[0]?.crdt;
    expect(set?.type === 'orset' && set.state.entries.length).toBe(20);
  });
});

describe('a line of writers on the part store', () => {
  it('gives writers that join at once distinct turns, one after another, whoever starts the line', async () => {
    const db = new MemoryDynamodb({ latencyMs: () => 4 });
    const store = new DynamodbDocumentStore(db.client(), 'state');
    const turns = await Promise.all(Array.from({ length: 10 }, () => store.queue('doc', 1)));
    expect([...turns].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      Array.from({ length: 10 }, (_, i) => 3 + i),
    );
    // Served up to version 12: the next writer to lose (having read 12) starts again, first.
    expect(await store.queue('doc', 12)).toBe(14);
  });

  it('takes no ticket after a write lost to throttling rather than to another writer', async () => {
    const db = new MemoryDynamodb();
    const cancelled = (...codes: string[]) =>
      Object.assign(new Error('Transaction cancelled'), {
        name: 'TransactionCanceledException',
        CancellationReasons: codes.map((Code) => ({ Code })),
      });
    const commit = {
      expected: 0,
      head: { version: 1, bytes: 0, digest: '0000000000000000' },
      puts: new Map<string, string>(),
      deletes: [],
    };
    let failure = cancelled('ThrottlingError', 'None');
    const table = db.client();
    const client = {
      send: (command: unknown) =>
        command instanceof TransactWriteItemsCommand ? Promise.reject(failure) : table.send(command as never),
    } as unknown as DynamoDBClient;
    const store = new DynamodbDocumentStore(client, 'state');
    expect(await store.save('doc', commit)).toBe(false);
    expect(await store.queue('doc', 0)).toBeUndefined();
    expect(db.count('UpdateItemCommand')).toBe(0);
    failure = cancelled('ConditionalCheckFailed', 'ThrottlingError'); // another writer won as well
    expect(await store.save('doc', commit)).toBe(false);
    expect(await store.queue('doc', 0)).toBe(2);
  });

  it('commits every one of 30 writers of one document at once, losers taking tickets', async () => {
    const db = new MemoryDynamodb({
      latencyMs: (command) => (command === 'TransactWriteItemsCommand' ? 6 : 2),
    });
    const store = new DynamodbDocumentStore(db.client(), 'state');
    let retried = 0;
    const writers = Array.from(
      { length: 30 },
      (_, i) =>
        new SyncReplica({
          region: US,
          peers: [EU],
          store,
          publisher: { publish: async () => undefined },
          now: Date.now,
          random: seededRandom(i + 1),
          metrics: { ...NO_METRICS, conflictRetried: (n) => void (retried += n) },
        }),
    );
    await Promise.all(writers.map((w, i) => w.update('doc', { kind: 'add', field: 's', element: `e${i}` })));
    const [set] = (await writers[0]!.read('doc')).get('s') ?? [];
    expect(set?.crdt.type === 'orset' && set.crdt.state.entries.length).toBe(30);
    expect(retried).toBeGreaterThan(0);
    expect(db.count('UpdateItemCommand')).toBeGreaterThan(0);
  });
});

/** Two regions, each with an anti-entropy over its memory store, on one clock; messages delivered by hand. */
function antiEntropyWorld(pageSize = 3, options: { failControl?: (call: number) => boolean } = {}) {
  const clock = { now: T0 };
  const sent: Array<{ from: string; message: ControlMessage | Envelope; to?: string }> = [];
  let controlCalls = 0;
  const make = (name: string, peer: string) => {
    const region = testRegion(name, { now: () => clock.now, peers: [peer] });
    const publisher = {
      publish: async (envelope: Envelope, to?: string) =>
        void sent.push({ from: name, message: envelope, to }),
      publishControl: async (message: ControlMessage) => {
        if (options.failControl?.(++controlCalls))
          throw Object.assign(new Error('throttled'), { name: 'Throttling' });
        sent.push({ from: name, message });
      },
    };
    region.replica = new SyncReplica({
      region: name,
      peers: [peer],
      store: region.store,
      publisher,
      now: () => clock.now,
      metrics: recordingMetricsOf(region),
      sleep: async () => undefined,
    });
    const checkpoints = memoryCheckpoints();
    const antiEntropy = new AntiEntropy({
      replica: region.replica,
      peers: [peer],
      maxClockSkewMs: 300_000,
      index: memoryIndex(region.store),
      checkpoints,
      publisher,
      now: () => clock.now,
      settleMs: 60_000,
      pageSize,
      metrics: recordingMetricsOf(region),
    });
    return { region, antiEntropy, checkpoints };
  };
  const metricsByRegion = new Map<TestRegion, ReturnType<typeof recordingMetrics>>();
  function recordingMetricsOf(region: TestRegion) {
    let recorded = metricsByRegion.get(region);
    if (!recorded) metricsByRegion.set(region, (recorded = recordingMetrics()));
    return recorded.metrics;
  }
  const eu = make(EU, US);
  const us = make(US, EU);
  const calls = (region: TestRegion) => metricsByRegion.get(region)?.calls;
  /** Delivers what was sent (decoded from its wire form, as the inbox does), until nothing more is sent. */
  const deliver = async () => {
    while (sent.length > 0) {
      const { from, message } = sent.shift() as (typeof sent)[number];
      const to = from === EU ? us : eu;
      const text = 'body' in message ? encodeEnvelope(message) : encodeControl(message);
      const decoded = decodeMessage(text);
      if (decoded.kind === 'digests') await to.antiEntropy.compare(decoded);
      else if (decoded.kind === 'pull') await to.antiEntropy.answer(decoded);
      else if (decoded.kind === 'delta' || decoded.kind === 'state') await to.region.replica.receive(decoded);
    }
  };
  return { clock, sent, eu, us, calls, deliver };
}

describe('anti-entropy in proportion to change', () => {
  it('announces what changed since the last pass plus one page of the sweep, resuming from its checkpoint', async () => {
    const world = antiEntropyWorld(3);
    for (let i = 0; i < 10; i++)
      await world.eu.region.replica.update(`d${i}`, { kind: 'increment', field: 'n', by: 1 });
    world.sent.length = 0;
    world.clock.now += 120_000;
    const first = await world.eu.antiEntropy.pass();
    expect(first).toMatchObject({ changed: 10, swept: 3, messages: 1, failed: 0, sweepDone: false });
    world.sent.length = 0;
    await world.eu.region.replica.update('d7', { kind: 'increment', field: 'n', by: 1 });
    world.sent.length = 0;
    world.clock.now += 120_000;
    const second = await world.eu.antiEntropy.pass();
    expect(second).toMatchObject({ changed: 1, swept: 3 });
    const announced = (world.sent[0]?.message as DigestMessage).entries.map((e) => e.document).sort();
    expect(announced).toEqual(['d3', 'd4', 'd5', 'd7']);
    expect(world.eu.checkpoints.current?.cursor).toBe('d5');
  });

  it('covers every document within ceil(documents / page) passes, then starts the sweep again', async () => {
    const world = antiEntropyWorld(4);
    for (let i = 0; i < 10; i++)
      await world.eu.region.replica.update(`d${i}`, { kind: 'set', field: 'v', value: i });
    world.clock.now += 24 * 3600_000; // long quiet: nothing counts as changed since the (first) pass
    const seen = new Set<string>();
    const reports = [];
    for (let pass = 0; pass < 3; pass++) {
      world.sent.length = 0;
      reports.push(await world.eu.antiEntropy.pass());
      for (const { message } of world.sent)
        for (const e of (message as DigestMessage).entries) seen.add(e.document);
    }
    expect(seen.size).toBe(10);
    expect(reports.map((r) => r.sweepDone)).toEqual([false, false, true]);
    expect(world.eu.checkpoints.current?.sweeps).toBe(1);
  });

  it('repairs a lost delta: the peer finds the digest differs once both were quiet, pulls, and converges', async () => {
    const world = antiEntropyWorld();
    await world.eu.region.replica.update('doc', { kind: 'add', field: 's', element: 'a' });
    await world.deliver();
    await world.eu.region.replica.update('doc', { kind: 'add', field: 's', element: 'b' });
    world.sent.length = 0; // the delta is lost
    world.clock.now += 61_000;
    await world.eu.antiEntropy.pass();
    await world.deliver();
    expect(world.calls(world.us.region)?.diverged).toEqual([[1, EU]]);
    expect(await world.us.region.replica.read('doc')).toEqual(await world.eu.region.replica.read('doc'));
    // converged: the next pass finds nothing different
    await world.eu.region.replica.update('other', { kind: 'increment', field: 'n', by: 1 });
    await world.deliver();
    world.clock.now += 61_000;
    await world.eu.antiEntropy.pass();
    await world.deliver();
    expect(world.calls(world.us.region)?.diverged.at(-1)).toEqual([0, EU]);
  });

  it('repairs a document that never stops changing: the sweep compares it anyway, once a sweep', async () => {
    const world = antiEntropyWorld(10);
    await world.eu.region.replica.update('hot', { kind: 'add', field: 's', element: 'a' });
    await world.deliver();
    await world.eu.region.replica.update('hot', { kind: 'add', field: 's', element: 'b' });
    world.sent.length = 0; // the delta adding b is lost
    for (let pass = 0; pass < 3; pass++) {
      // a counter of the same document ticks in both regions every 50 s: it is never quiet for a minute
      for (let tick = 0; tick < 6; tick++) {
        world.clock.now += 50_000;
        await world.eu.region.replica.update('hot', { kind: 'increment', field: 'n', by: 1 });
        await world.us.region.replica.update('hot', { kind: 'increment', field: 'n', by: 1 });
        await world.deliver();
      }
      await world.eu.antiEntropy.pass();
      await world.deliver();
    }
    const set = (await world.us.region.replica.read('hot')).get('s')?.[0]?.crdt;
    expect(set?.type === 'orset' && set.state.entries.map(([e]) => e)).toEqual(['a', 'b']);
    expect(world.calls(world.us.region)?.diverged.every(([n]) => n === 0)).toBe(true); // never quiet: not counted
  });

  it('records a peer’s whole state as held when digests are equal (what folding rests on), once a day', async () => {
    const world = antiEntropyWorld();
    await world.eu.region.replica.update('doc', { kind: 'add', field: 's', element: 'a' });
    await world.deliver();
    expect(world.us.region.store.items.get('doc')?.heard).toBeUndefined();
    world.clock.now += 61_000;
    await world.eu.antiEntropy.pass();
    await world.deliver();
    const heard = world.us.region.store.items.get('doc')?.heard?.get(EU) as number;
    expect(heard).toBe(world.clock.now - 60_000);
    const version = world.us.region.store.items.get('doc')?.version;
    world.clock.now += 3600_000; // the sweep comes round again within the day: nothing written
    await world.eu.antiEntropy.pass();
    await world.deliver();
    expect(world.us.region.store.items.get('doc')?.version).toBe(version);
    world.clock.now += 25 * 3600_000;
    await world.eu.antiEntropy.pass();
    await world.deliver();
    expect(world.us.region.store.items.get('doc')?.heard?.get(EU)).toBe(world.clock.now - 60_000);
  });

  it('compares nothing still changing on either side, and answers only pulls addressed to its region', async () => {
    const world = antiEntropyWorld();
    await world.us.region.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    world.sent.length = 0;
    const hlc = { wallMs: world.clock.now, logical: 0, replica: world.eu.region.replica.identity.replica };
    const digests: DigestMessage = {
      kind: 'digests',
      origin: EU,
      hlc,
      entries: [{ document: 'doc', digest: '0123456789abcdef', changedAt: world.clock.now - 120_000 }],
    };
    await expect(world.us.antiEntropy.compare(digests)).resolves.toEqual({ compared: 0, diverged: 0 });
    world.clock.now += 61_000;
    await expect(
      world.us.antiEntropy.compare({ ...digests, hlc: { ...hlc, wallMs: world.clock.now } }),
    ).resolves.toEqual({
      compared: 1,
      diverged: 1,
    });
    expect((world.sent.pop()?.message as PullMessage).documents).toEqual(['doc']);
    const pull: PullMessage = { kind: 'pull', origin: EU, hlc, to: 'ap-south-1', documents: ['doc'] };
    await expect(world.us.antiEntropy.answer(pull)).resolves.toBe(0);
    await expect(world.us.antiEntropy.answer({ ...pull, to: US })).resolves.toBe(1);
    // the full state goes to the region that asked, not to every peer
    expect(world.sent.at(-1)).toMatchObject({
      from: US,
      to: EU,
      message: { kind: 'state', document: 'doc' },
    });
  });

  it('catches up an hour of changes per pass after missed passes, so a pass stays within its timeout', async () => {
    const world = antiEntropyWorld(1);
    await world.eu.region.replica.update('early', { kind: 'increment', field: 'n', by: 1 });
    world.clock.now += 61_000;
    await world.eu.antiEntropy.pass();
    world.clock.now += 30 * 60_000;
    await world.eu.region.replica.update('later', { kind: 'increment', field: 'n', by: 1 });
    world.clock.now += 5 * 3600_000; // passes missed for hours
    await world.eu.region.replica.update('latest', { kind: 'increment', field: 'n', by: 1 });
    world.clock.now += 61_000;
    const changed: number[] = [];
    for (let pass = 0; world.eu.checkpoints.current?.changedThrough !== world.clock.now - 60_000; pass++) {
      expect(pass).toBeLessThan(10);
      const through = world.eu.checkpoints.current?.changedThrough as number;
      changed.push((await world.eu.antiEntropy.pass()).changed);
      expect((world.eu.checkpoints.current?.changedThrough as number) - through).toBeLessThanOrEqual(
        3600_000,
      );
    }
    expect(changed.length).toBe(6); // 5 h 31 min of history, an hour a pass
    expect(changed.reduce((a, b) => a + b)).toBe(2); // 'later' and 'latest', each announced once
  });

  it('goes on past a digest message it cannot publish, counts its documents, and still moves its checkpoint', async () => {
    const world = antiEntropyWorld(2_000, { failControl: (call) => call === 1 });
    for (let i = 0; i < 1_200; i++)
      await world.eu.region.store.save(`document-${'x'.repeat(200)}-${i}`, {
        expected: 0,
        head: { version: 1, bytes: 0, digest: '0000000000000000', changedAt: T0 },
        puts: new Map(),
        deletes: [],
      });
    world.clock.now += 24 * 3600_000;
    const report = await world.eu.antiEntropy.pass();
    expect(report.messages).toBeGreaterThanOrEqual(1);
    expect(report.failed).toBeGreaterThan(0);
    expect(
      report.failed + world.sent.reduce((n, { message }) => n + (message as DigestMessage).entries.length, 0),
    ).toBe(1_200);
    expect(world.calls(world.eu.region)?.antiEntropyFailed).toBe(report.failed);
    expect(world.eu.checkpoints.current?.version).toBe(1);
    for (const { message } of world.sent)
      expect(encodeControl(message as ControlMessage).length).toBeLessThanOrEqual(262_144);
  });

  it('refuses control messages from outside the trust boundary', async () => {
    const world = antiEntropyWorld();
    const hlc = { wallMs: world.clock.now, logical: 0, replica: world.us.region.replica.identity.replica };
    const pull: PullMessage = { kind: 'pull', origin: US, hlc, to: US, documents: ['doc'] };
    await expect(world.us.antiEntropy.answer(pull)).rejects.toMatchObject({ code: 'own-origin' });
    await expect(world.us.antiEntropy.answer({ ...pull, origin: EU })).rejects.toMatchObject({
      code: 'clock-not-origin',
    });
  });
});

describe('what a set delta may claim', () => {
  it('refuses a scoped full state, a delta scoped to several elements, and a replica of no region of the estate', async () => {
    const eu = testRegion(EU);
    const us = testRegion(US);
    await eu.replica.update('doc', { kind: 'add', field: 's', element: 'x' });
    const delta = eu.published[0] as Envelope;
    const variant = delta.body.get('s')?.[0] as Variant & { crdt: { type: 'orset' } };
    const withSet = (state: ORSet): CrdtDocument =>
      new Map([['s', [{ ...variant, crdt: { type: 'orset', state } }]]]);
    const code = (envelope: Envelope) => us.replica.receive(envelope).catch((e: { code?: string }) => e.code);
    expect(await code({ ...delta, kind: 'state' })).toBe('scoped-state');
    expect(await code({ ...delta, body: withSet({ ...variant.crdt.state, scope: ['x', 'y'] }) })).toBe(
      'delta-scope',
    );
    const stranger = 'ap-south-1@00000000a0000';
    const context = {
      ...variant.crdt.state.context,
      vv: new Map([...variant.crdt.state.context.vv, [stranger, 1]]),
    };
    expect(await code({ ...delta, body: withSet({ ...variant.crdt.state, context }) })).toBe(
      'unknown-replica',
    );
    expect(await code(delta)).toBe('merged');
  });
});

describe('control messages on the wire', () => {
  const hlc = { wallMs: T0, logical: 0, replica: 'eu-central-1@00000000a0000' };
  it.each([
    [
      '{"v":3,"o":"eu-central-1","k":"g","h":[1,0,"eu-central-1@00000000a0000"],"g":[]}',
      'g (digests): expected a list of 1-10000 entries',
    ],
    [
      '{"v":3,"o":"eu-central-1","k":"g","h":[1,0,"eu-central-1@00000000a0000"],"g":[["d","xyz",1]]}',
      'g[0]: expected [document, digest (16 hex digits), changedAt ms] and 1 for an entry of the sweep',
    ],
    [
      '{"v":3,"o":"eu-central-1","k":"p","h":[1,0,"eu-central-1@00000000a0000"],"to":"a b","g":["d"]}',
      'to: expected a region name (1-50 of A-Z a-z 0-9 _ . : -)',
    ],
    [
      '{"v":3,"o":"eu-central-1","k":"p","h":[1,0,"eu-central-1@00000000a0000"],"to":"us-east-1","g":["d"],"x":1}',
      'message: unexpected property; expected only v, o, k, h, to, g',
    ],
    [
      '{"v":3,"o":"eu-central-1","k":"r","h":[1,0,"eu-central-1@00000000a0000"],"d":"doc","r":{"b":"bucket","k":"../etc","n":1,"s":"00"}}',
      'r (reference): expected {"b": bucket, "k": "sync/..." key, "n": bytes >= 1, "s": SHA-256 hex}',
    ],
  ])('refuses %s naming the field and the rule', (text, reason) => {
    expect(() => decodeMessage(text)).toThrow(expect.objectContaining({ reason }));
  });

  it('are addressed with a `to` attribute when meant for one region (a pull, the full state answering it)', async () => {
    const attributes: Array<Record<string, { StringValue?: string }>> = [];
    const sns = {
      send: async (command: { input: { MessageAttributes: Record<string, { StringValue?: string }> } }) =>
        void attributes.push(command.input.MessageAttributes),
    } as unknown as SNSClient;
    const publisher = new SnsPublisher(sns, 'arn:aws:sns:eu-central-1:123456789012:t');
    const eu = testRegion(EU);
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    const state = (await eu.replica.fullState('doc')) as Envelope;
    await publisher.publish(eu.published[0] as Envelope);
    await publisher.publish(state, US);
    await publisher.publishControl({ kind: 'pull', origin: EU, hlc, to: US, documents: ['doc'] });
    expect(attributes.map((a) => [a.kind?.StringValue, a.to?.StringValue])).toEqual([
      ['delta', undefined],
      ['state', US],
      ['pull', US],
    ]);
  });

  it('reads back what it writes', () => {
    const messages: ControlMessage[] = [
      {
        kind: 'digests',
        origin: EU,
        hlc,
        entries: [{ document: 'd', digest: '0123456789abcdef', changedAt: 5 }],
      },
      { kind: 'pull', origin: EU, hlc, to: US, documents: ['d', '__proto__'] },
      {
        kind: 'reference',
        origin: EU,
        hlc,
        document: 'd',
        bucket: 'b-eu',
        key: 'sync/x.json',
        bytes: 10,
        sha256: 'a'.repeat(64),
      },
    ];
    for (const message of messages) expect(decodeMessage(encodeControl(message))).toEqual(message);
  });
});
