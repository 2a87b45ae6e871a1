import { epochReplicaId, laterHlc, type CrdtDocument, type Hlc } from '../crdt';

/** How long one epoch issues changes before the process starts a new one (a day). */
export const MAX_EPOCH_AGE_MS = 24 * 60 * 60 * 1000;

/** Documents whose footprint a process remembers; one it forgot starts a new epoch when next written. */
const REMEMBERED_DOCUMENTS = 10_000;

/** What one replica issued on a document: per field and part, its count or highest dot there. */
type Footprint = ReadonlyMap<string, number>;

/** A footprint and the item version it was written at. */
interface Issued {
  readonly footprint: Footprint;
  readonly version: number;
}

function footprintOf(state: CrdtDocument, replica: string): Footprint {
  const footprint = new Map<string, number>();
  const note = (key: string, value: number | undefined) => {
    if (value !== undefined && value > 0) footprint.set(key, value);
  };
  for (const [field, variants] of state) {
    for (const { crdt } of variants) {
      const at = `${field}\u0000${crdt.type}`;
      if (crdt.type === 'gcounter') note(at, crdt.state.counts.get(replica));
      if (crdt.type === 'pncounter') {
        note(`${at}\u0000p`, crdt.state.p.counts.get(replica));
        note(`${at}\u0000n`, crdt.state.n.counts.get(replica));
      }
      if (crdt.type === 'orset') note(at, crdt.state.context.vv.get(replica));
    }
  }
  return footprint;
}

/**
 * Who a region's process is when it changes documents: the replica `<region>@<epoch>`, a fresh epoch per
 * process (a cold start), per day, and whenever a document's stored state no longer holds what this epoch
 * issued on it (the table or the item went back: a restore, a delete). Knowing that rests on this process's
 * memory, never on the table, so a region never issues a dot or count it may have issued before. The
 * process also keeps the last clock stamp it issued, so stamps never repeat either.
 */
export class ReplicaIdentity {
  private id = '';
  private startedMs = 0;
  private lastStamp: Hlc | undefined;
  private readonly footprints = new Map<string, Issued>();

  constructor(
    readonly region: string,
    private readonly random: () => number,
    nowMs: number,
  ) {
    this.rotate(nowMs);
  }

  get replica(): string {
    return this.id;
  }

  /** Epochs this process has started (the first included). */
  epochs = 0;

  /** Starts a new epoch: a replica id never used before. */
  rotate(nowMs: number): void {
    const nonce = Math.floor(this.random() * 36 ** 4)
      .toString(36)
      .padStart(4, '0');
    this.id = epochReplicaId(this.region, nowMs, nonce);
    this.startedMs = nowMs;
    this.footprints.clear();
    this.epochs++;
  }

  /**
   * The replica to issue a change to `document` under, given its stored state and version: the current
   * epoch while the state holds everything it issued there, else a new one. Undefined when the state lacks
   * something but is older than this process's own last write of it (a read that raced that write, or a
   * restore): read again, with `confirming` set, to tell which.
   */
  replicaFor(
    document: string,
    stored: { readonly state: CrdtDocument; readonly version: number },
    nowMs: number,
    confirming = false,
  ): string | undefined {
    if (nowMs - this.startedMs >= MAX_EPOCH_AGE_MS || nowMs < this.startedMs) {
      this.rotate(nowMs);
      return this.id;
    }
    const remembered = this.footprints.get(document);
    const now = footprintOf(stored.state, this.id);
    const wentBack = remembered
      ? [...remembered.footprint].some(([key, value]) => (now.get(key) ?? 0) < value)
      : now.size > 0; // issued here before, but forgotten: cannot be checked
    if (!wentBack) return this.id;
    if (remembered && stored.version < remembered.version && !confirming) return undefined;
    this.rotate(nowMs);
    return this.id;
  }

  /** After a change under the current epoch was stored: what the epoch has now issued on the document. */
  issued(document: string, state: CrdtDocument, version: number, stamp: Hlc): void {
    this.lastStamp = laterHlc(this.lastStamp, stamp);
    this.footprints.delete(document);
    this.footprints.set(document, { footprint: footprintOf(state, this.id), version });
    if (this.footprints.size > REMEMBERED_DOCUMENTS) {
      const oldest = this.footprints.keys().next().value;
      if (oldest !== undefined) this.footprints.delete(oldest);
    }
  }

  /** The clock to tick from: the later of the stored clock and the last stamp this process issued. */
  clockFrom(stored: Hlc | undefined): Hlc | undefined {
    return laterHlc(stored, this.lastStamp);
  }
}
