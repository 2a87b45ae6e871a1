/**
 * The token bucket of one entity and resource in one region, and the per-window counters the sync reads.
 * Pure: the limiter reads an item, computes here, and writes back conditionally. Amounts in milli-units.
 */

/** Windows of demand an item keeps: the sync's fallback reads up to four windows back (see enforcement.ts). */
export const DEMAND_WINDOWS = 5;
/** Windows of consumption an item keeps: the current one and the last complete one. */
export const CONSUMPTION_WINDOWS = 2;

export interface BucketState {
  /** Tokens in the bucket, milli-units. */
  readonly tokens: number;
  /** Time (ms) up to which refill has been credited. */
  readonly refilledAt: number;
  /** The share (milli-units per second) in force at the last refill; absent on buckets written before it. */
  readonly rate?: number;
}

/** Demand and consumption by window: `demand[k]` is window `window - k`'s. */
export interface WindowCounters {
  readonly window: number;
  readonly demand: readonly number[];
  readonly consumed: readonly number[];
}

/** A bucket's capacity for a share (milli-units per second): `burstSec` seconds of it, never past 2^53. */
export function capacityOf(share: number, burstSec: number): number {
  return Math.min(Number.MAX_SAFE_INTEGER, share * burstSec);
}

/**
 * The bucket at `now` under `share` (milli-units per second) and `capacity`: refilled with the whole
 * milli-units the share accrues between the last refill and `now` on a clock that starts at 0 (so the
 * fractions carry from one refill to the next, and refilling often never adds more than refilling once),
 * never above `capacity`: a share that shrank drops the tokens above its new capacity at once.
 */
export function refill(state: BucketState, share: number, capacity: number, now: number): BucketState {
  if (now <= state.refilledAt)
    return { tokens: Math.min(state.tokens, capacity), refilledAt: state.refilledAt, rate: share };
  // The time since the last refill is credited at the smaller of the shares then and now: a share that grew
  // in between never pays for time before it grew.
  const credited = Math.min(share, state.rate ?? share);
  if (credited <= 0) return { tokens: Math.min(state.tokens, capacity), refilledAt: now, rate: share };
  const rate = BigInt(credited);
  const added = (BigInt(now) * rate) / 1000n - (BigInt(state.refilledAt) * rate) / 1000n;
  if (added >= BigInt(Math.max(0, capacity - state.tokens)))
    return { tokens: capacity, refilledAt: now, rate: share };
  return { tokens: state.tokens + Number(added), refilledAt: now, rate: share };
}

/** A full bucket: what an entity's first request in a region finds. */
export function fullBucket(capacity: number, now: number, share?: number): BucketState {
  return { tokens: capacity, refilledAt: now, ...(share !== undefined ? { rate: share } : {}) };
}

/** The amount counted for `window` (0 when the counters do not reach it). */
export function countIn(values: readonly number[], countersWindow: number, window: number): number {
  const age = countersWindow - window;
  return age >= 0 && age < values.length ? (values[age] ?? 0) : 0;
}

/** Counters moved on to `window` (earlier windows shift back; the oldest fall off), then `add`ed to. */
export function addToWindow(
  counters: WindowCounters | undefined,
  window: number,
  add: { readonly demand: number; readonly consumed: number },
): WindowCounters {
  // A clock behind the counters' window adds to their newest window: a window once complete never grows.
  const at = counters ? Math.max(window, counters.window) : window;
  const shifted = (values: readonly number[] | undefined, length: number) =>
    Array.from({ length }, (_, k) => (counters && values ? countIn(values, counters.window, at - k) : 0));
  const demand = shifted(counters?.demand, DEMAND_WINDOWS);
  const consumed = shifted(counters?.consumed, CONSUMPTION_WINDOWS);
  demand[0] = Math.min(Number.MAX_SAFE_INTEGER, (demand[0] ?? 0) + add.demand);
  consumed[0] = Math.min(Number.MAX_SAFE_INTEGER, (consumed[0] ?? 0) + add.consumed);
  return { window: at, demand, consumed };
}
