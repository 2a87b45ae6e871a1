import { emptyORSet, variantWire, type CrdtDocument, type Hlc } from '../crdt';
import { digestText, parsePartKey, partBytes, partsOf, stepDigest, variantPartKey } from './parts';

/** What a document's head item holds: everything but its parts. */
export interface DocumentHead {
  readonly version: number;
  readonly clock?: Hlc;
  /** Per peer region, the clock of the latest full state from it merged into the document whole. */
  readonly heard?: ReadonlyMap<string, number>;
  /** When this region last found the document's state had gone back (a restore, a recreated item). */
  readonly regressedAt?: number;
  /** Size of every part, `partBytes` each. */
  readonly bytes: number;
  /** Sum of the parts' hashes (`digestText`), equal wherever the state is equal. */
  readonly digest: string;
  /** When the state last changed here (ms). */
  readonly changedAt?: number;
}

/** One conditional write: the head (version `expected` + 1) and the parts it puts and deletes. */
export interface Commit {
  readonly expected: number;
  readonly head: DocumentHead;
  readonly puts: ReadonlyMap<string, string>;
  readonly deletes: readonly string[];
}

/** DynamoDB's transactions: 100 items (one is the head) and 4 MB. */
export const MAX_COMMIT_PARTS = 99;
export const MAX_COMMIT_BYTES = 3_500_000;

/** What one commit may hold: parts, and bytes (texts counted at 3 bytes a character, the most UTF-8 takes). */
export interface CommitLimits {
  readonly parts: number;
  readonly bytes: number;
}

export interface PlannedChange {
  readonly commits: readonly Commit[];
  /** The document's size after the change. */
  readonly bytes: number;
  /** Parts the change writes, with their sizes (for the part limit). */
  readonly largestPart: number;
}

interface Meta {
  readonly clock?: Hlc;
  readonly heard?: ReadonlyMap<string, number>;
  readonly regressedAt?: number;
  readonly changedAt: number;
  /** Commit the head even when nothing changed (a migration deletes the previous release's item with it). */
  readonly force?: boolean;
}

const EMPTY_DIGEST = digestText(0n);

/**
 * The commits that take a stored view (`base`, at `head`) to `next`: one when the change fits a
 * transaction, else a sequence whose every step leaves a valid state. Set elements go first (a set's
 * stored context may not claim dots its elements are yet to receive: that would read as their removal;
 * dots an element holds count as seen), then the variant parts, the sets' final contexts among them. Only
 * the last step records what folding rests on (`heard`, `regressedAt`). No commit when nothing changes.
 */
export function planChange(
  base: CrdtDocument,
  head: DocumentHead | undefined,
  next: CrdtDocument,
  meta: Meta,
  limits: CommitLimits = { parts: MAX_COMMIT_PARTS, bytes: MAX_COMMIT_BYTES },
  /** The texts of `base`'s parts as stored (a set's stored context may list fewer dots than `base` holds). */
  stored?: ReadonlyMap<string, string>,
): PlannedChange {
  const before = stored ?? partsOf(base);
  const after = partsOf(next);
  const changed: string[] = [];
  for (const [key, text] of after) if (before.get(key) !== text) changed.push(key);
  for (const key of before.keys()) if (!after.has(key)) changed.push(key);
  const start = head ?? { version: 0, bytes: 0, digest: EMPTY_DIGEST };
  let bytes = start.bytes;
  let largestPart = 0;
  for (const key of changed) {
    const old = before.get(key);
    const now = after.get(key);
    if (old !== undefined) bytes -= partBytes(key, old);
    if (now !== undefined) {
      bytes += partBytes(key, now);
      largestPart = Math.max(largestPart, partBytes(key, now));
    }
  }
  const metaChanged =
    meta.force === true ||
    meta.regressedAt !== head?.regressedAt ||
    !sameHeard(meta.heard, head?.heard) ||
    (head === undefined && changed.length > 0);
  if (changed.length === 0 && !metaChanged) return { commits: [], bytes, largestPart };

  const steps = stepsOf(changed, after, limits, newSetHeaders(before, next));
  const commits: Commit[] = [];
  let digest = BigInt(`0x${start.digest}`);
  let size = start.bytes;
  const current = new Map(before);
  steps.forEach((step, i) => {
    const puts = new Map<string, string>();
    const deletes: string[] = [];
    for (const [key, text] of step) {
      const old = current.get(key);
      if (old === text) continue;
      if (old !== undefined) {
        digest = stepDigest(digest, key, old, -1);
        size -= partBytes(key, old);
      }
      if (text === undefined) {
        deletes.push(key);
        current.delete(key);
      } else {
        puts.set(key, text);
        current.set(key, text);
        digest = stepDigest(digest, key, text, 1);
        size += partBytes(key, text);
      }
    }
    commits.push({
      expected: start.version + i,
      head: {
        version: start.version + i + 1,
        clock: meta.clock,
        // Until the last step the merge is not whole: what folding rests on stays as it was.
        heard: i === steps.length - 1 ? meta.heard : head?.heard,
        regressedAt: i === steps.length - 1 ? meta.regressedAt : head?.regressedAt,
        bytes: size,
        digest: digestText(digest),
        changedAt: changed.length > 0 ? meta.changedAt : head?.changedAt,
      },
      puts,
      deletes,
    });
  });
  return { commits, bytes, largestPart };
}

function sameHeard(a: ReadonlyMap<string, number> | undefined, b: ReadonlyMap<string, number> | undefined) {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [peer, at] of a ?? []) if (b?.get(peer) !== at) return false;
  return true;
}

type Step = Map<string, string | undefined>;

/** For each set `next` has and the stored parts lack, its header with an empty context. */
function newSetHeaders(before: ReadonlyMap<string, string>, next: CrdtDocument): Map<string, string> {
  const headers = new Map<string, string>();
  for (const [field, variants] of next)
    for (const variant of variants)
      if (variant.crdt.type === 'orset' && !before.has(variantPartKey(field, 'or')))
        headers.set(
          variantPartKey(field, 'or'),
          JSON.stringify(
            variantWire({ created: variant.created, crdt: { type: 'orset', state: emptyORSet() } }),
          ),
        );
  return headers;
}

/** The changed parts, split into steps that each fit a transaction and each leave a valid state. */
function stepsOf(
  changed: readonly string[],
  after: ReadonlyMap<string, string>,
  limits: CommitLimits,
  /** Per set the change creates, a header to write with its first elements (its context comes last). */
  created: ReadonlyMap<string, string>,
): Step[] {
  const textBytes = (key: string) => (after.get(key)?.length ?? 0) * 3 + key.length;
  const fits = (keys: number, bytes: number) => keys <= limits.parts && bytes <= limits.bytes;
  const total = changed.reduce((sum, key) => sum + textBytes(key), 0);
  if (fits(changed.length, total)) return [new Map(changed.map((key) => [key, after.get(key)]))];

  // Elements first, then the variant parts (the sets' contexts among them). A step's elements may hold
  // dots their set's stored context is yet to list: a reader counts held dots as seen (documentFromParts),
  // so every step is a valid state without rewriting the context each time.
  const steps: Step[] = [];
  let step: Step = new Map();
  let stepBytes = 0;
  const flush = () => {
    if (step.size > 0) steps.push(step);
    step = new Map();
    stepBytes = 0;
  };
  const headed = new Set<string>();
  for (const key of [...changed.filter((k) => k[0] === 'e'), ...changed.filter((k) => k[0] !== 'e')]) {
    const headerKey = key[0] === 'e' ? variantPartKey(parsePartKey(key).field, 'or') : undefined;
    const header = headerKey === undefined || headed.has(headerKey) ? undefined : created.get(headerKey);
    const extra = header === undefined ? 0 : header.length * 3 + (headerKey as string).length;
    if (!fits(step.size + (header === undefined ? 1 : 2), stepBytes + textBytes(key) + extra)) flush();
    if (header !== undefined) {
      step.set(headerKey as string, header);
      headed.add(headerKey as string);
    }
    step.set(key, after.get(key));
    stepBytes += textBytes(key) + extra;
  }
  flush();
  return steps;
}
