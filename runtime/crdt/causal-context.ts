/** A dot: the `counter`-th event of `replica`. */
export type Dot = readonly [replica: string, counter: number];

/**
 * What a replica has seen: a version vector (every dot of a replica up to a counter) plus a dot cloud
 * (dots seen beyond a gap, e.g. a delta that arrived before an earlier one). Kept compact: a dot sits in
 * the cloud only while the gap before it is open.
 */
export interface CausalContext {
  readonly vv: ReadonlyMap<string, number>;
  readonly cloud: ReadonlySet<string>;
}

const SEPARATOR = '\u0000';
export const dotKey = (dot: Dot): string => `${dot[0]}${SEPARATOR}${dot[1]}`;
export function dotFromKey(key: string): Dot {
  const at = key.lastIndexOf(SEPARATOR);
  return [key.slice(0, at), Number(key.slice(at + 1))];
}

export const EMPTY_CONTEXT: CausalContext = { vv: new Map(), cloud: new Set() };

export function contains(context: CausalContext, dot: Dot): boolean {
  if ((context.vv.get(dot[0]) ?? 0) >= dot[1]) return true;
  return context.cloud.size > 0 && context.cloud.has(dotKey(dot));
}

/** The next dot of `replica`: one past everything of it the context has seen. */
export function nextDot(context: CausalContext, replica: string): Dot {
  let max = context.vv.get(replica) ?? 0;
  for (const key of context.cloud) {
    const [r, counter] = dotFromKey(key);
    if (r === replica && counter > max) max = counter;
  }
  return [replica, max + 1];
}

/** A context holding exactly these dots (as a delta carries them), compacted. */
export function contextOf(dots: Iterable<Dot>): CausalContext {
  return compact(new Map(), new Set([...dots].map(dotKey)));
}

/** Everything either context has seen. */
export function union(a: CausalContext, b: CausalContext): CausalContext {
  if (b.vv.size === 0 && b.cloud.size === 0) return a;
  const vv = new Map(a.vv);
  for (const [replica, counter] of b.vv) if (counter > (vv.get(replica) ?? 0)) vv.set(replica, counter);
  const cloud = new Set(a.cloud);
  for (const key of b.cloud) cloud.add(key);
  return compact(vv, cloud);
}

/** Folds cloud dots that close a gap into the version vector and drops those it already covers. */
export function compact(vv: Map<string, number>, cloud: Set<string>): CausalContext {
  if (cloud.size === 0) return { vv, cloud };
  const byReplica = new Map<string, number[]>();
  for (const key of cloud) {
    const [replica, counter] = dotFromKey(key);
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
  return { vv, cloud: remaining };
}

export function compareDots(a: Dot, b: Dot): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}
