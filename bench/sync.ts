// Sync-at-scale benchmark. Prints, in one run, each figure against a baseline measured in the same run:
//  - one add to a set of 1,000, 14,000 and 100,000 elements: write units, bytes written and CPU of the part
//    layout (the real DynamodbDocumentStore over an in-process DynamoDB table that records each
//    TransactWriteItems request) against the single-item layout of the previous release (the whole
//    document as one item: its encoded size, ceil(bytes / 1 KB) write units, decode + merge + encode);
//  - anti-entropy messages and bytes per pass over 10,000 documents with 0, 10 and 1,000 changed, against
//    the previous pass (every document's full state, every pass);
//  - an add with 50,000 out-of-order dots pending in the set's context, against none (CRDT and store);
//  - planning the merge of a large full state (a repair) in commits of at most 99 parts, against one commit;
//  - 60 writers adding to one document at once: loads per committed write and retries, with the backoff
//    against no backoff.
// No assertions: figures and ratios only. Usage: npm run bench:sync
import { cpus } from 'node:os';
import {
  cloudSize,
  contextOf,
  decodeDocument,
  encodeDocument,
  epochReplicaId,
  orsetAdd,
  orsetFromEntries,
  orsetMerge,
  pncounterAdd,
  emptyPNCounter,
  union,
  type CausalContext,
  type CrdtDocument,
  type Dot,
  type Field,
  type Hlc,
  type ORSet,
  type ORSetEntry,
} from '../runtime/crdt';
import {
  AntiEntropy,
  applyOperation,
  DynamodbDocumentStore,
  encodeEnvelope,
  NO_METRICS,
  planChange,
  SyncReplica,
  type Checkpoint,
  type CheckpointStore,
  type DocumentIndex,
  type IndexedDocument,
  type SyncMetrics,
} from '../runtime/sync';
import { itemBytes, transactionItemSizes, writeUnits } from '../test/support/dynamodb-recording';
import { MemoryDynamodb } from '../test/support/memory-dynamodb';
import { seededRandom } from '../test/support/seeded-random';
import { memoryStore } from '../test/support/sync-harness';

const EU = 'eu-central-1';
const US = 'us-east-1';
const T0 = 1_795_000_000_000;
const DAY = 24 * 3600 * 1000;
const OLD_REPLICA = epochReplicaId(EU, T0 - DAY, '0abc');
const PEER_REPLICA = epochReplicaId(US, T0 - DAY, '0xyz');
const STAMP: Hlc = { wallMs: T0 - DAY, logical: 0, replica: OLD_REPLICA };
const UNBOUNDED = { parts: Number.MAX_SAFE_INTEGER, bytes: Number.MAX_SAFE_INTEGER };
/** DynamoDB's largest item. */
const MAX_ITEM_BYTES = 400 * 1024;

const pad = (text: string | number, width: number) => String(text).padStart(width);
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
/** Milliseconds since `started` (process.hrtime.bigint()): in-process work with no I/O to wait on. */
const msSince = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e6;

function setState(elements: number, context?: CausalContext): ORSet {
  const entries = Array.from({ length: elements }, (_, i): ORSetEntry => [
    `member-${String(i).padStart(6, '0')}`,
    [[OLD_REPLICA, i + 1]],
  ]);
  return orsetFromEntries(
    entries,
    context ?? { vv: new Map([[OLD_REPLICA, elements]]), cloud: new Map(), horizons: new Map() },
  );
}

const setDocument = (set: ORSet): CrdtDocument =>
  new Map([['members', [{ created: STAMP, crdt: { type: 'orset' as const, state: set } }]]]);

/** A region's table in process holding `document`, with the real store and a replica (one process) on it. */
async function storedRegion(document: CrdtDocument, latencyMs?: (command: string) => number) {
  const db = new MemoryDynamodb({ createdAt: T0 - 30 * DAY, latencyMs });
  let now = T0;
  const store = new DynamodbDocumentStore(db.client(), 'state', () => now);
  db.record = false;
  db.enforceLimits = false;
  for (const commit of planChange(
    new Map(),
    undefined,
    document,
    { clock: STAMP, changedAt: T0 - DAY },
    UNBOUNDED,
  ).commits)
    await store.save('presence', commit);
  db.record = true;
  db.enforceLimits = true;
  const replica = (
    seed: number,
    deps: { sleep?: (ms: number) => Promise<void>; maxAttempts?: number; metrics?: SyncMetrics } = {},
  ) =>
    new SyncReplica({
      region: EU,
      peers: [US],
      store,
      publisher: { publish: async () => undefined },
      now: () => (latencyMs ? Date.now() : (now += 1)),
      random: seededRandom(seed),
      sleep: async () => undefined,
      ...deps,
    });
  return { db, store, replica };
}

// ------------------------------------------------------------------ one add: parts against one item

async function addCost(): Promise<void> {
  console.log(
    'one add to a set of N elements: part layout (one transaction) against the whole document as one item',
  );
  console.log(
    `${pad('elements', 8)} ${pad('items', 6)} ${pad('bytes', 7)} ${pad('WU', 4)} ${pad('+index', 6)} ${pad('CPU ms', 7)}   |  ${pad('one item', 11)} ${pad('WU', 5)} ${pad('CPU ms', 8)}   |  WU ratio   CPU ratio`,
  );
  // Warm-up (JIT): both layouts once on a small set, not printed.
  {
    const warm = setDocument(setState(500));
    const writer = (await storedRegion(warm)).replica(1);
    for (let i = 0; i < 200; i++)
      await writer.update('presence', { kind: 'add', field: 'members', element: `w-${i}` });
    for (let i = 0; i < 50; i++) encodeDocument(decodeDocument(encodeDocument(warm)));
  }
  for (const elements of [1_000, 14_000, 100_000]) {
    const whole = setDocument(setState(elements));
    const { db, replica } = await storedRegion(whole);
    const writer = replica(elements);
    const adds = 100;
    for (let i = 0; i < 10; i++)
      await writer.update('presence', { kind: 'add', field: 'members', element: `warm-${i}` });
    db.transactions.length = 0;
    const partTimes: number[] = [];
    for (let i = 0; i < adds; i++) {
      const started = process.hrtime.bigint();
      await writer.update('presence', { kind: 'add', field: 'members', element: `new-${i}` });
      partTimes.push(msSince(started));
    }
    const partCpu = median(partTimes);
    const sizes = db.transactions.map(transactionItemSizes);
    const items = mean(sizes.map((s) => s.length));
    const bytes = mean(sizes.map((s) => s.reduce((a, b) => a + b, 0)));
    const units = mean(sizes.map((s) => writeUnits(s, true)));
    // The head's index entry moves (its changedAt is the index's range key): a delete and a put in the index.
    const indexUnits = 2;

    // The previous release: the document as one item (`sk` = `crdt`), read, decoded, merged, encoded, put.
    const text = encodeDocument(whole);
    const itemSize = itemBytes({
      pk: { S: 'doc#presence' },
      sk: { S: 'crdt' },
      state: { S: text },
      version: { N: '1234' },
      clock: { S: JSON.stringify([STAMP.wallMs, 0, STAMP.replica]) },
    });
    const fits = itemSize <= MAX_ITEM_BYTES;
    const oneItemUnits = Math.ceil(itemSize / 1024);
    const rounds = elements >= 100_000 ? 5 : 15;
    let clock: Hlc | undefined = STAMP;
    const baseTimes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = process.hrtime.bigint();
      const state = decodeDocument(text);
      const applied = applyOperation(
        state,
        { kind: 'add', field: 'members', element: `new-${i}` },
        OLD_REPLICA,
        clock,
        T0 + i,
      );
      clock = applied.clock;
      encodeDocument(applied.next);
      baseTimes.push(msSince(started));
    }
    const baseCpu = median(baseTimes);
    const unitRatio = fits ? `1/${(oneItemUnits / (units + indexUnits)).toFixed(0)}` : 'n/a';
    console.log(
      `${pad(elements.toLocaleString('en-US'), 8)} ${pad(items.toFixed(0), 6)} ${pad(bytes.toFixed(0), 7)} ${pad(units.toFixed(0), 4)} ${pad(`+${indexUnits}`, 6)} ${pad(partCpu.toFixed(2), 7)}   |  ${pad(kib(itemSize), 11)} ${pad(fits ? String(oneItemUnits) : '-', 5)} ${pad(baseCpu.toFixed(1), 8)}   |  ${pad(unitRatio, 8)}   ${pad(`1/${(baseCpu / partCpu).toFixed(0)}`, 8)}`,
    );
    if (!fits)
      console.log(
        `         the ${elements.toLocaleString('en-US')}-element set encodes to ${(itemSize / 1024 / 1024).toFixed(2)} MiB: it cannot be stored as one item (DynamoDB's limit is 400 KB); its CPU is still measured`,
      );
    if (elements === 14_000)
      console.log(
        `         goal at 14,000: part layout <= 1/20 of the single item's write units: ${(units + indexUnits) * 20 <= oneItemUnits ? 'met' : 'NOT met'} (${units + indexUnits} against ${oneItemUnits})`,
      );
  }
  console.log(
    "         WU: per item ceil(size / 1 KB), doubled in a transaction; +index: the head's sync-documents entry (a delete and a put); items and bytes as DynamoDB counts them; CPU: median time of the work in process (the table answers at once)",
  );
}

// ------------------------------------------------------------------ anti-entropy per pass

/** The `sync-documents` index in memory: documents in a fixed order (the index's), a cursor per page. */
class MemoryIndex implements DocumentIndex {
  readonly entries = new Map<string, IndexedDocument>();
  private order: string[] = [];

  set(entry: IndexedDocument): void {
    if (!this.entries.has(entry.document)) this.order.push(entry.document);
    this.entries.set(entry.document, entry);
  }

  async changedBetween(fromMs: number, toMs: number) {
    return [...this.entries.values()].filter((e) => e.changedAt > fromMs && e.changedAt <= toMs);
  }

  async page(cursor: string | undefined, limit: number) {
    const start = cursor === undefined ? 0 : Number(cursor);
    const documents = this.order
      .slice(start, start + limit)
      .map((d) => this.entries.get(d) as IndexedDocument);
    const next = start + limit;
    return { documents, cursor: next < this.order.length ? String(next) : undefined };
  }

  async heads(documents: readonly string[]) {
    return new Map(
      documents.flatMap((d) =>
        this.entries.has(d) ? [[d, this.entries.get(d) as IndexedDocument] as const] : [],
      ),
    );
  }
}

class MemoryCheckpoints implements CheckpointStore {
  private stored: Checkpoint | undefined;
  async load() {
    return this.stored;
  }
  async save(next: Checkpoint, expected: number) {
    if ((this.stored?.version ?? 0) !== expected) return false;
    this.stored = next;
    return true;
  }
}

async function antiEntropyCost(): Promise<void> {
  const DOCUMENTS = 10_000;
  const PAGE = 1_000;
  const SETTLE_MS = 60_000;
  const INTERVAL_MS = 5 * 60_000;
  let now = T0;
  const random = seededRandom(7);
  const digest = () =>
    Math.floor(random() * 2 ** 52)
      .toString(16)
      .padStart(16, '0');
  const keys = Array.from({ length: DOCUMENTS }, (_, i) => `tenant-${String(i).padStart(5, '0')}/presence`);
  const index = new MemoryIndex();
  for (const document of keys) index.set({ document, digest: digest(), changedAt: T0 - DAY });
  const publisher = { publish: async () => undefined, publishControl: async () => undefined };
  const replica = new SyncReplica({
    region: EU,
    peers: [US],
    store: memoryStore(),
    publisher,
    now: () => now,
  });
  const antiEntropy = new AntiEntropy({
    replica,
    peers: [US],
    maxClockSkewMs: 300_000,
    index,
    checkpoints: new MemoryCheckpoints(),
    publisher,
    now: () => now,
    settleMs: SETTLE_MS,
    pageSize: PAGE,
    metrics: NO_METRICS,
  });

  // The previous pass: every document's full state, every pass. A coordination document: a presence set of
  // 5 members, a counter and a flag.
  const body: CrdtDocument = new Map<string, Field>([
    ['members', [{ created: STAMP, crdt: { type: 'orset', state: setState(5) } }]],
    [
      'hits',
      [
        {
          created: STAMP,
          crdt: { type: 'pncounter', state: pncounterAdd(emptyPNCounter(), OLD_REPLICA, 1234) },
        },
      ],
    ],
    ['mode', [{ created: STAMP, crdt: { type: 'lww', state: { value: 'on', stamp: STAMP } } }]],
  ]);
  let oldBytes = 0;
  for (const document of keys)
    oldBytes += Buffer.byteLength(
      encodeEnvelope({ origin: EU, document, kind: 'state', hlc: STAMP, body }),
      'utf8',
    );

  console.log();
  console.log(
    `anti-entropy per pass, ${DOCUMENTS.toLocaleString('en-US')} documents, sweep page ${PAGE.toLocaleString('en-US')} (a pass every 5 minutes, settle 60 s)`,
  );
  console.log(
    `${pad('changed', 7)} ${pad('announced', 9)} ${pad('messages', 8)} ${pad('bytes', 9)}   |  previous pass: messages, bytes   |  ratio messages, bytes`,
  );
  await antiEntropy.pass(); // the first pass: the checkpoint
  for (const changed of [0, 10, 1_000]) {
    now += INTERVAL_MS;
    const changeAt = now - SETTLE_MS - 1;
    for (let i = 0; i < changed; i++) {
      const document = keys[Math.floor(random() * DOCUMENTS)] as string;
      index.set({ document, digest: digest(), changedAt: changeAt });
    }
    const report = await antiEntropy.pass();
    console.log(
      `${pad(changed.toLocaleString('en-US'), 7)} ${pad((report.changed + report.swept).toLocaleString('en-US'), 9)} ${pad(report.messages, 8)} ${pad(report.bytes.toLocaleString('en-US'), 9)}   |  ${pad(DOCUMENTS.toLocaleString('en-US'), 8)}, ${pad(oldBytes.toLocaleString('en-US'), 10)} B   |  1/${(DOCUMENTS / report.messages).toFixed(0)}, 1/${(oldBytes / report.bytes).toFixed(0)}`,
    );
  }
  console.log(
    `         announced: the changed documents plus one sweep page (entries of ~50 bytes); a peer pulls full states only of documents whose digests differ`,
  );
}

// ------------------------------------------------------------------ pending dots

async function pendingDots(): Promise<void> {
  const LIVE = 1_000;
  const PENDING = 50_000;
  // A peer's adds 2..50,001 seen, its first lost: one range in the context's cloud.
  const later: Dot[] = Array.from({ length: PENDING }, (_, i) => [PEER_REPLICA, i + 2]);
  const base = setState(LIVE);
  const pending = union(base.context, contextOf(later));
  const held: ORSet = { entries: base.entries, context: pending };
  const ranges = pending.cloud.get(PEER_REPLICA)?.length;
  console.log();
  console.log(
    `an add to a ${LIVE.toLocaleString('en-US')}-element set with ${cloudSize(pending).toLocaleString('en-US')} dots pending (${ranges} range) against none`,
  );
  const time = (fn: () => void, rounds: number) => {
    for (let i = 0; i < 200; i++) fn();
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) fn();
    return Number(process.hrtime.bigint() - started) / 1e3 / rounds;
  };
  const add = (set: ORSet) => () => void orsetMerge(set, orsetAdd(set, OLD_REPLICA, 'element-new'));
  const none = time(add(base), 5_000);
  const some = time(add(held), 5_000);
  console.log(
    `CRDT (orsetAdd + orsetMerge)       ${pad(none.toFixed(1), 7)} µs   pending ${pad(some.toFixed(1), 7)} µs   ratio ${(some / none).toFixed(2)}x   goal <= 2x`,
  );

  const viaStore = async (set: ORSet) => {
    const { replica } = await storedRegion(setDocument(set));
    const writer = replica(3);
    for (let i = 0; i < 50; i++)
      await writer.update('presence', { kind: 'add', field: 'members', element: `warm-${i}` });
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const started = process.hrtime.bigint();
      await writer.update('presence', { kind: 'add', field: 'members', element: `e-${i}` });
      times.push(Number(process.hrtime.bigint() - started) / 1e3);
    }
    return median(times);
  };
  const storeNone = await viaStore(base);
  const storeSome = await viaStore(held);
  console.log(
    `SyncReplica.update (part store)    ${pad(storeNone.toFixed(1), 7)} µs   pending ${pad(storeSome.toFixed(1), 7)} µs   ratio ${(storeSome / storeNone).toFixed(2)}x   goal <= 2x`,
  );
}

// ------------------------------------------------------------------ planning a repair

function repairPlanning(): void {
  console.log();
  console.log(
    'planning the merge of a full state of N elements into a region that lacks it (planChange: commits of <= 99 parts)',
  );
  console.log(
    `${pad('elements', 8)} ${pad('commits', 7)} ${pad('ms', 8)}   |  one unbounded commit, ms   |  ratio`,
  );
  for (let i = 0; i < 3; i++)
    planChange(new Map(), undefined, setDocument(setState(1_000)), { changedAt: T0 }); // JIT
  for (const elements of [2_000, 14_000, 100_000]) {
    const whole = setDocument(setState(elements));
    let started = process.hrtime.bigint();
    const planned = planChange(new Map(), undefined, whole, { changedAt: T0 });
    const stepped = msSince(started);
    started = process.hrtime.bigint();
    planChange(new Map(), undefined, whole, { changedAt: T0 }, UNBOUNDED);
    const once = msSince(started);
    console.log(
      `${pad(elements.toLocaleString('en-US'), 8)} ${pad(planned.commits.length, 7)} ${pad(stepped.toFixed(0), 8)}   |  ${pad(once.toFixed(0), 25)}   |  ${(stepped / once).toFixed(0)}x`,
    );
  }
  console.log(
    "         linear: a step's intermediate set context is built once per step from the dots that step writes",
  );
}

// ------------------------------------------------------------------ concurrent writers

/** Read requests the table served. */
const reads = (db: MemoryDynamodb) =>
  ['BatchGetItemCommand', 'TransactGetItemsCommand', 'GetItemCommand', 'QueryCommand'].reduce(
    (sum, command) => sum + db.count(command),
    0,
  );

async function concurrentWriters(): Promise<void> {
  const WRITERS = 60;
  // DynamoDB from a Lambda in the region: reads ~5 ms, transactions ~15 ms, +-50 %.
  const jitter = seededRandom(11);
  const latency = (command: string) => (command === 'TransactWriteItemsCommand' ? 15 : 5) * (0.5 + jitter());
  console.log();
  console.log(
    `${WRITERS} writers (${WRITERS} SyncReplica processes, one store) each add one element to one document at once; requests take 5 ms (reads), 15 ms (transactions) +-50 %`,
  );
  console.log(
    `${'configuration'.padEnd(44)} ${pad('committed', 9)} ${pad('gave up', 7)} ${pad('loads', 6)} ${pad('loads/write', 11)} ${pad('retries', 7)} ${pad('reads', 6)} ${pad('line writes', 11)} ${pad('wall ms', 8)}`,
  );
  const run = async (
    label: string,
    deps: { sleep?: (ms: number) => Promise<void>; maxAttempts?: number },
    line = true,
    shape = { writers: WRITERS, updates: 1 },
  ) => {
    const { db, store, replica } = await storedRegion(setDocument(setState(100)), latency);
    if (!line) Object.assign(store, { queue: undefined });
    let retries = 0;
    let loads = 0;
    const load = store.load.bind(store);
    store.load = (...args) => {
      loads++;
      return load(...args);
    };
    const metrics: SyncMetrics = { ...NO_METRICS, conflictRetried: (n) => void (retries += n) };
    const writers = Array.from({ length: shape.writers }, (_, i) => replica(100 + i, { ...deps, metrics }));
    const readsBefore = reads(db);
    const started = Date.now();
    // Each writer's updates one after another (a closed loop: an inbox's batches of one hot document).
    const outcomes = await Promise.all(
      writers.map(async (w, i) => {
        const results: boolean[] = [];
        for (let u = 0; u < shape.updates; u++)
          results.push(
            await w.update('presence', { kind: 'add', field: 'members', element: `writer-${i}-${u}` }).then(
              () => true,
              () => false,
            ),
          );
        return results;
      }),
    );
    const wall = Date.now() - started;
    const committed = outcomes.flat().filter(Boolean).length;
    const total = shape.writers * shape.updates;
    const readRequests = reads(db) - readsBefore;
    console.log(
      `${label.padEnd(44)} ${pad(committed, 9)} ${pad(total - committed, 7)} ${pad(loads, 6)} ${pad((loads / Math.max(1, committed)).toFixed(2), 11)} ${pad(retries, 7)} ${pad(readRequests, 6)} ${pad(db.count('UpdateItemCommand'), 11)} ${pad(wall, 8)}`,
    );
    return loads / Math.max(1, committed);
  };
  const withLine = await run('turns in the line (default), 10 attempts', { sleep: undefined });
  const jitterOnly = await run('baseline: full jitter only, 10 attempts', { sleep: undefined }, false);
  await run('baseline: no backoff, 10 attempts', { maxAttempts: 10 }, false);
  const noBackoff = await run('baseline: no backoff, 60 attempts', { maxAttempts: 60 }, false);
  const closed = { writers: 5, updates: 20 };
  console.log(
    `${closed.writers} writers (an inbox's concurrency), each adding ${closed.updates} elements one after another to the same document`,
  );
  const closedLine = await run('turns in the line (default)', { sleep: undefined }, true, closed);
  const closedJitter = await run('baseline: full jitter only', { sleep: undefined }, false, closed);
  console.log(
    `         goal, 60 writers: <= 3 loads per committed write: ${withLine <= 3 ? 'met' : 'NOT met'} (${withLine.toFixed(2)}; full jitter alone ${jitterOnly.toFixed(2)}, ${(jitterOnly / withLine).toFixed(1)}x as many; no backoff ${noBackoff.toFixed(2)}, ${(noBackoff / withLine).toFixed(1)}x)`,
  );
  console.log(
    `         ${closed.writers} writers in a loop: the line ${closedLine.toFixed(2)} loads per committed write, full jitter alone ${closedJitter.toFixed(2)} (ratio ${(closedLine / closedJitter).toFixed(2)}x)`,
  );
  console.log(
    '         loads: SyncReplica loads of the document (a read of its head and parts); reads: read requests; line writes: requests to the line (UpdateItem, conditions that failed included)',
  );
}

async function main(): Promise<void> {
  console.log(
    `sync at scale (${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.versions.node})`,
  );
  console.log();
  // `npm run bench:sync -- writers` runs one section.
  const only = process.argv[2];
  const sections: Array<[string, () => unknown]> = [
    ['add', addCost],
    ['anti-entropy', antiEntropyCost],
    ['pending', pendingDots],
    ['repair', repairPlanning],
    ['writers', concurrentWriters],
  ];
  if (only && !sections.some(([name]) => name === only))
    throw new Error(`no section "${only}": expected one of ${sections.map(([name]) => name).join(', ')}`);
  for (const [name, section] of sections) if (!only || only === name) await section();
}

void main();
