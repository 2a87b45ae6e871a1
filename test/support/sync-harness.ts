import {
  SyncReplica,
  type DocumentStore,
  type Envelope,
  type StoredDocument,
  type SyncMetrics,
  type SyncReplicaDeps,
} from '../../runtime/sync';
import { seededRandom } from './seeded-random';

/**
 * A region's table in memory, with the conditional write DynamoDB gives. `items` can be rewritten (an item
 * restored by hand); `restore` puts back a snapshot as a restored table (a new table: `createdAt` moves).
 */
export interface MemoryStore extends DocumentStore {
  readonly items: Map<string, StoredDocument>;
  createdAt: number | undefined;
  restore(snapshot: ReadonlyMap<string, StoredDocument>, nowMs: number): void;
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
    load: async (document: string) => items.get(document),
    save: async (document: string, next: StoredDocument, expected: number) => {
      if ((items.get(document)?.version ?? 0) !== expected) return false;
      items.set(document, next);
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
    lag: [] as number[],
    publishFailed: 0,
    clashes: [] as string[][],
    refused: [] as Array<[string, number, string]>,
    antiEntropyFailed: 0,
  };
  const metrics: SyncMetrics = {
    merged: (n) => void (calls.merged += n),
    conflictRetried: (n) => void (calls.retried += n),
    lagMs: (ms) => void calls.lag.push(ms),
    publishFailed: (n) => void (calls.publishFailed += n),
    typeClash: (document, field, types) => void calls.clashes.push([document, field, ...types]),
    fieldsRefused: (document, count, rule) => void calls.refused.push([document, count, rule]),
    antiEntropyFailed: (n) => void (calls.antiEntropyFailed += n),
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
