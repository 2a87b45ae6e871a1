import { applyOperation, checkOperation, type Operation } from './operations';
import {
  emptyDocument,
  fieldLimitProblem,
  foldDocument,
  laterHlc,
  mergeDocument,
  mergeField,
  observe,
  ReplicaRetiredError,
  showsLossOf,
  tick,
  variantOf,
  withCounterFold,
  type CrdtDocument,
  type Field,
  type Hlc,
} from '../crdt';
import { PermanentError } from '../lib/failures';
import { describeError } from '../lib/redact';
import {
  MAX_COMMIT_BYTES,
  MAX_COMMIT_PARTS,
  planChange,
  type Commit,
  type DocumentHead,
  type PlannedChange,
} from './commit-plan';
import { newChangeId } from './correlation';
import type { Envelope } from './envelope';
import { foldHorizon, type FoldGround } from './folding';
import { ReplicaIdentity } from './identity';
import {
  checkDocumentKey,
  DocumentTooLargeError,
  MAX_DOCUMENT_BYTES,
  MAX_LOCAL_DOCUMENT_BYTES,
} from './limits';
import { digestText, MAX_PART_BYTES, partBytes, partsOf, scopeOf, type DocumentScope } from './parts';
import { checkTrust, type TrustPolicy } from './trust';

/**
 * A document as a region stores it: its state (the view a load asked for, or all of it), a version for
 * conditional writes, the region's clock, and its head's bookkeeping.
 */
export interface StoredDocument {
  readonly state: CrdtDocument;
  readonly version: number;
  readonly clock?: Hlc;
  /** Per peer region, the clock of the latest full state from it merged into `state` whole. */
  readonly heard?: ReadonlyMap<string, number>;
  /** When this region last found `state` had gone back (a restore, a recreated item). */
  readonly regressedAt?: number;
  /** Size of the whole document's parts (see `partBytes`); 0 when new. */
  readonly bytes?: number;
  /** Digest of the whole document (`digestText`). */
  readonly digest?: string;
  /** When the state last changed in this region. */
  readonly changedAt?: number;
  /** The texts of the parts read, as stored (a store that keeps parts gives them; see `planChange`). */
  readonly parts?: ReadonlyMap<string, string>;
  /** The document as the previous release stored it (one item), still to be merged into its parts. */
  readonly legacy?: Omit<StoredDocument, 'legacy' | 'version'>;
}

/**
 * The region's table. `load` reads the parts `scope` names (every part without one); `save` applies one
 * commit if the stored version is still `commit.expected` (0: absent), else returns false.
 */
export interface DocumentStore {
  load(document: string, scope?: DocumentScope): Promise<StoredDocument | undefined>;
  save(document: string, commit: Commit, options?: { readonly dropLegacy?: boolean }): Promise<boolean>;
  /** Every document's key (tests and tools; the anti-entropy pass lists documents through the index). */
  documents?(): Promise<string[]>;
  /** When the table was created (a table restored from a backup is a new one); undefined if unknown. */
  tableCreatedAt?(): Promise<number | undefined>;
  /**
   * A writer that lost a race on `document` (having read `seenVersion`) joins the document's line: the
   * version it is to commit in turn, after the writers ahead of it. Writers then take turns instead of all
   * reading again at once. Undefined, or stores without a line, leave the retry to full jitter.
   */
  queue?(document: string, seenVersion: number): Promise<number | undefined>;
}

/** What goes with a message beside its envelope. */
export interface PublishOptions {
  /** A local change's correlation id (correlation.ts): carried as the `correlationId` message attribute. */
  readonly correlationId?: string;
}

/** The region's topic on the sync bus. */
export interface Publisher {
  /** Publishes to every peer, or to `to` only (a full state a peer asked for). */
  publish(envelope: Envelope, to?: string, options?: PublishOptions): Promise<void>;
}

/** Where the replica writes its log lines (Powertools' Logger is one). */
export interface SyncLogger {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
}

/** What the service counts (Powertools metrics in the handlers). */
export interface SyncMetrics {
  merged(count: number): void;
  conflictRetried(count: number): void;
  /** Gave up on a document after `maxAttempts` conflicting writes. */
  contention(count: number): void;
  /** A delta's replication lag: its write at `peer` to its merge here. */
  lagMs(ms: number, peer: string): void;
  publishFailed(count: number): void;
  /** A field first seen here with variants of different types (regions created it concurrently). */
  typeClash(document: string, field: string, types: readonly string[]): void;
  /** Fields of a message that kept their local state because merging them would break a limit. */
  fieldsRefused(document: string, count: number, rule: string): void;
  /** An anti-entropy step could not be done for this many documents; the pass went on. */
  antiEntropyFailed(count: number): void;
  /** Lost races that could take no turn in the document's line (its request failed): they backed off with full jitter. */
  lineFailed(count: number): void;
  /** Documents whose digest differs from a peer's once both were quiet (see the anti-entropy). */
  diverged(count: number, peer: string): void;
}

export const NO_METRICS: SyncMetrics = {
  merged: () => undefined,
  conflictRetried: () => undefined,
  contention: () => undefined,
  lagMs: () => undefined,
  publishFailed: () => undefined,
  typeClash: () => undefined,
  fieldsRefused: () => undefined,
  antiEntropyFailed: () => undefined,
  lineFailed: () => undefined,
  diverged: () => undefined,
};

export interface SyncReplicaDeps {
  readonly region: string;
  /** Regions whose messages merge here: every other region of the environment. */
  readonly peers: readonly string[];
  readonly store: DocumentStore;
  readonly publisher: Publisher;
  readonly now: () => number;
  /** Randomness for new epochs' ids and the retries' jitter. Default: Math.random. */
  readonly random?: () => number;
  /** Waits between conflicting writes. Default: a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly metrics?: SyncMetrics;
  /** Conditional-write attempts before giving up (each loses to another writer). Default: 10. */
  readonly maxAttempts?: number;
  /** How far a peer's stamps may be ahead of this region's clock. Default: 5 minutes. */
  readonly maxClockSkewMs?: number;
  /** A published change's correlation id. Default: a random UUID (correlation.ts). */
  readonly changeId?: () => string;
  /**
   * Logs each local change's publish under its correlation id (`correlation_id`; never the document or a
   * value), as the peers' inboxes log its merge. Default: none (a writer passes its logger).
   */
  readonly logger?: SyncLogger;
}

export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Retries after a lost conditional write wait a random time up to 250 ms doubling, at most 8 s (full jitter). */
const RETRY_BASE_MS = 250;
const RETRY_CAP_MS = 8000;
export const retryDelayMs = (attempt: number, random: () => number): number =>
  random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));

/** Lost races after which a writer stops taking turns and backs off exponentially. */
const LINE_ATTEMPTS = 3;
/**
 * The place from which a writer takes turns. Closer to the front (a few writers, as an inbox's concurrency
 * makes) full jitter spaces them better: writers that won at once are in no line and keep no turns.
 */
const LINE_MIN_PLACE = 4;
/** One turn in a document's line: an attempt's length (read, plan, write) within these bounds, in ms. */
const TURN_MIN_MS = 5;
const TURN_MAX_MS = 1000;
/** The longest wait for a turn: the line's item outlives it (LINE_IDLE_MS), and a Lambda's timeout too. */
const TURN_WAIT_CAP_MS = 2000;
/**
 * A writer `place` in a document's line (1: next) waits out the turns before its own, a turn being as
 * long as its lost attempt took, then comes at a random moment of its own turn. Writers whose turn comes
 * after 2 s come at a random moment of its second half, not all at its end.
 */
export const turnDelayMs = (place: number, attemptMs: number, random: () => number): number => {
  const turn = Math.min(TURN_MAX_MS, Math.max(TURN_MIN_MS, Number.isFinite(attemptMs) ? attemptMs : 0));
  const ahead = (Math.max(1, Number.isFinite(place) ? place : 1) - 1) * turn;
  return ahead + turn <= TURN_WAIT_CAP_MS ? ahead + random() * turn : (TURN_WAIT_CAP_MS * (1 + random())) / 2;
};

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
  /** The change again, keeping the document within its limits (by leaving fields out), if it can. */
  readonly fit?: (budget: number) => Change;
}

/** Fields of a remote document merged into a stored one, and those refused for a limit. */
interface FieldMerge {
  readonly state: CrdtDocument;
  readonly clashes: ReadonlyArray<readonly [string, Field]>;
  readonly refused: readonly string[];
}

/** The stored size of a field's parts (of a view: the parts it holds), and its largest part. */
function fieldSize(key: string, field: Field | undefined): { bytes: number; largest: number } {
  let bytes = 0;
  let largest = 0;
  if (!field) return { bytes, largest };
  for (const [part, text] of partsOf(new Map([[key, field]]))) {
    bytes += partBytes(part, text);
    largest = Math.max(largest, partBytes(part, text));
  }
  return { bytes, largest };
}

/**
 * Merges `body` into `state` field by field. A field whose merge breaks a limit (a counter total past
 * 2^53 - 1; with a byte `budget`, a part past `MAX_PART_BYTES` or the document past the budget, fields
 * taken in key order) keeps its local state; the others merge regardless.
 */
function mergeFields(state: CrdtDocument, body: CrdtDocument, budget?: number): FieldMerge {
  const merged = new Map(state);
  const refused: string[] = [];
  const clashes: Array<[string, Field]> = [];
  let room = budget ?? 0;
  for (const [key, field] of [...body].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const before = merged.get(key);
    const next = mergeField(before, field);
    const problem = fieldLimitProblem(next);
    if (problem) {
      refused.push(problem);
      continue;
    }
    if (budget !== undefined) {
      const after = fieldSize(key, next);
      const grown = after.bytes - fieldSize(key, before).bytes;
      if (after.largest > MAX_PART_BYTES) {
        refused.push(`a part of the document would pass ${MAX_PART_BYTES} bytes`);
        continue;
      }
      if (grown > room) {
        refused.push(`the document would pass its size limit`);
        continue;
      }
      room -= grown;
    }
    merged.set(key, next);
    if (next.length > 1 && next.length > (before?.length ?? 0)) clashes.push([key, next]);
  }
  return { state: merged, clashes, refused };
}

/** What `receiveAll` did with each envelope: merged, or the error that refused it. */
export type ReceiveOutcome = 'merged' | Error;

/** The scope a local operation reads: its field, and of a set only the element it changes. */
const scopeOfOperation = (operation: Operation): DocumentScope =>
  new Map([
    [operation.field, operation.kind === 'add' || operation.kind === 'remove' ? [operation.element] : []],
  ]);

const EMPTY: StoredDocument = { state: emptyDocument(), version: 0 };

/**
 * One region's side of cross-region sync. Every change is a conditional write of the parts it touches
 * (read, merge, write if nobody wrote since), so any number of writers in a region lose nothing and a
 * change costs what it changes, not what the document holds. Local changes are issued under this
 * process's replica (`ReplicaIdentity`: the region plus an epoch) and publish their delta; remote envelopes
 * are checked against the trust policy and merge in field by field, a batch's envelopes of one document in
 * one write; anti-entropy compares digests and repairs what differs with full states.
 */
export class SyncReplica {
  private readonly metrics: SyncMetrics;
  private readonly maxAttempts: number;
  /** Who may send this region messages (every message's sender is checked against it). */
  readonly policy: TrustPolicy;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  readonly identity: ReplicaIdentity;

  constructor(private readonly deps: SyncReplicaDeps) {
    this.metrics = deps.metrics ?? NO_METRICS;
    this.maxAttempts = deps.maxAttempts ?? 10;
    this.policy = {
      region: deps.region,
      peers: deps.peers,
      maxClockSkewMs: deps.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
    };
    this.random = deps.random ?? Math.random;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.identity = new ReplicaIdentity(deps.region, this.random, deps.now());
  }

  get region(): string {
    return this.deps.region;
  }

  /**
   * Applies an operation locally, durably, then publishes its delta. Once the write succeeded the change is
   * done: a failed publish is counted, not thrown (a caller retrying would apply it twice), and the next
   * anti-entropy pass finds the document changed and repairs the peers. The delta goes with a new
   * correlation id (`changeId`), logged here with the publish and in every peer with the merge. Returns the
   * state of the parts the operation touched (the field; of a set, the element).
   */
  async update(document: string, operation: Operation): Promise<CrdtDocument> {
    checkDocumentKey(document);
    checkOperation(operation);
    const scope = scopeOfOperation(operation);
    let published: Envelope | undefined;
    let confirming = false;
    const state = await this.conditionally(
      document,
      scope,
      (stored) => {
        const nowMs = this.deps.now();
        const issuer = this.identity.replicaFor(document, stored, scope, nowMs, confirming);
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
      (saved, version) => this.identity.issued(document, saved, scope, version, (published as Envelope).hlc),
    ).catch((error: unknown) => {
      // A save that failed without an answer may have been stored: this epoch cannot tell what it issued.
      if (!(error instanceof PermanentError)) this.identity.rotate(this.deps.now());
      throw error;
    });
    if (published) {
      const correlationId = (this.deps.changeId ?? newChangeId)();
      try {
        const change = { ...published, body: this.withOwnFolds(published.body, state) };
        await this.deps.publisher.publish(change, undefined, { correlationId });
      } catch (error) {
        this.metrics.publishFailed(1);
        this.deps.logger?.warn('change saved but not published: the anti-entropy repairs the peers', {
          correlation_id: correlationId,
          origin: this.deps.region,
          error: describeError(error),
        });
        return state;
      }
      this.deps.logger?.info('change published', {
        correlation_id: correlationId,
        origin: this.deps.region,
        kind: 'delta',
      });
    }
    return state;
  }

  /** Merges one remote envelope (see `receiveAll`); throws what refused it. */
  async receive(envelope: Envelope): Promise<'merged'> {
    const [outcome] = await this.receiveAll([envelope]);
    if (outcome instanceof Error) throw outcome;
    return 'merged';
  }

  /**
   * Merges remote envelopes of ONE document in one conditional write (one load, one save), each once it
   * passed the trust checks; returns each envelope's outcome in order. A field whose merge would break a
   * limit keeps its local state and is reported; a type clash merges (see `Field`) and is reported. A full
   * state also records when this region last heard the whole document from that peer. A merge that changes
   * nothing writes nothing. Throws (for every envelope) what failed the write: contention, the store.
   */
  async receiveAll(envelopes: readonly Envelope[]): Promise<ReceiveOutcome[]> {
    const outcomes: ReceiveOutcome[] = envelopes.map(() => 'merged');
    const accepted: Envelope[] = [];
    envelopes.forEach((envelope, i) => {
      try {
        checkTrust(envelope, this.policy, this.deps.now());
        if (accepted.length > 0 && envelope.document !== accepted[0]?.document)
          throw new RangeError('receiveAll: every envelope must be of one document');
        accepted.push(envelope);
      } catch (error) {
        if (error instanceof RangeError) throw error;
        outcomes[i] = error as Error;
      }
    });
    const first = accepted[0];
    if (!first) return outcomes;
    let merges: FieldMerge[] = [];
    await this.conditionally(first.document, scopeOf(accepted.map((e) => e.body)), (stored) => {
      const merging = (budget?: number): Change => {
        merges = [];
        let state = stored.state;
        let clock = stored.clock;
        let heard = stored.heard;
        let regressed = false;
        let room = budget;
        for (const envelope of accepted) {
          clock = observe(clock, envelope.hlc, this.identity.replica, this.deps.now());
          regressed ||= showsLossOf(this.deps.region, state, envelope.body);
          const before = state;
          const merge = mergeFields(state, envelope.body, room);
          if (room !== undefined) room -= stateGrowth(before, merge.state);
          merges.push(merge);
          state = merge.state;
          // Only a full state merged whole tells what the peer held: a refused field kept this region's copy.
          if (envelope.kind === 'state' && merge.refused.length === 0)
            heard = new Map(heard).set(
              envelope.origin,
              Math.max(heard?.get(envelope.origin) ?? 0, envelope.hlc.wallMs),
            );
        }
        return { state, clock, heard, regressed, fit: budget === undefined ? merging : undefined };
      };
      return merging();
    });
    this.metrics.merged(accepted.length);
    const nowMs = this.deps.now();
    for (const envelope of accepted)
      if (envelope.kind === 'delta')
        this.metrics.lagMs(Math.max(0, nowMs - envelope.hlc.wallMs), envelope.origin);
    for (const { clashes, refused } of merges) {
      for (const [key, field] of clashes)
        this.metrics.typeClash(
          first.document,
          key,
          field.map((variant) => variant.crdt.type),
        );
      if (refused.length > 0)
        this.metrics.fieldsRefused(first.document, refused.length, refused[0] as string);
    }
    return outcomes;
  }

  /**
   * Records that this region holds `peer`'s whole state of `document` as of `atMs` (a digest of the peer's
   * equal to this region's `digest`), as merging its full state would: what folding rests on. Nothing is
   * written when the document changed since (its digest is no longer `digest`).
   */
  async heardWhole(document: string, peer: string, atMs: number, digest: string): Promise<void> {
    await this.conditionally(document, new Map(), (stored) => {
      const heard =
        stored.digest === digest && atMs > (stored.heard?.get(peer) ?? 0)
          ? new Map(stored.heard).set(peer, atMs)
          : stored.heard;
      return { state: stored.state, clock: stored.clock, heard };
    });
  }

  /** The full state of a document, stamped with this region's clock now (the state is what it holds now). */
  async fullState(document: string): Promise<Envelope | undefined> {
    const stored = await this.loadWhole(document);
    if (!stored || stored.state.size === 0) return undefined;
    return {
      origin: this.deps.region,
      document,
      kind: 'state',
      hlc: tick(this.identity.clockFrom(stored.clock), this.identity.replica, this.deps.now()),
      body: stored.state,
    };
  }

  /**
   * Publishes the full state of each document (by default every document the store lists: tests and
   * tools; the anti-entropy pass repairs by digest) to every peer or to `to`, going on past one it cannot
   * publish, counting it.
   */
  async publishFullState(documents?: readonly string[], to?: string): Promise<number> {
    const keys = documents ?? (await this.deps.store.documents?.()) ?? [];
    let published = 0;
    for (const document of keys) {
      try {
        const envelope = await this.fullState(document);
        if (!envelope) continue;
        await this.deps.publisher.publish(envelope, to);
        published++;
      } catch {
        this.metrics.antiEntropyFailed(1);
      }
    }
    return published;
  }

  async read(document: string): Promise<CrdtDocument> {
    checkDocumentKey(document);
    return (await this.loadWhole(document))?.state ?? emptyDocument();
  }

  /** A whole document, with what the previous release stored merged in. */
  private async loadWhole(document: string): Promise<StoredDocument | undefined> {
    const stored = await this.deps.store.load(document);
    return stored?.legacy ? withLegacy(stored) : stored;
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

  /** Folds this region's ended epochs in the parts read, when `foldHorizon` allows it. */
  private foldOwnEpochs(state: CrdtDocument, ground: Omit<FoldGround, 'peers' | 'maxClockSkewMs' | 'nowMs'>) {
    const horizon = foldHorizon({ ...ground, ...this.policy, nowMs: this.deps.now() });
    return horizon === undefined ? state : foldDocument(state, this.deps.region, horizon);
  }

  private async conditionally(
    document: string,
    scope: DocumentScope,
    change: (stored: StoredDocument) => Change,
    onSaved?: (state: CrdtDocument, version: number) => void,
    migration = false,
  ): Promise<CrdtDocument> {
    let rotatedForRetirement = false;
    let migrations = 0;
    /** The version this update is to commit in the document's line, once it joined. */
    let turn: number | undefined;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const attemptStarted = this.deps.now();
      let base = (await this.deps.store.load(document, scope)) ?? EMPTY;
      // The previous release's whole item: merged into every part first, on its own (a merge may take
      // several steps, and only a merge is safe to repeat after a partial commit), then dropped.
      const migrating = base.legacy !== undefined;
      if (migrating && !migration && migrations++ < 3) {
        await this.conditionally(
          document,
          scope,
          (s) => ({ state: s.state, clock: s.clock, heard: s.heard }),
          undefined,
          true,
        );
        attempt--;
        continue;
      }
      if (migrating) base = (await this.deps.store.load(document)) ?? EMPTY;
      const stored = migrating ? withLegacy(base) : base;
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
      // A migration's last commit also deletes the previous release's item: room for it, and always a commit.
      const limits = migrating ? { parts: MAX_COMMIT_PARTS - 1, bytes: MAX_COMMIT_BYTES } : undefined;
      const plan = (c: Change) => {
        const heard = c.heard ?? stored.heard;
        const regressedAt = c.regressed ? this.deps.now() : stored.regressedAt;
        const meta = { clock: c.clock, heard, regressedAt, changedAt: this.deps.now(), force: migrating };
        const folded = this.foldOwnEpochs(c.state, { heard, regressedAt, tableCreatedAt });
        const planned = planChange(base.state, headOf(base), folded, meta, limits, base.parts);
        // Folding a set's first horizon adds a few bytes: near the limit it waits.
        if (folded !== c.state && !withinLimits(planned, c.maxBytes))
          return {
            state: c.state,
            planned: planChange(base.state, headOf(base), c.state, meta, limits, base.parts),
          };
        return { state: folded, planned };
      };
      let { state, planned } = plan(next);
      if (!withinLimits(planned, next.maxBytes) && next.fit) {
        next = next.fit(Math.max(0, (next.maxBytes ?? MAX_DOCUMENT_BYTES) - (base.bytes ?? 0)));
        ({ state, planned } = plan(next));
      }
      checkLimits(document, planned, next.maxBytes);
      if (planned.commits.length === 0) return state;
      let saved = true;
      for (const [i, commit] of planned.commits.entries()) {
        const last = i === planned.commits.length - 1;
        if (!(await this.deps.store.save(document, commit, { dropLegacy: migrating && last }))) {
          saved = false;
          break;
        }
      }
      if (saved) {
        onSaved?.(state, planned.commits.at(-1)?.head.version ?? base.version);
        return state;
      }
      this.metrics.conflictRetried(1);
      if (attempt === this.maxAttempts) break;
      const attemptMs = this.deps.now() - attemptStarted;
      turn = attempt <= LINE_ATTEMPTS ? await this.turnInLine(document, base.version, turn) : undefined;
      const place = turn === undefined ? 0 : turn - (base.version + 1);
      await this.sleep(
        place >= LINE_MIN_PLACE
          ? turnDelayMs(place, attemptMs, this.random)
          : retryDelayMs(attempt, this.random),
      );
    }
    this.metrics.contention(1);
    throw new ContentionError(this.maxAttempts);
  }

  /**
   * This update's turn in the document's line after a lost race: the turn it holds while the commits
   * before it are still to come, else a new one. Undefined without a line: when the store keeps none, was
   * throttled, or its request failed (counted: the line is an optimisation, full jitter still spaces the
   * retries).
   */
  private async turnInLine(document: string, seenVersion: number, held: number | undefined) {
    if (held !== undefined && held > seenVersion + 1) return held;
    let turn: number | undefined;
    try {
      turn = await this.deps.store.queue?.(document, seenVersion);
    } catch {
      this.metrics.lineFailed(1);
      return undefined;
    }
    return turn !== undefined && Number.isSafeInteger(turn) && turn > seenVersion + 1 ? turn : undefined;
  }
}

const headOf = (stored: StoredDocument): DocumentHead | undefined =>
  stored.version === 0 && stored.digest === undefined
    ? undefined
    : {
        version: stored.version,
        clock: stored.clock,
        heard: stored.heard,
        regressedAt: stored.regressedAt,
        bytes: stored.bytes ?? 0,
        digest: stored.digest ?? digestText(0n),
        changedAt: stored.changedAt,
      };

/** A stored document with the previous release's item merged in: its state, clock, peers heard, regress. */
function withLegacy(stored: StoredDocument): StoredDocument {
  const legacy = stored.legacy;
  if (!legacy) return stored;
  const heard = new Map(legacy.heard);
  for (const [peer, at] of stored.heard ?? []) heard.set(peer, Math.max(at, heard.get(peer) ?? 0));
  const regressedAt = Math.max(stored.regressedAt ?? 0, legacy.regressedAt ?? 0);
  return {
    ...stored,
    state: mergeDocument(stored.state, legacy.state),
    clock: laterHlc(stored.clock, legacy.clock),
    heard: heard.size > 0 ? heard : undefined,
    regressedAt: regressedAt > 0 ? regressedAt : undefined,
    legacy: undefined,
  };
}

/** How much a merge grew the parts it changed. */
function stateGrowth(before: CrdtDocument, after: CrdtDocument): number {
  let grown = 0;
  for (const [key, field] of after)
    if (before.get(key) !== field)
      grown += fieldSize(key, field).bytes - fieldSize(key, before.get(key)).bytes;
  return grown;
}

const withinLimits = (planned: PlannedChange, maxBytes = MAX_DOCUMENT_BYTES): boolean =>
  planned.bytes <= maxBytes && planned.largestPart <= MAX_PART_BYTES;

function checkLimits(document: string, planned: PlannedChange, maxBytes = MAX_DOCUMENT_BYTES): void {
  if (planned.largestPart > MAX_PART_BYTES)
    throw new DocumentTooLargeError(document, planned.largestPart, MAX_PART_BYTES, 'a part of the document');
  if (planned.bytes > maxBytes) throw new DocumentTooLargeError(document, planned.bytes, maxBytes);
}
