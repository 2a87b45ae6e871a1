import { PermanentError } from '../lib/failures';
import { MAX_LIMIT, MAX_REGIONS, MAX_WEIGHT } from './config';

/**
 * Weighted max-min fair allocation (water-filling) of an integer global limit across regions. Every region
 * runs it on its own view of the others' demands and enforces only its own share, so the shares the regions
 * enforce must never sum past the limit whatever mix of views they hold. That rests on monotonicity: a
 * region's share never grows when another region's demand grows (a view that sees a peer as 'unknown' sees
 * it at least as large as it is), never shrinks when its own grows, and with the true demands the shares sum
 * to exactly the limit. So the sum over regions of what each computes from its own view is at most the sum
 * of the true allocation: the limit.
 *
 * The definition is discrete, so it is exact and monotone (largest-remainder rounding is not):
 *
 * 1. Demands are capped at the limit ('unknown' is the limit). Region i first gets
 *    `base_i = min(demand_i, floor_i)`: a floor is a guaranteed minimum, not an addition.
 * 2. Region i owns the slots `k = base_i + 1 .. demand_i`, slot k with key `k / weight_i`. The remaining
 *    `limit - sum(base)` units go to the smallest keys overall, ties by region name (`<`): the same as
 *    handing the units out one at a time to the region with the smallest `(allocation_i + 1) / weight_i`
 *    among those below their demand. In continuous terms region i gets
 *    `min(demand_i, max(floor_i, L x weight_i))` at the level L where the allocations sum to the limit.
 * 3. When every demand is known and they sum below the limit, every region gets its demand and the slack is
 *    split over all regions by the same divisor rule applied to the slack alone (slot k of region i has key
 *    `k / weight_i`, ties by name). With at least one region the result always sums to exactly the limit.
 *
 * The units are not handed out one by one (limits reach 10^12): the exact level L = p/q is found among the
 * slots' breakpoints with integer arithmetic (every product stays below 2^53 because limit <= MAX_LIMIT and
 * weights <= MAX_WEIGHT), every region takes its slots with key <= L, and the fewer than n units left go one
 * at a time to the next keys in (key, name) order.
 */

/** One region's input to `allocate`. */
export interface RegionDemand {
  /** 1-64 of a-z 0-9 -; each region once. */
  readonly region: string;
  /** What the region would use (a non-negative integer; above the limit counts as the limit), or 'unknown' (unbounded). */
  readonly demand: number | 'unknown';
  /** Relative share, an integer 1-1,000 (default 1). */
  readonly weight?: number;
  /** Guaranteed minimum (a non-negative integer, default 0): a minimum, not an addition. */
  readonly floor?: number;
}

/** An `allocate` input that breaks a rule; `field` is its path, `rule` what was expected. Never quotes a value. */
export class AllocationError extends PermanentError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('quota-allocation', `${field}: ${rule}`);
    this.name = 'AllocationError';
    this.message = `${field}: ${rule}`;
  }
}

const MAX_REGION_CHARS = 64;

/**
 * Per-call working arrays, sorted by region name. Reused between calls (the function is called once per
 * entity and resource), so a call allocates only its result; a re-entrant call (a getter on an input that
 * calls `allocate`) gets its own.
 */
class Scratch {
  readonly names = new Array<string>(MAX_REGIONS).fill('');
  /** Index in the input list (for the duplicate message). */
  readonly at = new Int32Array(MAX_REGIONS);
  readonly weight = new Float64Array(MAX_REGIONS);
  /** Demand capped at the limit ('unknown' = the limit). */
  readonly demand = new Float64Array(MAX_REGIONS);
  /** min(demand, floor). */
  readonly base = new Float64Array(MAX_REGIONS);
  /** Allocation (or, in the slack phase, share of the slack). */
  readonly units = new Float64Array(MAX_REGIONS);
}

let spare: Scratch | undefined = new Scratch();

/**
 * Every region's share of `limit`: integers summing to exactly `limit` (for at least one region), in an
 * object without a prototype keyed by region. The same input in any order gives the same result; an empty
 * list gives {}. Throws an `AllocationError` naming the first bad field.
 */
export function allocate(limit: number, demands: readonly RegionDemand[]): Record<string, number> {
  const scratch = spare ?? new Scratch();
  spare = undefined;
  try {
    return compute(scratch, limit, demands);
  } finally {
    spare = scratch;
  }
}

function compute(s: Scratch, limit: number, demands: readonly RegionDemand[]): Record<string, number> {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0 || limit > MAX_LIMIT)
    throw new AllocationError('limit', `expected an integer from 0 to ${MAX_LIMIT}`);
  if (!Array.isArray(demands) || demands.length > MAX_REGIONS)
    throw new AllocationError('demands', `expected a list of at most ${MAX_REGIONS} regions`);

  const n = demands.length;
  const { names, at, weight, demand, base, units } = s;
  let floors = 0;
  for (let i = 0; i < n; i++) {
    const entry: unknown = demands[i];
    if (typeof entry !== 'object' || entry === null)
      throw new AllocationError(`demands[${i}]`, 'expected { region, demand, weight?, floor? }');
    const { region, demand: d, weight: w, floor: f } = entry as RegionDemand;
    if (typeof region !== 'string' || !isRegionName(region))
      throw new AllocationError(`demands[${i}].region`, 'expected 1-64 characters of a-z 0-9 -');
    // Insert in name order (the first i are sorted): binary search, which also finds a duplicate.
    let lo = 0;
    let hi = i;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (names[mid]! < region) lo = mid + 1;
      else hi = mid;
    }
    if (lo < i && names[lo] === region)
      throw new AllocationError(`demands[${i}].region`, `appears twice (first at demands[${at[lo]}])`);
    let capped: number;
    if (d === 'unknown') capped = limit;
    else if (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) capped = d < limit ? d : limit;
    else throw new AllocationError(`demands[${i}].demand`, "expected a non-negative integer or 'unknown'");
    let w1 = 1;
    if (w !== undefined) {
      if (typeof w !== 'number' || !Number.isSafeInteger(w) || w < 1 || w > MAX_WEIGHT)
        throw new AllocationError(`demands[${i}].weight`, `expected an integer from 1 to ${MAX_WEIGHT}`);
      w1 = w;
    }
    let f0 = 0;
    if (f !== undefined) {
      if (typeof f !== 'number' || !Number.isSafeInteger(f) || f < 0)
        throw new AllocationError(`demands[${i}].floor`, 'expected a non-negative integer');
      f0 = f;
    }
    floors += f0;
    for (let k = i; k > lo; k--) {
      names[k] = names[k - 1]!;
      at[k] = at[k - 1]!;
      weight[k] = weight[k - 1]!;
      demand[k] = demand[k - 1]!;
      base[k] = base[k - 1]!;
    }
    names[lo] = region;
    at[lo] = i;
    weight[lo] = w1;
    demand[lo] = capped;
    base[lo] = f0 < capped ? f0 : capped;
  }
  // Each floor is a safe integer and at most 32 are added: the sum is exact or far above MAX_LIMIT.
  if (floors > limit) throw new AllocationError('demands', 'floors summing above the limit');

  let total = 0;
  for (let i = 0; i < n; i++) total += demand[i]!;
  const out = Object.create(null) as Record<string, number>;
  if (n === 0) return out;

  if (total <= limit) {
    // Everyone gets their demand; the slack goes by weight to every region (divisor rule on the slack alone).
    const slack = limit - total;
    let weights = 0;
    for (let i = 0; i < n; i++) weights += weight[i]!;
    let given = 0;
    for (let i = 0; i < n; i++) given += units[i] = floorDiv(slack * weight[i]!, weights);
    handOut(s, n, slack - given, false);
    for (let i = 0; i < n; i++) out[names[i]!] = demand[i]! + units[i]!;
    return out;
  }

  // The level x = num/den of the largest breakpoint (base_i / w_i or demand_i / w_i) where the continuous
  // allocation F(x) = sum clamp(x w_i, base_i, demand_i) is at most the limit. F(0) = sum(base) <= limit, and
  // F at the largest breakpoint is the total demand > limit. Breakpoints at or below the best so far, or at
  // or above the smallest one known to overshoot, need no evaluation.
  let bestNum = 0;
  let bestDen = 1;
  let overNum = -1;
  let overDen = 1;
  for (let i = 0; i < n; i++) {
    const w = weight[i]!;
    for (let edge = 0; edge < 2; edge++) {
      const num = edge === 0 ? base[i]! : demand[i]!;
      if (num * bestDen <= bestNum * w) continue;
      if (overNum >= 0 && num * overDen >= overNum * w) continue;
      if (fitsAt(s, n, limit, num, w)) {
        bestNum = num;
        bestDen = w;
      } else {
        overNum = num;
        overDen = w;
      }
    }
  }

  // Between that breakpoint and the next, the regions fixed at their base or demand and the active ones do not
  // change (and some region is active, or F could not pass the limit there): the exact level is p / q.
  let p = limit;
  let q = 0;
  for (let i = 0; i < n; i++) {
    const v = bestNum * weight[i]!;
    if (v < base[i]! * bestDen) p -= base[i]!;
    else if (v >= demand[i]! * bestDen) p -= demand[i]!;
    else q += weight[i]!;
  }
  // Every region takes its slots with key <= p/q; fewer than n units are left.
  let given = 0;
  for (let i = 0; i < n; i++) {
    const level = floorDiv(p * weight[i]!, q);
    const lower = base[i]!;
    const upper = demand[i]!;
    given += units[i] = level < lower ? lower : level > upper ? upper : level;
  }
  handOut(s, n, limit - given, true);
  for (let i = 0; i < n; i++) out[names[i]!] = units[i]!;
  return out;
}

/** A non-empty string of at most 64 of a-z 0-9 -. */
function isRegionName(region: string): boolean {
  const length = region.length;
  if (length < 1 || length > MAX_REGION_CHARS) return false;
  for (let i = 0; i < length; i++) {
    const c = region.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45)) return false;
  }
  return true;
}

/** floor(a / b) for integers 0 <= a < 2^53, b > 0 (the float quotient can round up to the next integer). */
function floorDiv(a: number, b: number): number {
  const quotient = Math.floor(a / b);
  return quotient * b > a ? quotient - 1 : quotient;
}

/** Whether F(num / den) = sum clamp(num/den x w_i, base_i, demand_i) <= limit, exactly. */
function fitsAt(s: Scratch, n: number, limit: number, num: number, den: number): boolean {
  const { weight, base, demand } = s;
  let whole = 0;
  let rest = 0; // sum of the fractional parts, times den
  for (let i = 0; i < n; i++) {
    const v = num * weight[i]!;
    if (v <= base[i]! * den) whole += base[i]!;
    else if (v >= demand[i]! * den) whole += demand[i]!;
    else {
      const level = floorDiv(v, den);
      whole += level;
      rest += v - level * den;
    }
    if (whole > limit) return false;
  }
  const room = limit - whole;
  // rest < n x den, so room >= n always fits (and keeps room x den small otherwise).
  return room >= n || rest <= room * den;
}

/**
 * Hands out `count` units one at a time, each to the region with the smallest `(units_i + 1) / weight_i`
 * (ties: the first by name), among those below their demand when `capped`.
 */
function handOut(s: Scratch, n: number, count: number, capped: boolean): void {
  const { weight, demand, units } = s;
  for (; count > 0; count--) {
    let pick = -1;
    for (let i = 0; i < n; i++) {
      if (capped && units[i]! >= demand[i]!) continue;
      if (pick < 0 || (units[i]! + 1) * weight[pick]! < (units[pick]! + 1) * weight[i]!) pick = i;
    }
    units[pick] = units[pick]! + 1;
  }
}
