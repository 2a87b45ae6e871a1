import { CrdtLimitError, MAX_COUNT } from './limits';
import { isFolded, lineageOf, ReplicaRetiredError } from './lineage';
import { joinMaps } from './maps';

/** A dot: the `counter`-th event of `replica`. */
export type Dot = readonly [replica: string, counter: number];

/** The dots `from` to `to` (inclusive) of one replica. */
export type DotRange = readonly [from: number, to: number];

/**
 * What a replica has seen: a version vector (every dot of a replica up to a counter), a dot cloud (dots
 * seen beyond a gap, e.g. deltas that arrived while an earlier one is missing) and, per group, a horizon:
 * every dot of the group's replicas with an epoch before it (folded replicas). Kept compact: the cloud
 * holds ranges, so a gap costs one range however many dots follow it; a range sits in the cloud only
 * while the gap before it is open, and nothing a horizon covers is listed.
 */
export interface CausalContext {
  readonly vv: ReadonlyMap<string, number>;
  /** Dots seen beyond a gap, per replica: sorted, disjoint, non-adjacent ranges, each starting above vv + 1. */
  readonly cloud: ReadonlyMap<string, readonly DotRange[]>;
  readonly horizons: ReadonlyMap<string, number>;
}

const NO_HORIZONS: ReadonlyMap<string, number> = new Map();
const NO_CLOUD: ReadonlyMap<string, readonly DotRange[]> = new Map();
export const EMPTY_CONTEXT: CausalContext = { vv: new Map(), cloud: NO_CLOUD, horizons: NO_HORIZONS };

/** Index of the first range of `ranges` (sorted, disjoint) that ends at or after `counter`. */
function firstEndingFrom(ranges: readonly DotRange[], counter: number): number {
  let low = 0;
  let high = ranges.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((ranges[middle] as DotRange)[1] < counter) low = middle + 1;
    else high = middle;
  }
  return low;
}

export function contains(context: CausalContext, dot: Dot): boolean {
  return containsRange(context, dot[0], dot[1], dot[1]);
}

/** Whether the context has seen every dot of `replica` from `from` to `to` (inclusive). */
export function containsRange(context: CausalContext, replica: string, from: number, to: number): boolean {
  const top = context.vv.get(replica) ?? 0;
  if (to <= top) return true;
  const ranges = context.cloud.get(replica);
  if (ranges !== undefined && from > top) {
    // ranges are non-adjacent: a span of dots beyond the vector is seen only when one range holds it all
    const range = ranges[firstEndingFrom(ranges, from)];
    if (range !== undefined && range[0] <= from && to <= range[1]) return true;
  }
  return isFolded(replica, context.horizons);
}

/** The number of dots the cloud names (summed over its ranges). */
export function cloudSize(context: CausalContext): number {
  let dots = 0;
  for (const ranges of context.cloud.values()) for (const [from, to] of ranges) dots += to - from + 1;
  return dots;
}

/** Every range of the cloud, with its replica. */
export function* cloudRanges(
  context: CausalContext,
): Generator<readonly [replica: string, from: number, to: number]> {
  for (const [replica, ranges] of context.cloud) for (const [from, to] of ranges) yield [replica, from, to];
}

/** The next dot of `replica`: one past everything of it the context has seen. */
export function nextDot(context: CausalContext, replica: string): Dot {
  if (isFolded(replica, context.horizons)) throw new ReplicaRetiredError();
  const ranges = context.cloud.get(replica);
  const last = ranges?.[ranges.length - 1];
  const max = Math.max(context.vv.get(replica) ?? 0, last?.[1] ?? 0);
  if (max >= MAX_COUNT) throw new CrdtLimitError(`a dot counter may not pass ${MAX_COUNT}`);
  return [replica, max + 1];
}

/** A context holding exactly these dots (as a delta carries them), compacted. */
export function contextOf(dots: Iterable<Dot>): CausalContext {
  const cloud = new Map<string, DotRange[]>();
  for (const [replica, counter] of dots) {
    const ranges = cloud.get(replica);
    if (ranges) ranges.push([counter, counter]);
    else cloud.set(replica, [[counter, counter]]);
  }
  return compact(new Map(), cloud, NO_HORIZONS);
}

/** Everything either context has seen. */
export function union(a: CausalContext, b: CausalContext): CausalContext {
  if (b.vv.size === 0 && b.cloud.size === 0 && b.horizons.size === 0) return a;
  if (a.vv.size === 0 && a.cloud.size === 0 && a.horizons.size === 0) return b;
  const horizons = joinMaps(a.horizons, b.horizons, (x, y) => x > y);
  const vv = new Map(a.vv);
  for (const [replica, counter] of b.vv) if (counter > (vv.get(replica) ?? 0)) vv.set(replica, counter);
  const cloud = new Map(a.cloud);
  for (const [replica, ranges] of b.cloud) {
    const mine = cloud.get(replica);
    cloud.set(replica, mine === undefined ? ranges : mergeRanges(mine, ranges));
  }
  return settle(vv, cloud, horizons);
}

/** The union of two sorted, disjoint, non-adjacent range lists, in the same form: one linear pass. */
function mergeRanges(a: readonly DotRange[], b: readonly DotRange[]): readonly DotRange[] {
  if (b.length === 0 || a === b) return a;
  if (a.length === 0) return b;
  const merged: DotRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const fromA = a[i];
    const fromB = b[j];
    let next: DotRange;
    if (fromB === undefined || (fromA !== undefined && fromA[0] <= fromB[0])) {
      next = fromA as DotRange;
      i++;
    } else {
      next = fromB;
      j++;
    }
    const last = merged[merged.length - 1];
    if (last !== undefined && next[0] <= last[1] + 1) {
      if (next[1] > last[1]) merged[merged.length - 1] = [last[0], next[1]];
    } else merged.push(next);
  }
  return merged;
}

/** Sorts `ranges` and joins those that overlap or touch. */
function normalize(ranges: readonly DotRange[]): readonly DotRange[] {
  let ordered = true;
  for (let i = 1; i < ranges.length && ordered; i++)
    ordered = (ranges[i] as DotRange)[0] > (ranges[i - 1] as DotRange)[1] + 1;
  if (ordered) return ranges;
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const joined: DotRange[] = [];
  for (const range of sorted) {
    const last = joined[joined.length - 1];
    if (last === undefined || range[0] > last[1] + 1) joined.push(range);
    else if (range[1] > last[1]) joined[joined.length - 1] = [last[0], range[1]];
  }
  return joined;
}

/**
 * Folds cloud ranges that close a gap into the version vector, drops what it already covers, and drops
 * what the horizons cover. The cloud's ranges of a replica may come in every order and overlap.
 */
export function compact(
  vv: Map<string, number>,
  cloud: Map<string, readonly DotRange[]>,
  horizons: ReadonlyMap<string, number>,
): CausalContext {
  for (const [replica, ranges] of cloud) cloud.set(replica, normalize(ranges));
  return settle(vv, cloud, horizons);
}

/** `compact` for a cloud already in form (each replica's ranges sorted, disjoint, non-adjacent). */
function settle(
  vv: Map<string, number>,
  cloud: Map<string, readonly DotRange[]>,
  horizons: ReadonlyMap<string, number>,
): CausalContext {
  if (horizons.size > 0) {
    for (const replica of [...vv.keys()]) if (isFolded(replica, horizons)) vv.delete(replica);
  }
  if (cloud.size === 0) return { vv, cloud: NO_CLOUD, horizons };
  for (const [replica, ranges] of cloud) {
    if (ranges.length === 0 || isFolded(replica, horizons)) {
      cloud.delete(replica);
      continue;
    }
    let top = vv.get(replica) ?? 0;
    const first = ranges[0] as DotRange;
    if (first[0] > top + 1) continue; // the common case: the gap before the cloud is still open
    let i = 0;
    // ranges the vector covers go; the one that meets it folds in (the next cannot: ranges never touch)
    while (i < ranges.length && (ranges[i] as DotRange)[1] <= top) i++;
    const meeting = ranges[i];
    if (meeting !== undefined && meeting[0] <= top + 1) {
      top = meeting[1];
      i++;
    }
    if (top > 0) vv.set(replica, top);
    if (i === ranges.length) cloud.delete(replica);
    else cloud.set(replica, ranges.slice(i));
  }
  return { vv, cloud: cloud.size === 0 ? NO_CLOUD : cloud, horizons };
}

/** Every replica of `group` with an epoch before `beforeMs` counts as seen in full (see `orsetFold`). */
export function foldContext(context: CausalContext, group: string, beforeMs: number): CausalContext {
  if ((context.horizons.get(group) ?? -1) >= beforeMs) return context;
  const covers = (replica: string) => {
    const lineage = lineageOf(replica);
    return lineage !== undefined && lineage.group === group && lineage.epochMs < beforeMs;
  };
  // A region's own dots sit in its version vector (it stores each as it issues it): checking the vector
  // finds what to fold; the cloud is swept with it.
  if (![...context.vv.keys()].some(covers)) return context;
  const horizons = new Map(context.horizons);
  horizons.set(group, beforeMs);
  return settle(new Map(context.vv), new Map(context.cloud), horizons);
}

export function compareDots(a: Dot, b: Dot): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}
