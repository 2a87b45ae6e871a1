import { emptyCrdtMap, mergeMap, observe, type CrdtMap, type Hlc } from '../crdt';
import type { Envelope } from './envelope';
import { applyOperation, type Operation } from './operations';

/** A document as a region stores it: its state, a version for conditional writes, the region's clock. */
export interface StoredDocument {
  readonly state: CrdtMap;
  readonly version: number;
  readonly clock?: Hlc;
}

/** The region's table. `save` writes only if the stored version is still `expected` (0: absent). */
export interface DocumentStore {
  load(document: string): Promise<StoredDocument | undefined>;
  save(document: string, next: StoredDocument, expected: number): Promise<boolean>;
  documents(): Promise<string[]>;
}

/** The region's topic on the sync bus. */
export interface Publisher {
  publish(envelope: Envelope): Promise<void>;
}

/** What the service counts (Powertools metrics in the handlers). */
export interface SyncMetrics {
  merged(count: number): void;
  conflictRetried(count: number): void;
  lagMs(ms: number): void;
  publishFailed(count: number): void;
}

export const NO_METRICS: SyncMetrics = {
  merged: () => undefined,
  conflictRetried: () => undefined,
  lagMs: () => undefined,
  publishFailed: () => undefined,
};

export interface SyncReplicaDeps {
  readonly region: string;
  readonly store: DocumentStore;
  readonly publisher: Publisher;
  readonly now: () => number;
  readonly metrics?: SyncMetrics;
  /** Conditional-write attempts before giving up (each loses to another writer). Default: 50. */
  readonly maxAttempts?: number;
}

/** Another writer kept winning the conditional write; the caller may retry later. */
export class ContentionError extends Error {
  constructor(document: string, attempts: number) {
    super(`gave up updating ${document} after ${attempts} conflicting writes`);
    this.name = 'ContentionError';
  }
}

/**
 * One region's side of cross-region sync. Every change to the region's state is a conditional write
 * (read, merge, write if nobody wrote since), so any number of writers in a region lose nothing while the
 * CRDT replica id stays the region. Local changes publish their delta; remote envelopes merge in;
 * anti-entropy publishes full state so a region that lost messages converges.
 */
export class SyncReplica {
  private readonly metrics: SyncMetrics;
  private readonly maxAttempts: number;

  constructor(private readonly deps: SyncReplicaDeps) {
    this.metrics = deps.metrics ?? NO_METRICS;
    this.maxAttempts = deps.maxAttempts ?? 50;
  }

  /**
   * Applies an operation locally, durably, then publishes its delta. Once the write succeeded the change is
   * done: a failed publish is counted, not thrown (a caller retrying would apply it twice), and the next
   * anti-entropy pass carries it to the other regions. Returns the document's new state.
   */
  async update(document: string, operation: Operation): Promise<CrdtMap> {
    let published: Envelope | undefined;
    const next = await this.conditionally(document, (stored) => {
      const applied = applyOperation(
        stored.state,
        operation,
        this.deps.region,
        stored.clock,
        this.deps.now(),
      );
      published = {
        origin: this.deps.region,
        document,
        kind: 'delta',
        hlc: applied.clock,
        body: applied.delta,
      };
      return { state: applied.next, clock: applied.clock };
    });
    if (published) {
      try {
        await this.deps.publisher.publish(published);
      } catch {
        this.metrics.publishFailed(1);
      }
    }
    return next;
  }

  /** Merges a remote envelope; envelopes from this region are ignored. */
  async receive(envelope: Envelope): Promise<'merged' | 'own'> {
    if (envelope.origin === this.deps.region) return 'own';
    await this.conditionally(envelope.document, (stored) => ({
      state: mergeMap(stored.state, envelope.body),
      clock: observe(stored.clock, envelope.hlc, this.deps.region, this.deps.now()),
    }));
    this.metrics.merged(1);
    this.metrics.lagMs(Math.max(0, this.deps.now() - envelope.hlc.wallMs));
    return 'merged';
  }

  /** Anti-entropy: publishes the full state of every document. */
  async publishFullState(): Promise<number> {
    const documents = await this.deps.store.documents();
    for (const document of documents) {
      const stored = await this.deps.store.load(document);
      if (!stored) continue;
      await this.deps.publisher.publish({
        origin: this.deps.region,
        document,
        kind: 'state',
        hlc: stored.clock ?? { wallMs: this.deps.now(), logical: 0, replica: this.deps.region },
        body: stored.state,
      });
    }
    return documents.length;
  }

  async read(document: string): Promise<CrdtMap> {
    return (await this.deps.store.load(document))?.state ?? emptyCrdtMap();
  }

  private async conditionally(
    document: string,
    change: (stored: StoredDocument) => { state: CrdtMap; clock: Hlc | undefined },
  ): Promise<CrdtMap> {
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const stored = (await this.deps.store.load(document)) ?? { state: emptyCrdtMap(), version: 0 };
      const { state, clock } = change(stored);
      if (await this.deps.store.save(document, { state, version: stored.version + 1, clock }, stored.version))
        return state;
      this.metrics.conflictRetried(1);
    }
    throw new ContentionError(document, this.maxAttempts);
  }
}
