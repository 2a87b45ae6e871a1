import {
  digestOf,
  digestText,
  documentFromParts,
  partBytes,
  partsOf,
  viewOf,
  SyncReplica,
  type Checkpoint,
  type CheckpointStore,
  type Commit,
  type DocumentIndex,
  type DocumentScope,
  type IndexedDocument,
  type DocumentStore,
  type Envelope,
  type StoredDocument,
  type SyncMetrics,
  type SyncReplicaDeps,
} from '../../runtime/sync';
import type { CrdtDocument, Field, Hlc } from '../../runtime/crdt';
import { seededRandom } from './seeded-random';

/**
 * A region's table in memory, with the conditional write DynamoDB gives. `items` can be rewritten (an item
 * restored by hand); `restore` puts back a snapshot as a restored table (a new table: `createdAt` moves).
 */
export interface MemoryStore extends DocumentStore {
  readonly items: Map<string, StoredDocument>;
  createdAt: number | undefined;
  restore(snapshot: ReadonlyMap<string, StoredDocument>, nowMs: number): void;
  documents(): Promise<string[]>;
}

export function memoryStore(): MemoryStore {
  const items = new Map<string, StoredDocument>();
  const store: MemoryStore = {
    items,
    createdAt: undefined,
    restore: (snapshot: ReadonlyMap<string, StoredDocument>, nowMs: number) => {
      items.clear();
      for (const [key, item] of snapshot) items.set(key, item);
      store.createdAt = nowMs;
    },
    tableCreatedAt: async () => store.createdAt,
    load: async (document: string, scope?: DocumentScope) => {
      const item = items.get(document);
      if (!item) return undefined;
      const parts = partsOf(item.state);
      const bytes = [...parts].reduce((sum, [key, text]) => sum + partBytes(key, text), 0);
      return { ...item, state: viewOf(item.state, scope), bytes, digest: digestText(digestOf(parts)) };
    },
    // Applies a commit's parts to the whole document, as the table applies them to its items.
    save: async (document: string, commit: Commit) => {
      const item = items.get(document);
      if ((item?.version ?? 0) !== commit.expected) return false;
      const parts = partsOf(item?.state ?? new Map());
      for (const key of commit.deletes) parts.delete(key);
      for (const [key, text] of commit.puts) parts.set(key, text);
      const { version, clock, heard, regressedAt, changedAt } = commit.head;
      items.set(document, { state: documentFromParts(parts), version, clock, heard, regressedAt, changedAt });
      return true;
    },
    documents: async () => [...items.keys()].sort(),
  };
  return store;
}

/** Every metric call, for assertions. */
export function recordingMetrics() {
  const calls = {
    merged: 0,
    retried: 0,
    lag: [] as Array<[number, string]>,
    publishFailed: 0,
    clashes: [] as string[][],
    refused: [] as Array<[string, number, string]>,
    antiEntropyFailed: 0,
    lineFailed: 0,
    contention: 0,
    diverged: [] as Array<[number, string]>,
  };
  const metrics: SyncMetrics = {
    merged: (n) => void (calls.merged += n),
    conflictRetried: (n) => void (calls.retried += n),
    lagMs: (ms, peer) => void calls.lag.push([ms, peer]),
    publishFailed: (n) => void (calls.publishFailed += n),
    typeClash: (document, field, types) => void calls.clashes.push([document, field, ...types]),
    fieldsRefused: (document, count, rule) => void calls.refused.push([document, count, rule]),
    antiEntropyFailed: (n) => void (calls.antiEntropyFailed += n),
    lineFailed: (n) => void (calls.lineFailed += n),
    contention: (n) => void (calls.contention += n),
    diverged: (n, peer) => void calls.diverged.push([n, peer]),
  };
  return { metrics, calls };
}

export const REGIONS = ['eu-central-1', 'us-east-1'] as const;

export interface TestRegion {
  readonly name: string;
  readonly store: ReturnType<typeof memoryStore>;
  readonly published: Envelope[];
  readonly calls: ReturnType<typeof recordingMetrics>['calls'];
  /** The region's writer: one process (one replica identity). */
  replica: SyncReplica;
  /** A new process of the region (a cold start): a new epoch, the same table. */
  restart(): SyncReplica;
}

/** A region of a test: an in-memory table, a recording publisher, metrics; its peers are the other REGIONS. */
export function testRegion(
  name: string,
  options: { now?: () => number; seed?: number; peers?: readonly string[] } & Partial<SyncReplicaDeps> = {},
): TestRegion {
  const store = memoryStore();
  const published: Envelope[] = [];
  const { metrics, calls } = recordingMetrics();
  const random = seededRandom(options.seed ?? 1);
  const make = () =>
    new SyncReplica({
      region: name,
      peers: options.peers ?? REGIONS.filter((r) => r !== name),
      store,
      publisher: { publish: async (e) => void published.push(e) },
      now: options.now ?? (() => 1_700_000_000_000),
      random,
      metrics,
      sleep: async () => undefined,
      ...options,
    });
  const region: TestRegion = {
    name,
    store,
    published,
    calls,
    replica: make(),
    restart: () => (region.replica = make()),
  };
  return region;
}

/** What `state` takes stored: its parts' sizes (the size the document limits count). */
export const storedBytes = (state: CrdtDocument): number =>
  [...partsOf(state)].reduce((sum, [key, text]) => sum + partBytes(key, text), 0);

/**
 * `state` with register fields `pad0`, `pad1`, ... stamped `stamp`, so it takes exactly `target` bytes
 * stored (documents larger than a part are made of many).
 */
export function paddedTo(state: CrdtDocument, target: number, stamp: Hlc): CrdtDocument {
  const pad = (length: number): Field => [
    { created: stamp, crdt: { type: 'lww', state: { value: 'p'.repeat(length), stamp } } },
  ];
  const padded = new Map(state);
  let bytes = storedBytes(state);
  for (let i = 0; ; i++) {
    const key = `pad${i}`;
    const room = target - bytes - storedBytes(new Map([[key, pad(0)]]));
    if (room < 0) throw new RangeError('paddedTo: the state is already larger than the target');
    const field = pad(Math.min(room, 200_000));
    padded.set(key, field);
    bytes += storedBytes(new Map([[key, field]]));
    if (room <= 200_000) return padded;
  }
}

/** The `sync-documents` index of a memory store: documents in key order, the sweep's cursor a document key. */
export function memoryIndex(store: MemoryStore): DocumentIndex {
  const entry = (document: string): IndexedDocument => {
    const item = store.items.get(document) as StoredDocument;
    return {
      document,
      digest: digestText(digestOf(partsOf(item.state))),
      changedAt: item.changedAt ?? 0,
      ...(item.heard ? { heard: item.heard } : {}),
    };
  };
  const sorted = () => [...store.items.keys()].sort();
  return {
    changedBetween: async (fromMs, toMs) =>
      sorted()
        .map(entry)
        .filter((e) => e.changedAt > fromMs && e.changedAt <= toMs),
    page: async (cursor, limit) => {
      const after = sorted().filter((d) => cursor === undefined || d > cursor);
      const documents = after.slice(0, limit).map(entry);
      return { documents, cursor: after.length > limit ? documents.at(-1)?.document : undefined };
    },
    heads: async (documents) =>
      new Map(documents.filter((d) => store.items.has(d)).map((d) => [d, entry(d)] as const)),
  };
}

/** A checkpoint in memory, written conditionally like the table's. */
export function memoryCheckpoints(): CheckpointStore & { current?: Checkpoint } {
  const checkpoints: CheckpointStore & { current?: Checkpoint } = {
    load: async () => checkpoints.current,
    save: async (next, expected) => {
      if ((checkpoints.current?.version ?? 0) !== expected) return false;
      checkpoints.current = next;
      return true;
    },
  };
  return checkpoints;
}
