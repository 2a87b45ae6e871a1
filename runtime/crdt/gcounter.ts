import { CrdtLimitError, MAX_COUNT } from './limits';
import { isFolded, lineageOf, ReplicaRetiredError } from './lineage';
import { joinMaps } from './maps';

/** The total of a group's folded replicas: every replica of the group with an epoch before `beforeMs`. */
export interface CounterFold {
  readonly beforeMs: number;
  readonly total: number;
}

/**
 * A grow-only counter: one non-decreasing count per replica (positive counts only), plus per group the
 * folded total of its old replicas; the value is the sum of both. Keyed by `Map`s, so every replica id is safe.
 */
export interface GCounter {
  readonly counts: ReadonlyMap<string, number>;
  readonly folds: ReadonlyMap<string, CounterFold>;
}

const NO_FOLDS: ReadonlyMap<string, CounterFold> = new Map();

export const emptyGCounter = (): GCounter => ({ counts: new Map(), folds: NO_FOLDS });

/** The sum of every count and fold (larger than `MAX_COUNT` only for a merge the caller must refuse). */
export function gcounterValue(counter: GCounter): number {
  let sum = 0;
  for (const n of counter.counts.values()) sum += n;
  for (const fold of counter.folds.values()) sum += fold.total;
  return sum;
}

const horizonsOf = (folds: ReadonlyMap<string, CounterFold>): ReadonlyMap<string, number> =>
  new Map([...folds].map(([group, fold]) => [group, fold.beforeMs]));

/** The delta of adding `by` (a non-negative safe integer) at `replica`: that replica's new count. */
export function gcounterIncrement(counter: GCounter, replica: string, by: number): GCounter {
  if (!Number.isSafeInteger(by) || by < 0)
    throw new CrdtLimitError('an increment must be a non-negative safe integer');
  if (isFolded(replica, horizonsOf(counter.folds))) throw new ReplicaRetiredError();
  if (gcounterValue(counter) + by > MAX_COUNT)
    throw new CrdtLimitError(`a counter's total may not pass ${MAX_COUNT}`);
  const next = (counter.counts.get(replica) ?? 0) + by;
  return { counts: new Map(next > 0 ? [[replica, next]] : []), folds: NO_FOLDS };
}

/** Per group, the fold that covers more; between equal horizons, the larger total. */
const mergeFolds = (a: ReadonlyMap<string, CounterFold>, b: ReadonlyMap<string, CounterFold>) =>
  joinMaps(a, b, (x, y) => x.beforeMs > y.beforeMs || (x.beforeMs === y.beforeMs && x.total > y.total));

/**
 * Pointwise maximum of the counts; per group the fold that covers more (the later `beforeMs`), whose total
 * includes the counts it covers, which are dropped. Commutative, associative, idempotent.
 */
export function gcounterMerge(a: GCounter, b: GCounter): GCounter {
  if (b.counts.size === 0 && b.folds.size === 0) return a;
  if (a.counts.size === 0 && a.folds.size === 0) return b;
  const folds = mergeFolds(a.folds, b.folds);
  const counts = new Map(a.counts);
  for (const [replica, n] of b.counts) if (n > (counts.get(replica) ?? 0)) counts.set(replica, n);
  if (folds.size > 0) {
    const horizons = horizonsOf(folds);
    for (const replica of [...counts.keys()]) if (isFolded(replica, horizons)) counts.delete(replica);
  }
  return { counts, folds };
}

/**
 * Folds the counts of `group`'s replicas with epochs before `beforeMs` into the group's total. Only the
 * group's own region folds, and only once its state holds every count those replicas issued (see the sync
 * service); a fold that covers nothing new returns the counter unchanged.
 */
export function gcounterFold(counter: GCounter, group: string, beforeMs: number): GCounter {
  const current = counter.folds.get(group);
  if (current && current.beforeMs >= beforeMs) return counter;
  let folded = 0;
  const counts = new Map<string, number>();
  for (const [replica, n] of counter.counts) {
    const lineage = lineageOf(replica);
    if (lineage && lineage.group === group && lineage.epochMs < beforeMs) folded += n;
    else counts.set(replica, n);
  }
  if (folded === 0) return counter;
  const folds = new Map(counter.folds);
  folds.set(group, { beforeMs, total: (current?.total ?? 0) + folded });
  return { counts, folds };
}
