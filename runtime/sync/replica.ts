import {
  EMPTY_DOCUMENT_BYTES,
  emptyDocument,
  encodeDocument,
  encodedFieldBytes,
  fieldLimitProblem,
  foldDocument,
  mergeField,
  observe,
  ReplicaRetiredError,
  showsLossOf,
  tick,
  utf8Bytes,
  variantOf,
  withCounterFold,
  type CrdtDocument,
  type Field,
  type Hlc,
} from '../crdt';
import { PermanentError } from '../lib/failures';
import type { Envelope } from './envelope';
import { foldHorizon, type FoldGround } from './folding';
import { ReplicaIdentity } from './identity';
import { checkDocumentKey, checkDocumentSize, MAX_DOCUMENT_BYTES, MAX_LOCAL_DOCUMENT_BYTES } from './limits';
import { applyOperation, checkOperation, type Operation } from './operations';
import { checkTrust, type TrustPolicy } from './trust';

/** A document as a region stores it: its state, a version for conditional writes, the region's clock. */
export interface StoredDocument {
  readonly state: CrdtDocument;
  readonly version: number;
  readonly clock?: Hlc;
  /** Per peer region, the clock of the latest full state from it merged into `state` whole. */
  readonly heard?: ReadonlyMap<string, number>;
  /** When this region last found `state` had gone back (a restore, a recreated item). */
  readonly regressedAt?: number;
}

/**
 * The region's table. `save` writes only if the stored version is still `expected` (0: absent); `encoded`
 * is `encodeDocument(next.state)`, already computed.
 */
export interface DocumentStore {
  load(document: string): Promise<StoredDocument | undefined>;
  save(document: string, next: StoredDocument, expected: number, encoded: string): Promise<boolean>;
  documents(): Promise<string[]>;
  /** When the table was created (a table restored from a backup is a new one); undefined if unknown. */
  tableCreatedAt?(): Promise<number | undefined>;
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
  /** Fields of a message that kept their local state because merging them would break a limit. */
  fieldsRefused(document: string, count: number, rule: string): void;
  /** An anti-entropy pass could not publish one document; the pass went on. */
  antiEntropyFailed(count: number): void;
}

export const NO_METRICS: SyncMetrics = {
  merged: () => undefined,
  conflictRetried: () => undefined,
  lagMs: () => undefined,
  publishFailed: () => undefined,
  typeClash: () => undefined,
  fieldsRefused: () => undefined,
  antiEntropyFailed: () => undefined,
};

export interface SyncReplicaDeps {
  readonly region: string;
  /** Regions whose messages merge here: every other region of the environment. */
  readonly peers: readonly string[];
  readonly store: DocumentStore;
  readonly publisher: Publisher;
  readonly now: () => number;
  /** Randomness for new epochs' ids and where anti-entropy starts. Default: Math.random. */
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

/** The read may predate this process's own last write: read the item again before deciding. */
class ReadAgain extends Error {}

interface Change {
  readonly state: CrdtDocument;
  readonly clock: Hlc | undefined;
  readonly heard?: ReadonlyMap<string, number>;
  /** The change found the stored state had gone back. */
  readonly regressed?: boolean;
  /** The largest the document may be after the change. Default: MAX_DOCUMENT_BYTES. */
  readonly maxBytes?: number;
  /** The change again, keeping the document within its size limit (by leaving fields out), if it can. */
  readonly fit?: () => Change;
}

/** Fields of a remote document merged into a stored one, and those refused for a limit. */
interface FieldMerge {
  readonly state: CrdtDocument;
  readonly clashes: ReadonlyArray<readonly [string, Field]>;
  readonly refused: readonly string[];
}

/**
 * Merges `body` into `state` field by field. A field whose merge breaks a limit (a counter total past
 * 2^53 - 1; with `fit`, the document past its size limit, fields taken in key order) keeps its local
 * state; the others merge regardless. Sizes are counted per field, so fitting costs one encoding of each.
 */
function mergeFields(state: CrdtDocument, body: CrdtDocument, fit = false): FieldMerge {
  const merged = new Map(state);
  const refused: string[] = [];
  const clashes: Array<[string, Field]> = [];
  let bytes = fit ? documentBytes(state) : 0;
  for (const [key, field] of [...body].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const before = merged.get(key);
    const next = mergeField(before, field);
    const problem = fieldLimitProblem(next);
    if (problem) {
      refused.push(problem);
      continue;
    }
    if (fit) {
      const grown = encodedFieldBytes(key, next) - (before ? encodedFieldBytes(key, before) : 0);
      if (bytes + grown > MAX_DOCUMENT_BYTES) {
        refused.push(`the document would pass ${MAX_DOCUMENT_BYTES} bytes`);
        continue;
      }
      bytes += grown;
    }
    merged.set(key, next);
    if (next.length > 1 && next.length > (before?.length ?? 0)) clashes.push([key, next]);
  }
  return { state: merged, clashes, refused };
}

const documentBytes = (document: CrdtDocument): number =>
  [...document].reduce((sum, [key, field]) => sum + encodedFieldBytes(key, field), EMPTY_DOCUMENT_BYTES - 1);

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
  private readonly random: () => number;
  readonly identity: ReplicaIdentity;

  constructor(private readonly deps: SyncReplicaDeps) {
    this.metrics = deps.metrics ?? NO_METRICS;
    this.maxAttempts = deps.maxAttempts ?? 50;
    this.policy = {
      region: deps.region,
      peers: deps.peers,
      maxClockSkewMs: deps.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
    };
    this.random = deps.random ?? Math.random;
    this.identity = new ReplicaIdentity(deps.region, this.random, deps.now());
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
        const issuer = this.identity.replicaFor(document, stored, nowMs, confirming);
        if (issuer === undefined) {
          confirming = true;
          throw new ReadAgain();
        }
        const applied = applyOperation(
          stored.state,
          operation,
          issuer.replica,
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
        return {
          state: applied.next,
          clock: applied.clock,
          regressed: issuer.wentBack,
          maxBytes: MAX_LOCAL_DOCUMENT_BYTES,
        };
      },
      (saved, version) => this.identity.issued(document, saved, version, (published as Envelope).hlc),
    ).catch((error: unknown) => {
      // A save that failed without an answer may have been stored: this epoch cannot tell what it issued.
      if (!(error instanceof PermanentError)) this.identity.rotate(this.deps.now());
      throw error;
    });
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
   * break a limit keeps its local state and is reported; a type clash merges (see `Field`) and is reported.
   * A full state also records when this region last heard the whole document from that peer.
   */
  async receive(envelope: Envelope): Promise<'merged'> {
    checkTrust(envelope, this.policy, this.deps.now());
    let merge: FieldMerge | undefined;
    await this.conditionally(envelope.document, (stored) => {
      const clock = observe(stored.clock, envelope.hlc, this.identity.replica, this.deps.now());
      const regressed = showsLossOf(this.deps.region, stored.state, envelope.body);
      const merging = (fit: boolean): Change => {
        merge = mergeFields(stored.state, envelope.body, fit);
        // Only a full state merged whole tells what the peer held: a refused field kept this region's copy.
        const whole = envelope.kind === 'state' && merge.refused.length === 0;
        const heard = whole
          ? new Map(stored.heard).set(
              envelope.origin,
              Math.max(stored.heard?.get(envelope.origin) ?? 0, envelope.hlc.wallMs),
            )
          : stored.heard;
        return { state: merge.state, clock, heard, regressed, fit: fit ? undefined : () => merging(true) };
      };
      return merging(false);
    });
    const { clashes, refused } = merge as FieldMerge;
    this.metrics.merged(1);
    if (envelope.kind === 'delta') this.metrics.lagMs(Math.max(0, this.deps.now() - envelope.hlc.wallMs));
    for (const [key, field] of clashes)
      this.metrics.typeClash(
        envelope.document,
        key,
        field.map((variant) => variant.crdt.type),
      );
    if (refused.length > 0)
      this.metrics.fieldsRefused(envelope.document, refused.length, refused[0] as string);
    return 'merged';
  }

  /**
   * Anti-entropy: publishes the full state of every document, stamped with this region's clock now (the
   * state is what it holds now). Starts at a random document, so a failing one cannot starve the ones
   * after it, and goes on past a document it cannot publish, counting it.
   */
  async publishFullState(): Promise<number> {
    const documents = await this.deps.store.documents();
    const start = Math.floor(this.random() * documents.length);
    let published = 0;
    for (const document of [...documents.slice(start), ...documents.slice(0, start)]) {
      try {
        const stored = await this.deps.store.load(document);
        if (!stored) continue;
        await this.deps.publisher.publish({
          origin: this.deps.region,
          document,
          kind: 'state',
          hlc: tick(this.identity.clockFrom(stored.clock), this.identity.replica, this.deps.now()),
          body: stored.state,
        });
        published++;
      } catch {
        this.metrics.antiEntropyFailed(1);
      }
    }
    return published;
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
   * Folds this region's ended epochs when `foldHorizon` allows it, unless folding would take the document
   * past its size limit (a set's first horizon adds a few bytes): then it waits.
   */
  private foldOwnEpochs(state: CrdtDocument, ground: Omit<FoldGround, 'peers' | 'maxClockSkewMs' | 'nowMs'>) {
    const horizon = foldHorizon({ ...ground, ...this.policy, nowMs: this.deps.now() });
    if (horizon === undefined) return { state, encoded: encodeDocument(state) };
    const folded = foldDocument(state, this.deps.region, horizon);
    const encoded = encodeDocument(folded);
    if (folded === state || utf8Bytes(encoded) <= MAX_DOCUMENT_BYTES) return { state: folded, encoded };
    return { state, encoded: encodeDocument(state) };
  }

  private async conditionally(
    document: string,
    change: (stored: StoredDocument) => Change,
    onSaved?: (state: CrdtDocument, version: number) => void,
  ): Promise<CrdtDocument> {
    let rotatedForRetirement = false;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const stored = (await this.deps.store.load(document)) ?? { state: emptyDocument(), version: 0 };
      let next: Change;
      try {
        next = change(stored);
      } catch (error) {
        if (error instanceof ReadAgain) {
          attempt--; // once per update: not a lost write
          continue;
        }
        if (!(error instanceof ReplicaRetiredError)) throw error;
        // A fresh epoch is younger than any horizon a fold may set: retired again means a corrupt horizon.
        if (rotatedForRetirement)
          throw new PermanentError(
            'replica-retired',
            "a new epoch is already covered by this document's fold horizon",
          );
        rotatedForRetirement = true;
        this.identity.rotate(this.deps.now());
        continue;
      }
      const tableCreatedAt = await this.deps.store.tableCreatedAt?.();
      const ground = (c: Change) => ({
        heard: c.heard ?? stored.heard,
        regressedAt: c.regressed ? this.deps.now() : stored.regressedAt,
        tableCreatedAt,
      });
      let { state, encoded } = this.foldOwnEpochs(next.state, ground(next));
      if (utf8Bytes(encoded) > MAX_DOCUMENT_BYTES && next.fit) {
        next = next.fit();
        ({ state, encoded } = this.foldOwnEpochs(next.state, ground(next)));
      }
      checkDocumentSize(document, encoded, next.maxBytes);
      const { heard, regressedAt } = ground(next);
      const saved: StoredDocument = {
        state,
        version: stored.version + 1,
        clock: next.clock,
        heard,
        regressedAt,
      };
      if (await this.deps.store.save(document, saved, stored.version, encoded)) {
        onSaved?.(state, saved.version);
        return state;
      }
      this.metrics.conflictRetried(1);
    }
    throw new ContentionError(this.maxAttempts);
  }
}
