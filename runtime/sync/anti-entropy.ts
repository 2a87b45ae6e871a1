import { tick } from '../crdt';
import {
  encodeControl,
  MAX_PULL_DOCUMENTS,
  type DigestEntry,
  type DigestMessage,
  type PullMessage,
} from './control-messages';
import { MAX_MESSAGE_BYTES } from './limits';
import type { Publisher, SyncMetrics, SyncReplica } from './replica';
import type { ControlPublisher } from './sns-publisher';
import { checkSender, type TrustPolicy } from './trust';

/** A document as the `sync-documents` index lists it: its head's digest and when it last changed. */
export interface IndexedDocument {
  readonly document: string;
  readonly digest: string;
  readonly changedAt: number;
  /** Per peer, when its whole state was last known to be held here (`heads` only). */
  readonly heard?: ReadonlyMap<string, number>;
}

/** The region's list of documents, read without reading their parts. */
export interface DocumentIndex {
  /** Documents that changed in (fromMs, toMs]. */
  changedBetween(fromMs: number, toMs: number): Promise<IndexedDocument[]>;
  /** Up to `limit` documents after `cursor` in the sweep's order; no cursor back when the sweep is done. */
  page(cursor: string | undefined, limit: number): Promise<{ documents: IndexedDocument[]; cursor?: string }>;
  /** The heads of these documents, as this region holds them. */
  heads(documents: readonly string[]): Promise<Map<string, IndexedDocument>>;
}

/** Where the anti-entropy resumes: changes up to `changedThrough` were announced; the sweep is at `cursor`. */
export interface Checkpoint {
  readonly version: number;
  readonly changedThrough: number;
  readonly cursor?: string;
  /** Sweeps completed (every document listed once). */
  readonly sweeps: number;
}

export interface CheckpointStore {
  load(): Promise<Checkpoint | undefined>;
  /** Writes `next` if the stored version is still `expected` (0: none); false when another pass won. */
  save(next: Checkpoint, expected: number): Promise<boolean>;
}

export interface AntiEntropyDeps {
  readonly replica: SyncReplica;
  readonly peers: readonly string[];
  readonly maxClockSkewMs: number;
  readonly index: DocumentIndex;
  readonly checkpoints: CheckpointStore;
  readonly publisher: Publisher & ControlPublisher;
  readonly now: () => number;
  /** How long a document must be quiet in both regions before digests are compared. */
  readonly settleMs: number;
  /** Documents of the incremental sweep per pass. */
  readonly pageSize: number;
  readonly metrics: SyncMetrics;
  /** Documents one region asks one peer for, per digest message. Default: 100. */
  readonly maxPulls?: number;
}

/** What one pass did. */
export interface PassReport {
  readonly changed: number;
  readonly swept: number;
  readonly messages: number;
  readonly bytes: number;
  readonly failed: number;
  /** The sweep finished (every document listed) in this pass. */
  readonly sweepDone: boolean;
}

/** How stale a peer's whole-state record may get before an equal digest writes it again. */
const HEARD_REFRESH_MS = 24 * 60 * 60 * 1000;
/** The most of the change history one pass announces. */
const MAX_CATCH_UP_MS = 60 * 60 * 1000;
/** How far back a region's first pass announces changes. */
const FIRST_PASS_LOOKBACK_MS = 15 * 60 * 1000;
/** A digest message's budget: room left for the attributes. */
const DIGEST_MESSAGE_BYTES = MAX_MESSAGE_BYTES - 4096;

/**
 * Anti-entropy in proportion to change. Each pass announces the digests of the documents that changed
 * since the last pass (up to `settleMs` ago) and of one page of an incremental sweep through every
 * document, resuming from a checkpoint; a peer compares each digest with its own once both sides were
 * quiet for `settleMs` (a sweep's entry even while they change), counts the quiet documents that differ,
 * and asks for the full states of all that differ (a pull), which merge like a message; a state too large
 * for a message travels by reference. A document is compared by the first pass at least `settleMs` after
 * its change, and by the sweep at least once every ceil(documents / pageSize) passes.
 */
export class AntiEntropy {
  private readonly policy: TrustPolicy;

  constructor(private readonly deps: AntiEntropyDeps) {
    this.policy = { region: deps.replica.region, peers: deps.peers, maxClockSkewMs: deps.maxClockSkewMs };
  }

  async pass(): Promise<PassReport> {
    const { index, checkpoints, now, settleMs, pageSize } = this.deps;
    const nowMs = now();
    const checkpoint = (await checkpoints.load()) ?? {
      version: 0,
      changedThrough: nowMs - FIRST_PASS_LOOKBACK_MS,
      sweeps: 0,
    };
    // After missed passes, a pass catches up a bounded span at a time, so it always fits its timeout.
    const through = Math.max(
      checkpoint.changedThrough,
      Math.min(nowMs - settleMs, checkpoint.changedThrough + MAX_CATCH_UP_MS),
    );
    const changed =
      through > checkpoint.changedThrough
        ? await index.changedBetween(checkpoint.changedThrough, through)
        : [];
    const page = await index.page(checkpoint.cursor, pageSize);
    const entries = new Map<string, DigestEntry>();
    for (const { document, digest, changedAt } of page.documents)
      entries.set(document, { document, digest, changedAt, swept: true });
    for (const { document, digest, changedAt } of changed)
      entries.set(document, { document, digest, changedAt });
    const report = await this.announce([...entries.values()]);
    await checkpoints.save(
      {
        version: checkpoint.version + 1,
        changedThrough: through,
        cursor: page.cursor,
        sweeps: checkpoint.sweeps + (page.cursor === undefined ? 1 : 0),
      },
      checkpoint.version,
    );
    return {
      ...report,
      changed: changed.length,
      swept: page.documents.length,
      sweepDone: page.cursor === undefined,
    };
  }

  /** A peer's digests: compares those quiet on both sides, counts and pulls the ones that differ. */
  async compare(message: DigestMessage): Promise<{ compared: number; diverged: number }> {
    const nowMs = this.deps.now();
    checkSender(message.origin, message.hlc, this.policy, nowMs);
    const quietBefore = nowMs - this.deps.settleMs;
    // A sweep's entry is compared even while the document changes: a hot one is repaired once a sweep
    // (maybe needlessly: its deltas may be on their way); only quiet ones count as divergence.
    const settled = [...new Map(message.entries.map((entry) => [entry.document, entry])).values()].filter(
      (entry) => entry.swept || entry.changedAt <= quietBefore,
    );
    const own = await this.deps.index.heads(settled.map((entry) => entry.document));
    const diverged: string[] = [];
    const held: IndexedDocument[] = [];
    let compared = 0;
    // An equal digest shows this region holds the peer's whole state as of its pass (settled before it).
    const wholeAt = message.hlc.wallMs - this.deps.settleMs;
    const unsettled: string[] = [];
    for (const entry of settled) {
      const mine = own.get(entry.document);
      const quiet = entry.changedAt <= quietBefore && !(mine && mine.changedAt > quietBefore);
      if (!quiet && !entry.swept) continue;
      compared++;
      if (mine?.digest !== entry.digest) (quiet ? diverged : unsettled).push(entry.document);
      else if ((mine.heard?.get(message.origin) ?? 0) < wholeAt - HEARD_REFRESH_MS) held.push(mine);
    }
    this.deps.metrics.diverged(diverged.length, message.origin);
    // What folding a region's old epochs rests on (see folding.ts), recorded once a day per document.
    for (const mine of held) {
      try {
        await this.deps.replica.heardWhole(mine.document, message.origin, wholeAt, mine.digest);
      } catch {
        this.deps.metrics.antiEntropyFailed(1);
      }
    }
    // Each pull message is one inbox record at the origin: a few documents' full states, each its own retry.
    const asked = [...diverged, ...unsettled].slice(0, this.deps.maxPulls ?? 100);
    for (let i = 0; i < asked.length; i += MAX_PULL_DOCUMENTS)
      await this.deps.publisher.publishControl({
        kind: 'pull',
        origin: this.policy.region,
        hlc: this.clock(),
        to: message.origin,
        documents: asked.slice(i, i + MAX_PULL_DOCUMENTS),
      });
    return { compared, diverged: diverged.length };
  }

  /** A peer's pull: publishes the full state of each document it asks this region for. */
  async answer(pull: PullMessage): Promise<number> {
    checkSender(pull.origin, pull.hlc, this.policy, this.deps.now());
    if (pull.to !== this.policy.region) return 0;
    return this.deps.replica.publishFullState([...new Set(pull.documents)], pull.origin);
  }

  /** Publishes digests in messages within SNS's limit; a message that fails counts its documents. */
  private async announce(entries: readonly DigestEntry[]) {
    let messages = 0;
    let bytes = 0;
    let failed = 0;
    let batch: DigestEntry[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const message: DigestMessage = {
        kind: 'digests',
        origin: this.policy.region,
        hlc: this.clock(),
        entries: batch,
      };
      const size = Buffer.byteLength(encodeControl(message), 'utf8');
      try {
        await this.deps.publisher.publishControl(message);
        messages++;
        bytes += size;
      } catch {
        failed += batch.length;
        this.deps.metrics.antiEntropyFailed(batch.length);
      }
      batch = [];
    };
    let size = 200;
    for (const entry of entries) {
      const entryBytes =
        Buffer.byteLength(JSON.stringify([entry.document, entry.digest, entry.changedAt, 1]), 'utf8') + 1;
      if (size + entryBytes > DIGEST_MESSAGE_BYTES) {
        await flush();
        size = 200;
      }
      batch.push(entry);
      size += entryBytes;
    }
    await flush();
    return { messages, bytes, failed };
  }

  private clock() {
    return tick(undefined, this.deps.replica.identity.replica, this.deps.now());
  }
}
