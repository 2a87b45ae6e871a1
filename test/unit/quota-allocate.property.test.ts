import fc from 'fast-check';
import { PermanentError } from '../../runtime/lib/failures';
import { allocate, AllocationError, type RegionDemand } from '../../runtime/quota/allocate';
import { MAX_LIMIT, MAX_REGIONS } from '../../runtime/quota/config';

const RUNS = { numRuns: 1000 };

interface Scenario {
  readonly limit: number;
  readonly demands: readonly RegionDemand[];
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries

const nameArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'eu-west-1', 'us-east-1') },
  { weight: 1, arbitrary: fc.constantFrom('constructor', 'to-string', 'has-own-property', '0', '-', 'a-b') },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,64}$/) },
);

const limitArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 50 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 10_000 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: MAX_LIMIT }) },
  { weight: 1, arbitrary: fc.constantFrom(MAX_LIMIT, MAX_LIMIT - 1) },
);

const demandArb = (limit: number): fc.Arbitrary<number | 'unknown'> =>
  fc.oneof(
    fc.constant('unknown' as const),
    fc.constant(0),
    fc.integer({ min: 0, max: 10 }),
    fc.integer({ min: 0, max: limit }),
    fc.integer({ min: Math.max(0, limit - 3), max: limit + 3 }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  );

const weightArb = fc.option(
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 1000 }) },
    { weight: 1, arbitrary: fc.constantFrom(999, 1000) },
  ),
  { nil: undefined, freq: 2 },
);

const floorArb = (limit: number): fc.Arbitrary<number | undefined> =>
  fc.option(fc.oneof(fc.integer({ min: 0, max: Math.min(limit, 10) }), fc.integer({ min: 0, max: limit })), {
    nil: undefined,
    freq: 2,
  });

interface Row {
  readonly region: string;
  readonly demand: number | 'unknown';
  readonly weight: number | undefined;
  readonly floor: number | undefined;
}

/** Rows as inputs: floors trimmed so they sum to at most the limit; absent weights and floors left out. */
function toDemands(limit: number, rows: readonly Row[]): RegionDemand[] {
  let used = 0;
  return rows.map((row) => {
    const floor = row.floor === undefined ? undefined : Math.min(row.floor, limit - used);
    used += floor ?? 0;
    return {
      region: row.region,
      demand: row.demand,
      ...(row.weight === undefined ? {} : { weight: row.weight }),
      ...(floor === undefined ? {} : { floor }),
    };
  });
}

const scenarioArb: fc.Arbitrary<Scenario> = limitArb.chain((limit) =>
  fc
    .uniqueArray(
      fc.record({ region: nameArb, demand: demandArb(limit), weight: weightArb, floor: floorArb(limit) }),
      { minLength: 1, maxLength: 6, selector: (row) => row.region },
    )
    .map((rows) => ({ limit, demands: toDemands(limit, rows) })),
);

const smallScenarioArb: fc.Arbitrary<Scenario> = fc.integer({ min: 0, max: 60 }).chain((limit) =>
  fc
    .uniqueArray(
      fc.record({
        region: nameArb,
        demand: fc.oneof(
          fc.constant('unknown' as const),
          fc.integer({ min: 0, max: 12 }),
          fc.integer({ min: 0, max: 70 }),
        ),
        weight: fc.option(fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1000 })), {
          nil: undefined,
        }),
        floor: floorArb(limit),
      }),
      { minLength: 1, maxLength: 6, selector: (row) => row.region },
    )
    .map((rows) => ({ limit, demands: toDemands(limit, rows) })),
);

// ---------------------------------------------------------------------------------------------------------
// Helpers and references

const capped = (limit: number, demand: number | 'unknown'): number =>
  demand === 'unknown' ? limit : Math.min(demand, limit);

const byName = (a: { region: string }, b: { region: string }): number =>
  a.region < b.region ? -1 : a.region > b.region ? 1 : 0;

/** The specification taken literally: one unit at a time (both phases). Only for small limits. */
function naiveAllocate(limit: number, demands: readonly RegionDemand[]): Record<string, number> {
  const rows = [...demands].sort(byName).map((r) => {
    const d = capped(limit, r.demand);
    return { region: r.region, d, w: r.weight ?? 1, base: Math.min(d, r.floor ?? 0) };
  });
  const alloc = rows.map((r) => r.base);
  let left = limit - alloc.reduce((sum, a) => sum + a, 0);
  for (; left > 0; left--) {
    let pick = -1;
    rows.forEach((r, i) => {
      if (alloc[i]! >= r.d) return;
      if (pick < 0 || (alloc[i]! + 1) * rows[pick]!.w < (alloc[pick]! + 1) * r.w) pick = i;
    });
    if (pick < 0) break;
    alloc[pick]!++;
  }
  const slack = rows.map(() => 0);
  for (; left > 0; left--) {
    let pick = 0;
    rows.forEach((r, i) => {
      if ((slack[i]! + 1) * rows[pick]!.w < (slack[pick]! + 1) * r.w) pick = i;
    });
    slack[pick]!++;
  }
  return Object.fromEntries(rows.map((r, i) => [r.region, alloc[i]! + slack[i]!]));
}

/**
 * An independent exact reference for any limit (BigInt): the R-th smallest slot key t* found by a binary
 * search per region, every slot with key < t* taken, the rest at key t* in name order.
 */
function smallestSlots(sets: readonly { w: bigint; lo: bigint; hi: bigint }[], units: bigint): bigint[] {
  const counts = sets.map(() => 0n);
  if (units === 0n) return counts;
  const clamp = (v: bigint, lo: bigint, hi: bigint): bigint => (v < lo ? lo : v > hi ? hi : v);
  const atMost = (a: bigint, b: bigint): bigint =>
    sets.reduce((sum, s) => sum + clamp((a * s.w) / b, s.lo, s.hi) - s.lo, 0n);
  let best: { a: bigint; b: bigint } | undefined;
  for (const s of sets) {
    if (s.hi <= s.lo || atMost(s.hi, s.w) < units) continue;
    let lo = s.lo + 1n;
    let hi = s.hi;
    while (lo < hi) {
      const mid = (lo + hi) / 2n;
      if (atMost(mid, s.w) >= units) hi = mid;
      else lo = mid + 1n;
    }
    if (best === undefined || lo * best.b < best.a * s.w) best = { a: lo, b: s.w };
  }
  if (best === undefined) throw new Error('fewer slots than units');
  const { a, b } = best;
  let left = units;
  sets.forEach((s, i) => {
    const ceil = (a * s.w + b - 1n) / b;
    counts[i] = clamp(ceil - 1n, s.lo, s.hi) - s.lo;
    left -= counts[i]!;
  });
  sets.forEach((s, i) => {
    if (left > 0n && (a * s.w) % b === 0n) {
      const k = (a * s.w) / b;
      if (k > s.lo && k <= s.hi) {
        counts[i]!++;
        left--;
      }
    }
  });
  if (left !== 0n) throw new Error('reference: units left over');
  return counts;
}

function referenceAllocate(limit: number, demands: readonly RegionDemand[]): Record<string, number> {
  const rows = [...demands].sort(byName).map((r) => {
    const d = BigInt(capped(limit, r.demand));
    const floor = BigInt(r.floor ?? 0);
    return { region: r.region, d, w: BigInt(r.weight ?? 1), base: d < floor ? d : floor };
  });
  const L = BigInt(limit);
  const total = rows.reduce((sum, r) => sum + r.d, 0n);
  if (total <= L) {
    const shares = smallestSlots(
      rows.map((r) => ({ w: r.w, lo: 0n, hi: L - total })),
      L - total,
    );
    return Object.fromEntries(rows.map((r, i) => [r.region, Number(r.d + shares[i]!)]));
  }
  const bases = rows.reduce((sum, r) => sum + r.base, 0n);
  const counts = smallestSlots(
    rows.map((r) => ({ w: r.w, lo: r.base, hi: r.d })),
    L - bases,
  );
  return Object.fromEntries(rows.map((r, i) => [r.region, Number(r.base + counts[i]!)]));
}

const own = (object: object, key: string): number | undefined =>
  Object.prototype.hasOwnProperty.call(object, key) ? (object as Record<string, number>)[key] : undefined;

const withDemand = (
  demands: readonly RegionDemand[],
  index: number,
  demand: number | 'unknown',
): RegionDemand[] => demands.map((d, i) => (i === index ? { ...d, demand } : d));

function errorOf(run: () => unknown): AllocationError {
  try {
    run();
  } catch (error) {
    if (error instanceof AllocationError) return error;
    throw error;
  }
  throw new Error('expected an AllocationError');
}

// ---------------------------------------------------------------------------------------------------------
// Properties

describe('allocate: properties', () => {
  it('sums to exactly the limit, in non-negative safe integers, keyed by exactly the input regions', () => {
    fc.assert(
      fc.property(scenarioArb, ({ limit, demands }) => {
        const out = allocate(limit, demands);
        expect(Object.getPrototypeOf(out)).toBeNull();
        expect(Object.keys(out).sort()).toEqual(demands.map((d) => d.region).sort());
        let sum = 0;
        for (const d of demands) {
          const share = own(out, d.region);
          expect(Number.isSafeInteger(share)).toBe(true);
          expect(share).toBeGreaterThanOrEqual(0);
          sum += share!;
        }
        expect(sum).toBe(limit);
      }),
      RUNS,
    );
  });

  it('does not depend on the order of the input', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain((s) =>
          fc
            .shuffledSubarray([...s.demands], { minLength: s.demands.length, maxLength: s.demands.length })
            .map((shuffled) => ({ ...s, shuffled })),
        ),
        ({ limit, demands, shuffled }) => {
          const out = allocate(limit, demands);
          expect(allocate(limit, shuffled)).toEqual(out);
          expect(allocate(limit, [...demands].reverse())).toEqual(out);
        },
      ),
      RUNS,
    );
  });

  it('gives every region at least min(demand, floor) and min(demand, its weighted share of limit - floors)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ limit, demands }) => {
        const out = allocate(limit, demands);
        const floors = demands.reduce((sum, d) => sum + (d.floor ?? 0), 0);
        const weights = demands.reduce((sum, d) => sum + (d.weight ?? 1), 0);
        for (const d of demands) {
          const demand = capped(limit, d.demand);
          const share = Number((BigInt(limit - floors) * BigInt(d.weight ?? 1)) / BigInt(weights));
          expect(out[d.region]).toBeGreaterThanOrEqual(Math.min(demand, d.floor ?? 0));
          expect(out[d.region]).toBeGreaterThanOrEqual(Math.min(demand, share));
        }
      }),
      RUNS,
    );
  });

  it("is monotone: a region's demand growing never shrinks its share and never grows another's", () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.nat(),
        fc.integer({ min: 0, max: 20 }),
        fc.oneof(
          fc.constant('unknown' as const),
          fc.integer({ min: 1, max: 5 }),
          fc.integer({ min: 1, max: 1000 }),
          fc.integer({ min: 1, max: MAX_LIMIT }),
        ),
        ({ limit, demands }, pick, fallback, growth) => {
          const j = pick % demands.length;
          const old = demands[j]!.demand;
          const from = old === 'unknown' ? fallback : old;
          const to = growth === 'unknown' ? growth : Math.min(from + growth, Number.MAX_SAFE_INTEGER);
          const before = allocate(limit, withDemand(demands, j, from));
          const after = allocate(limit, withDemand(demands, j, to));
          demands.forEach((d, i) => {
            if (i === j) expect(after[d.region]).toBeGreaterThanOrEqual(before[d.region]!);
            else expect(after[d.region]).toBeLessThanOrEqual(before[d.region]!);
          });
        },
      ),
      RUNS,
    );
  });

  it('is safe: regions that each see some peers as unknown never take more than the limit between them', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), { minLength: 6, maxLength: 6 }),
        ({ limit, demands }, unknownIn) => {
          let sum = 0;
          demands.forEach((self, r) => {
            const view = demands.map((peer, k) =>
              k !== r && unknownIn[r]![k] ? { ...peer, demand: 'unknown' as const } : peer,
            );
            const mine = allocate(limit, view)[self.region]!;
            // Each region's view gives it no more than the true demands do (monotonicity), hence the sum.
            expect(mine).toBeLessThanOrEqual(allocate(limit, demands)[self.region]!);
            sum += mine;
          });
          expect(sum).toBeLessThanOrEqual(limit);
        },
      ),
      RUNS,
    );
  });

  it('meets every demand when the demands fit, and exceeds none when they do not', () => {
    fc.assert(
      fc.property(scenarioArb, ({ limit, demands }) => {
        const out = allocate(limit, demands);
        const allKnown = demands.every((d) => d.demand !== 'unknown');
        const total = demands.reduce((sum, d) => sum + capped(limit, d.demand), 0);
        for (const d of demands) {
          if (allKnown && total <= limit)
            expect(out[d.region]).toBeGreaterThanOrEqual(capped(limit, d.demand));
          else expect(out[d.region]).toBeLessThanOrEqual(capped(limit, d.demand));
        }
      }),
      RUNS,
    );
  });

  it('equals the one-unit-at-a-time specification for small limits', () => {
    fc.assert(
      fc.property(smallScenarioArb, ({ limit, demands }) => {
        expect({ ...allocate(limit, demands) }).toEqual(naiveAllocate(limit, demands));
      }),
      RUNS,
    );
  });

  it('equals an independent exact (BigInt, threshold search) reference at any limit', () => {
    fc.assert(
      fc.property(scenarioArb, ({ limit, demands }) => {
        expect({ ...allocate(limit, demands) }).toEqual(referenceAllocate(limit, demands));
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Worked examples

describe('allocate: worked examples', () => {
  it('caps a small demand and splits the rest evenly', () => {
    // Level 45: a is capped at its demand 10, b ('unknown') and c (100) get 45 each.
    expect({
      ...allocate(100, [
        { region: 'a', demand: 10 },
        { region: 'b', demand: 'unknown' },
        { region: 'c', demand: 100 },
      ]),
    }).toEqual({ a: 10, b: 45, c: 45 });
  });

  it('splits slack by weight over every region, the odd unit to the first name', () => {
    // Demands 10 + 20 + 0 = 30 fit: slack 70 over three regions of weight 1. Slack slot k of each region has
    // key k/1, so keys 1..23 of all three take 69 units and the 70th goes to key 24, tied three ways and
    // broken by name: a. So a = 10 + 24, b = 20 + 23, c = 0 + 23.
    expect({
      ...allocate(100, [
        { region: 'c', demand: 0 },
        { region: 'b', demand: 20 },
        { region: 'a', demand: 10 },
      ]),
    }).toEqual({ a: 34, b: 43, c: 23 });
  });

  it('treats a floor as a minimum, not an addition', () => {
    // a starts at min(100, 90) = 90; its slots 91..100 have keys 91..100, b's slots 1.. have keys 1..: the
    // 10 units left go to b's keys 1..10.
    expect({
      ...allocate(100, [
        { region: 'a', demand: 100, floor: 90 },
        { region: 'b', demand: 'unknown' },
      ]),
    }).toEqual({ a: 90, b: 10 });
    // A floor above the demand guarantees only the demand.
    expect({
      ...allocate(100, [
        { region: 'a', demand: 5, floor: 50 },
        { region: 'b', demand: 'unknown' },
      ]),
    }).toEqual({ a: 5, b: 95 });
  });

  it('splits by weight with exact ties broken by name', () => {
    // Level 10/4: a (weight 3) takes floor(7.5) = 7, b floor(2.5) = 2; the last unit goes to the smaller next
    // key: a's 8/3 < b's 3/1.
    expect({
      ...allocate(10, [
        { region: 'b', demand: 'unknown' },
        { region: 'a', demand: 'unknown', weight: 3 },
      ]),
    }).toEqual({ a: 8, b: 2 });
    // Weights 1 and 1, limit 1: both next keys are 1/1; the name breaks the tie.
    expect({
      ...allocate(1, [
        { region: 'z', demand: 'unknown' },
        { region: 'y', demand: 'unknown' },
      ]),
    }).toEqual({ y: 1, z: 0 });
  });

  it('treats demands above the limit as the limit, and handles the largest limit exactly', () => {
    const big = allocate(MAX_LIMIT, [
      { region: 'a', demand: Number.MAX_SAFE_INTEGER, weight: 1000 },
      { region: 'b', demand: 'unknown', weight: 999 },
      { region: 'c', demand: MAX_LIMIT, weight: 1 },
    ]);
    expect({ ...big }).toEqual(
      referenceAllocate(MAX_LIMIT, [
        { region: 'a', demand: 'unknown', weight: 1000 },
        { region: 'b', demand: 'unknown', weight: 999 },
        { region: 'c', demand: 'unknown', weight: 1 },
      ]),
    );
    expect(big.a! + big.b! + big.c!).toBe(MAX_LIMIT);
  });

  it('returns an empty object for no regions, and zeros for a zero limit', () => {
    expect({ ...allocate(0, []) }).toEqual({});
    expect({ ...allocate(100, []) }).toEqual({});
    expect({
      ...allocate(0, [
        { region: 'a', demand: 'unknown', floor: 0 },
        { region: 'b', demand: 3 },
      ]),
    }).toEqual({ a: 0, b: 0 });
  });

  it('returns a region named like an Object.prototype member as an own property', () => {
    const out = allocate(10, [
      { region: 'constructor', demand: 'unknown' },
      { region: 'tostring', demand: 3 },
    ]);
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(own(out, 'constructor')).toBe(7);
    expect(own(out, 'tostring')).toBe(3);
    expect(Object.keys(out)).toEqual(['constructor', 'tostring']);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Errors

describe('allocate: errors', () => {
  const one: RegionDemand[] = [{ region: 'a', demand: 1 }];
  const limitRule = `limit: expected an integer from 0 to ${MAX_LIMIT}`;
  const demandRule = "expected a non-negative integer or 'unknown'";
  const weightRule = 'expected an integer from 1 to 1000';
  const floorRule = 'expected a non-negative integer';
  const regionRule = 'expected 1-64 characters of a-z 0-9 -';

  it.each<[string, number, readonly unknown[], string, string]>([
    ['a negative limit', -1, one, 'limit', limitRule],
    ['a fractional limit', 1.5, one, 'limit', limitRule],
    ['a NaN limit', NaN, one, 'limit', limitRule],
    ['an infinite limit', Infinity, one, 'limit', limitRule],
    ['a limit over MAX_LIMIT', MAX_LIMIT + 1, one, 'limit', limitRule],
    ['a bad limit with no regions', -1, [], 'limit', limitRule],
    [
      'a negative demand',
      10,
      [{ region: 'a', demand: -1 }],
      'demands[0].demand',
      `demands[0].demand: ${demandRule}`,
    ],
    [
      'a fractional demand',
      10,
      [
        { region: 'a', demand: 1 },
        { region: 'b', demand: 1.5 },
      ],
      'demands[1].demand',
      `demands[1].demand: ${demandRule}`,
    ],
    [
      'a NaN demand',
      10,
      [{ region: 'a', demand: NaN }],
      'demands[0].demand',
      `demands[0].demand: ${demandRule}`,
    ],
    [
      'another string demand',
      10,
      [{ region: 'a', demand: 'Unknown' }],
      'demands[0].demand',
      `demands[0].demand: ${demandRule}`,
    ],
    [
      'a zero weight',
      10,
      [{ region: 'a', demand: 1, weight: 0 }],
      'demands[0].weight',
      `demands[0].weight: ${weightRule}`,
    ],
    [
      'a negative weight',
      10,
      [{ region: 'a', demand: 1, weight: -1 }],
      'demands[0].weight',
      `demands[0].weight: ${weightRule}`,
    ],
    [
      'a fractional weight',
      10,
      [{ region: 'a', demand: 1, weight: 1.5 }],
      'demands[0].weight',
      `demands[0].weight: ${weightRule}`,
    ],
    [
      'a weight over 1000',
      10,
      [{ region: 'a', demand: 1, weight: 1001 }],
      'demands[0].weight',
      `demands[0].weight: ${weightRule}`,
    ],
    [
      'a negative floor',
      10,
      [{ region: 'a', demand: 1, floor: -1 }],
      'demands[0].floor',
      `demands[0].floor: ${floorRule}`,
    ],
    [
      'a fractional floor',
      10,
      [{ region: 'a', demand: 1, floor: 0.5 }],
      'demands[0].floor',
      `demands[0].floor: ${floorRule}`,
    ],
    [
      'a duplicate region',
      10,
      [
        { region: 'b', demand: 1 },
        { region: 'a', demand: 1 },
        { region: 'b', demand: 2 },
      ],
      'demands[2].region',
      'demands[2].region: appears twice (first at demands[0])',
    ],
    [
      'an empty region name',
      10,
      [{ region: '', demand: 1 }],
      'demands[0].region',
      `demands[0].region: ${regionRule}`,
    ],
    [
      'a __proto__ region',
      10,
      [{ region: '__proto__', demand: 1 }],
      'demands[0].region',
      `demands[0].region: ${regionRule}`,
    ],
    [
      'an upper-case region',
      10,
      [{ region: 'Eu-west-1', demand: 1 }],
      'demands[0].region',
      `demands[0].region: ${regionRule}`,
    ],
    [
      'a 65-character region',
      10,
      [{ region: 'a'.repeat(65), demand: 1 }],
      'demands[0].region',
      `demands[0].region: ${regionRule}`,
    ],
    [
      'a region that is not a string',
      10,
      [{ region: 7, demand: 1 }],
      'demands[0].region',
      `demands[0].region: ${regionRule}`,
    ],
    [
      'an entry that is not an object',
      10,
      [null],
      'demands[0]',
      'demands[0]: expected { region, demand, weight?, floor? }',
    ],
    [
      'floors summing above the limit',
      10,
      [
        { region: 'a', demand: 1, floor: 6 },
        { region: 'b', demand: 1, floor: 5 },
      ],
      'demands',
      'demands: floors summing above the limit',
    ],
    [
      'too many regions',
      10,
      Array.from({ length: MAX_REGIONS + 1 }, (_, i) => ({ region: `r${i}`, demand: 1 })),
      'demands',
      `demands: expected a list of at most ${MAX_REGIONS} regions`,
    ],
  ])('refuses %s', (_label, limit, demands, field, message) => {
    const error = errorOf(() => allocate(limit, demands as RegionDemand[]));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error.code).toBe('quota-allocation');
    expect(error.name).toBe('AllocationError');
    expect(error.field).toBe(field);
    expect(error.message).toBe(message);
    expect(`${error.field}: ${error.rule}`).toBe(message);
  });

  it('accepts a 64-character region, floors summing to exactly the limit and MAX_LIMIT', () => {
    const name = 'a-0'.repeat(21) + 'z';
    expect({ ...allocate(10, [{ region: name, demand: 3, floor: 10 }]) }).toEqual({ [name]: 10 });
    expect({ ...allocate(MAX_LIMIT, [{ region: 'a', demand: 'unknown' }]) }).toEqual({ a: MAX_LIMIT });
  });
});
