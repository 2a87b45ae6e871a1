import type { DocumentScope } from './parts';
import { epochReplicaId, isFolded, laterHlc, type CrdtDocument, type GCounter, type Hlc } from '../crdt';

/** How long one epoch issues changes before the process starts a new one (a day). */
export const MAX_EPOCH_AGE_MS = 24 * 60 * 60 * 1000;

/** Documents whose footprints a process remembers; forgetting one starts a new epoch. */
const REMEMBERED_DOCUMENTS = 10_000;

/**
 * What one replica issued on a document: per field and part, its count or highest dot there; `Infinity`
 * where the document folded the replica (its issues are in the fold).
 */
type Footprint = ReadonlyMap<string, number>;

/** The footprints this process's replicas left on a document, and the item version they were written at. */
interface Issued {
  readonly byReplica: ReadonlyMap<string, Footprint>;
  readonly version: number;
}

const counterFolds = (counter: GCounter) =>
  new Map([...counter.folds].map(([group, fold]) => [group, fold.beforeMs]));

function footprintOf(state: CrdtDocument, replica: string): Footprint {
  const footprint = new Map<string, number>();
  const note = (key: string, value: number | undefined, folded: boolean) => {
    if (folded) footprint.set(key, Number.POSITIVE_INFINITY);
    else if (value !== undefined && value > 0) footprint.set(key, value);
  };
  for (const [field, variants] of state) {
    for (const { crdt } of variants) {
      const at = `${field}\u0000${crdt.type}`;
      if (crdt.type === 'gcounter')
        note(at, crdt.state.counts.get(replica), isFolded(replica, counterFolds(crdt.state)));
      if (crdt.type === 'pncounter') {
        const { p, n } = crdt.state;
        note(`${at}\u0000p`, p.counts.get(replica), isFolded(replica, counterFolds(p)));
        note(`${at}\u0000n`, n.counts.get(replica), isFolded(replica, counterFolds(n)));
      }
      if (crdt.type === 'orset')
        note(at, crdt.state.context.vv.get(replica), isFolded(replica, crdt.state.context.horizons));
    }
  }
  return footprint;
}

const fieldOfKey = (key: string): string => key.slice(0, key.indexOf('\u0000'));

/** Whether `state` (the fields `scope` read) lacks something `remembered` says a replica issued there. */
const lacks = (
  state: CrdtDocument,
  scope: DocumentScope,
  replica: string,
  remembered: Footprint,
): boolean => {
  const now = footprintOf(state, replica);
  return [...remembered].some(([key, value]) => scope.has(fieldOfKey(key)) && (now.get(key) ?? 0) < value);
};

/**
 * Who a region's process is when it changes documents: the replica `<region>@<epoch>`, a fresh epoch per
 * process (a cold start), per day, and whenever a document's stored state no longer holds what one of this
 * process's epochs issued on it (the table or the item went back: a restore, a delete). Knowing that rests
 * on this process's memory, never on the table, so a region never issues a dot or count it may have issued
 * before. The process also keeps the last clock stamp it issued, so stamps never repeat either.
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

  /** Starts a new epoch: a replica id never used before (what earlier epochs issued is still remembered). */
  rotate(nowMs: number): void {
    const nonce = Math.floor(this.random() * 36 ** 4)
      .toString(36)
      .padStart(4, '0');
    this.id = epochReplicaId(this.region, nowMs, nonce);
    this.startedMs = nowMs;
  }

  /**
   * The replica to issue a change to `document` under, given its stored state and version: the current
   * epoch while the state holds everything this process's epochs issued there, else a new one
   * (`wentBack`: the state lost something this process wrote). Undefined when the state lacks something
   * but is older than this process's own last write of it (a read that raced that write, or a restore):
   * read again, with `confirming` set, to tell which.
   */
  replicaFor(
    document: string,
    stored: { readonly state: CrdtDocument; readonly version: number },
    scope: DocumentScope,
    nowMs: number,
    confirming = false,
  ): { readonly replica: string; readonly wentBack: boolean } | undefined {
    const remembered = this.footprints.get(document);
    const wentBack =
      remembered !== undefined &&
      [...remembered.byReplica].some(([replica, footprint]) =>
        lacks(stored.state, scope, replica, footprint),
      );
    if (wentBack && remembered && stored.version < remembered.version && !confirming) return undefined;
    if (wentBack || nowMs - this.startedMs >= MAX_EPOCH_AGE_MS || nowMs < this.startedMs) this.rotate(nowMs);
    return { replica: this.id, wentBack };
  }

  /**
   * After a change under the current epoch was stored: what this process's epochs have now issued there
   * (`state` holds the fields `scope` read; what the epoch issued on other fields is kept).
   */
  issued(document: string, state: CrdtDocument, scope: DocumentScope, version: number, stamp: Hlc): void {
    this.lastStamp = laterHlc(this.lastStamp, stamp);
    const byReplica = new Map(this.footprints.get(document)?.byReplica);
    const footprint = new Map(
      [...(byReplica.get(this.id) ?? [])].filter(([key]) => !scope.has(fieldOfKey(key))),
    );
    for (const [key, value] of footprintOf(state, this.id)) footprint.set(key, value);
    byReplica.set(this.id, footprint);
    this.footprints.delete(document);
    this.footprints.set(document, { byReplica, version });
    if (this.footprints.size > REMEMBERED_DOCUMENTS) {
      // The forgotten document may have been written under the current epoch: it must not write again.
      const oldest = this.footprints.keys().next().value;
      if (oldest !== undefined) this.footprints.delete(oldest);
      this.rotate(this.startedMs);
    }
  }

  /** The clock to tick from: the later of the stored clock and the last stamp this process issued. */
  clockFrom(stored: Hlc | undefined): Hlc | undefined {
    return laterHlc(stored, this.lastStamp);
  }
}
