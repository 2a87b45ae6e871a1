import { CrdtLimitError, MAX_COUNT } from './limits';
import { isFolded, lineageOf, ReplicaRetiredError } from './lineage';
import { joinMaps } from './maps';

/** A dot: the `counter`-th event of `replica`. */
export type Dot = readonly [replica: string, counter: number];

/**
 * What a replica has seen: a version vector (every dot of a replica up to a counter), a dot cloud (dots
 * seen beyond a gap, e.g. a delta that arrived before an earlier one) and, per group, a horizon: every dot
 * of the group's replicas with an epoch before it (folded replicas). Kept compact: a dot sits in the cloud
 * only while the gap before it is open, and nothing a horizon covers is listed.
 */
export interface CausalContext {
  readonly vv: ReadonlyMap<string, number>;
  readonly cloud: ReadonlySet<string>;
  readonly horizons: ReadonlyMap<string, number>;
}

const SEPARATOR = '\u0000';
export const dotKey = (dot: Dot): string => `${dot[0]}${SEPARATOR}${dot[1]}`;
export function dotFromKey(key: string): Dot {
  const at = key.lastIndexOf(SEPARATOR);
  return [key.slice(0, at), Number(key.slice(at + 1))];
}

const NO_HORIZONS: ReadonlyMap<string, number> = new Map();
export const EMPTY_CONTEXT: CausalContext = { vv: new Map(), cloud: new Set(), horizons: NO_HORIZONS };

export function contains(context: CausalContext, dot: Dot): boolean {
  if ((context.vv.get(dot[0]) ?? 0) >= dot[1]) return true;
  if (context.cloud.size > 0 && context.cloud.has(dotKey(dot))) return true;
  return isFolded(dot[0], context.horizons);
}

/** The next dot of `replica`: one past everything of it the context has seen. */
export function nextDot(context: CausalContext, replica: string): Dot {
  if (isFolded(replica, context.horizons)) throw new ReplicaRetiredError();
  let max = context.vv.get(replica) ?? 0;
  for (const key of context.cloud) {
    const [r, counter] = dotFromKey(key);
    if (r === replica && counter > max) max = counter;
  }
  if (max >= MAX_COUNT) throw new CrdtLimitError(`a dot counter may not pass ${MAX_COUNT}`);
  return [replica, max + 1];
}

/** A context holding exactly these dots (as a delta carries them), compacted. */
export function contextOf(dots: Iterable<Dot>): CausalContext {
  return compact(new Map(), new Set([...dots].map(dotKey)), NO_HORIZONS);
}

/** Everything either context has seen. */
export function union(a: CausalContext, b: CausalContext): CausalContext {
  if (b.vv.size === 0 && b.cloud.size === 0 && b.horizons.size === 0) return a;
  const horizons = joinMaps(a.horizons, b.horizons, (x, y) => x > y);
  const vv = new Map(a.vv);
  for (const [replica, counter] of b.vv) if (counter > (vv.get(replica) ?? 0)) vv.set(replica, counter);
  const cloud = new Set(a.cloud);
  for (const key of b.cloud) cloud.add(key);
  return compact(vv, cloud, horizons);
}

/**
 * Folds cloud dots that close a gap into the version vector, drops those it already covers, and drops what
 * the horizons cover.
 */
export function compact(
  vv: Map<string, number>,
  cloud: Set<string>,
  horizons: ReadonlyMap<string, number>,
): CausalContext {
  if (horizons.size > 0) {
    for (const replica of [...vv.keys()]) if (isFolded(replica, horizons)) vv.delete(replica);
  }
  if (cloud.size === 0) return { vv, cloud, horizons };
  const byReplica = new Map<string, number[]>();
  for (const key of cloud) {
    const [replica, counter] = dotFromKey(key);
    if (isFolded(replica, horizons)) continue;
    const list = byReplica.get(replica);
    if (list) list.push(counter);
    else byReplica.set(replica, [counter]);
  }
  const remaining = new Set<string>();
  for (const [replica, counters] of byReplica) {
    counters.sort((x, y) => x - y);
    let top = vv.get(replica) ?? 0;
    for (const counter of counters) {
      if (counter === top + 1) top = counter;
      else if (counter > top) remaining.add(dotKey([replica, counter]));
    }
    if (top > 0) vv.set(replica, top);
  }
  return { vv, cloud: remaining, horizons };
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
  return compact(new Map(context.vv), new Set(context.cloud), horizons);
}

export function compareDots(a: Dot, b: Dot): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}
