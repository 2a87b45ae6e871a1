import {
  emptyDocument,
  encodeDocument,
  fieldLimitProblem,
  foldDocument,
  mergeField,
  observe,
  ReplicaRetiredError,
  variantOf,
  withCounterFold,
  type CrdtDocument,
  type Field,
  type Hlc,
} from '../crdt';
import { PermanentError } from '../lib/failures';
import type { Envelope } from './envelope';
import { MAX_EPOCH_AGE_MS, ReplicaIdentity } from './identity';
import { checkDocumentKey, checkDocumentSize } from './limits';
import { applyOperation, checkOperation, type Operation } from './operations';
import { checkTrust, type TrustPolicy } from './trust';

/** A document as a region stores it: its state, a version for conditional writes, the region's clock. */
export interface StoredDocument {
  readonly state: CrdtDocument;
  readonly version: number;
  readonly clock?: Hlc;
  /** When the item was last written, by this region's clock (ms): what folding old epochs rests on. */
  readonly writtenAt?: number;
}

/**
 * The region's table. `save` writes only if the stored version is still `expected` (0: absent); `encoded`
 * is `encodeDocument(next.state)`, already computed.
 */
export interface DocumentStore {
  load(document: string): Promise<StoredDocument | undefined>;
  save(document: string, next: StoredDocument, expected: number, encoded: string): Promise<boolean>;
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
  /** A field first seen here with variants of different types (regions created it concurrently). */
  typeClash(document: string, field: string, types: readonly string[]): void;
}

export const NO_METRICS: SyncMetrics = {
  merged: () => undefined,
  conflictRetried: () => undefined,
  lagMs: () => undefined,
  publishFailed: () => undefined,
  typeClash: () => undefined,
};

export interface SyncReplicaDeps {
  readonly region: string;
  /** Regions whose messages merge here: every other region of the environment. */
  readonly peers: readonly string[];
  readonly store: DocumentStore;
  readonly publisher: Publisher;
  readonly now: () => number;
  /** Randomness for new epochs' ids. Default: Math.random. */
  readonly random?: () => number;
  readonly metrics?: SyncMetrics;
  /** Conditional-write attempts before giving up (each loses to another writer). Default: 50. */
  readonly maxAttempts?: number;
  /** How far a peer's stamps may be ahead of this region's clock. Default: 5 minutes. */
  readonly maxClockSkewMs?: number;
}

export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Another writer kept winning the conditional write; the caller may retry later. */
export class ContentionError extends Error {
  constructor(attempts: number) {
    super(`gave up after ${attempts} conflicting writes`);
    this.name = 'ContentionError';
  }
}

/** Fields of a message that could not merge (a counter total past the limit); the others did. */
export class FieldsRefusedError extends PermanentError {
  constructor(count: number, rule: string) {
    super('fields-refused', `${count} field(s) kept their local state: ${rule}; the other fields merged`);
    this.name = 'FieldsRefusedError';
  }
}

/** The read may predate this process's own last write: read the item again before deciding. */
class ReadAgain extends Error {}

interface Change {
  readonly state: CrdtDocument;
  readonly clock: Hlc | undefined;
}

/**
 * One region's side of cross-region sync. Every change to the region's state is a conditional write
 * (read, merge, write if nobody wrote since), so any number of writers in a region lose nothing. Local
 * changes are issued under this process's replica (`ReplicaIdentity`: the region plus an epoch) and
 * publish their delta; remote envelopes are checked against the trust policy and merge in field by field;
 * anti-entropy publishes full state so a region that lost messages converges.
 */
export class SyncReplica {
  private readonly metrics: SyncMetrics;
  private readonly maxAttempts: number;
  private readonly policy: TrustPolicy;
  private readonly foldDelayMs: number;
  readonly identity: ReplicaIdentity;

  constructor(private readonly deps: SyncReplicaDeps) {
    this.metrics = deps.metrics ?? NO_METRICS;
    this.maxAttempts = deps.maxAttempts ?? 50;
    const maxClockSkewMs = deps.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    this.policy = { region: deps.region, peers: deps.peers, maxClockSkewMs };
    // An epoch issues for at most MAX_EPOCH_AGE_MS; clocks of the region's processes differ by at most the
    // skew. A write this much later than an epoch's start comes after everything the epoch issued.
    this.foldDelayMs = 2 * MAX_EPOCH_AGE_MS + 2 * maxClockSkewMs;
    this.identity = new ReplicaIdentity(deps.region, deps.random ?? Math.random, deps.now());
  }

  /**
   * Applies an operation locally, durably, then publishes its delta. Once the write succeeded the change is
   * done: a failed publish is counted, not thrown (a caller retrying would apply it twice), and the next
   * anti-entropy pass carries it to the other regions. Returns the document's new state.
   */
  async update(document: string, operation: Operation): Promise<CrdtDocument> {
    checkDocumentKey(document);
    checkOperation(operation);
    let published: Envelope | undefined;
    let confirming = false;
    const state = await this.conditionally(
      document,
      (stored) => {
        const nowMs = this.deps.now();
        const replica = this.identity.replicaFor(document, stored, nowMs, confirming);
        if (replica === undefined) {
          confirming = true;
          throw new ReadAgain();
        }
        const applied = applyOperation(
          stored.state,
          operation,
          replica,
          this.identity.clockFrom(stored.clock),
          nowMs,
        );
        published = {
          origin: this.deps.region,
          document,
          kind: 'delta',
          hlc: applied.clock,
          body: applied.delta,
        };
        return { state: applied.next, clock: applied.clock };
      },
      (saved, version) => this.identity.issued(document, saved, version, (published as Envelope).hlc),
    );
    if (published) {
      try {
        await this.deps.publisher.publish({ ...published, body: this.withOwnFolds(published.body, state) });
      } catch {
        this.metrics.publishFailed(1);
      }
    }
    return state;
  }

  /**
   * Merges a remote envelope, field by field, once it passed the trust checks. A field whose merge would
   * break a limit keeps its local state (`FieldsRefusedError` after the rest is stored); a type clash
   * merges (see `Field`) and is reported.
   */
  async receive(envelope: Envelope): Promise<'merged'> {
    checkTrust(envelope, this.policy, this.deps.now());
    let refused: string[] = [];
    let clashes: Array<[string, Field]> = [];
    await this.conditionally(envelope.document, (stored) => {
      refused = [];
      clashes = [];
      const merged = new Map(stored.state);
      for (const [key, field] of envelope.body) {
        const before = merged.get(key);
        const next = mergeField(before, field);
        const problem = fieldLimitProblem(next);
        if (problem) {
          refused.push(problem);
          continue;
        }
        if (next.length > 1 && next.length > (before?.length ?? 0)) clashes.push([key, next]);
        merged.set(key, next);
      }
      const nowMs = this.deps.now();
      return { state: merged, clock: observe(stored.clock, envelope.hlc, this.identity.replica, nowMs) };
    });
    this.metrics.merged(1);
    if (envelope.kind === 'delta') this.metrics.lagMs(Math.max(0, this.deps.now() - envelope.hlc.wallMs));
    for (const [key, field] of clashes)
      this.metrics.typeClash(
        envelope.document,
        key,
        field.map((variant) => variant.crdt.type),
      );
    if (refused.length > 0) throw new FieldsRefusedError(refused.length, refused[0] as string);
    return 'merged';
  }

  /** Anti-entropy: publishes the full state of every document. */
  async publishFullState(): Promise<number> {
    const documents = await this.deps.store.documents();
    for (const document of documents) {
      const stored = await this.deps.store.load(document);
      if (!stored) continue;
      const clock = stored.clock ?? { wallMs: this.deps.now(), logical: 0, replica: this.identity.replica };
      await this.deps.publisher.publish({
        origin: this.deps.region,
        document,
        kind: 'state',
        hlc: { wallMs: clock.wallMs, logical: clock.logical, replica: this.identity.replica },
        body: stored.state,
      });
    }
    return documents.length;
  }

  async read(document: string): Promise<CrdtDocument> {
    checkDocumentKey(document);
    return (await this.deps.store.load(document))?.state ?? emptyDocument();
  }

  /** The delta's counters with this region's folds from the stored state, so peers drop folded counts. */
  private withOwnFolds(delta: CrdtDocument, state: CrdtDocument): CrdtDocument {
    return new Map(
      [...delta].map(([key, field]) => [
        key,
        field.map((variant) => {
          const stored = variantOf(state.get(key), variant.crdt.type);
          return stored
            ? { ...variant, crdt: withCounterFold(variant.crdt, stored.crdt, this.deps.region) }
            : variant;
        }),
      ]),
    );
  }

  /**
   * Folds this region's epochs that started `foldDelayMs` before the stored item's last write: that write
   * came after everything they issued, so the stored state (even restored) holds all of it.
   */
  private foldOwnEpochs(state: CrdtDocument, writtenAt: number | undefined): CrdtDocument {
    if (writtenAt === undefined) return state;
    return foldDocument(state, this.deps.region, writtenAt - this.foldDelayMs);
  }

  private async conditionally(
    document: string,
    change: (stored: StoredDocument) => Change,
    onSaved?: (state: CrdtDocument, version: number) => void,
  ): Promise<CrdtDocument> {
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const stored = (await this.deps.store.load(document)) ?? { state: emptyDocument(), version: 0 };
      let next: Change;
      try {
        next = change(stored);
      } catch (error) {
        if (error instanceof ReadAgain)
          attempt--; // once per update: not a lost write
        else if (error instanceof ReplicaRetiredError) this.identity.rotate(this.deps.now());
        else throw error;
        continue;
      }
      const state = this.foldOwnEpochs(next.state, stored.writtenAt);
      const encoded = encodeDocument(state);
      checkDocumentSize(document, encoded);
      const saved = { state, version: stored.version + 1, clock: next.clock, writtenAt: this.deps.now() };
      if (await this.deps.store.save(document, saved, stored.version, encoded)) {
        onSaved?.(state, saved.version);
        return state;
      }
      this.metrics.conflictRetried(1);
    }
    throw new ContentionError(this.maxAttempts);
  }
}
