import fc from 'fast-check';
import { allocate } from '../../runtime/quota/allocate';
import type { AllocationConfig } from '../../runtime/quota/config';
import {
  defaultStatic,
  enforcedLimit,
  shareWithPeersUnknown,
  type EnforcementContext,
  type Heartbeat,
  type LimitState,
  type SyncOverride,
} from '../../runtime/quota/enforcement';
import {
  AP,
  at,
  CONFIG,
  counters,
  DELAY,
  E,
  EU,
  LIMIT,
  REGIONS,
  REQUESTS,
  US,
  windowTotal,
  type Region,
  ranThrough,
} from '../support/quota-fixtures';

const context = (
  region: string,
  heartbeat: number | Heartbeat | undefined,
  config: AllocationConfig = CONFIG,
): EnforcementContext => ({
  config,
  region,
  resource: config.resources[0] ?? REQUESTS,
  heartbeat: typeof heartbeat === 'number' ? ranThrough(heartbeat) : heartbeat,
});

const grow: SyncOverride = { epoch: E, prior: 30_000, share: 60_000 };

describe('the operator value', () => {
  const states: LimitState[] = [
    { operator: 5000 },
    { operator: 5000, static: 40_000 },
    { operator: 5000, static: 40_000, sync: grow },
    { operator: 5000, sync: { epoch: E - 7, prior: 80_000, share: 80_000 } },
  ];

  it.each([
    ['no heartbeat', undefined],
    ['a recent heartbeat', E],
    ['an expired heartbeat', E - 10],
  ])('wins over a sync override and a static value with %s', (_, heartbeat) => {
    for (const state of states)
      for (const now of [at(E, 0), at(E + 1, DELAY), at(E + 3, 0), at(E + 9, 0)])
        expect(enforcedLimit(state, context(EU, heartbeat), now)).toEqual({
          limit: 5000,
          source: 'operator',
        });
  });

  it('is in force when it is 0 (a blocked entity), not mistaken for no value', () => {
    expect(enforcedLimit({ operator: 0, sync: grow }, context(EU, E), at(E + 2, 0))).toEqual({
      limit: 0,
      source: 'operator',
    });
  });
});

describe('the static limit', () => {
  it("is the region's share with every demand unknown when no operator wrote one: 30,000 each here", () => {
    for (const region of REGIONS) {
      expect(defaultStatic(CONFIG, REQUESTS, region)).toBe(30_000);
      expect(enforcedLimit({}, context(region, undefined), at(E, 1000))).toEqual({
        limit: 30_000,
        source: 'static',
      });
    }
  });

  it('follows the weights and floors of the allocation, not an equal split', () => {
    const weighted: AllocationConfig = {
      ...CONFIG,
      regions: [
        { region: AP, weight: 1 },
        { region: EU, weight: 2 },
        { region: US, weight: 1 },
      ],
      resources: [{ ...REQUESTS, floors: [{ region: AP, floor: 25_000 }] }],
    };
    const resource = weighted.resources[0] ?? REQUESTS;
    const expected = allocate(
      LIMIT,
      REGIONS.map((region) => ({
        region,
        demand: 'unknown' as const,
        weight: region === EU ? 2 : 1,
        floor: region === AP ? 25_000 : 0,
      })),
    );
    expect(expected).toEqual({ [AP]: 25_000, [EU]: 43_334, [US]: 21_666 });
    // The slack split of no demand at all leaves floors out: a region never computing an entity must stay
    // within that too (AP: 22,500 of a 1:2:1 split, below its floor-backed 25,000).
    const idle = allocate(
      LIMIT,
      REGIONS.map((region) => ({ region, demand: 0, weight: region === EU ? 2 : 1 })),
    );
    expect(idle).toEqual({ [AP]: 22_500, [EU]: 45_000, [US]: 22_500 });
    for (const region of REGIONS)
      expect(defaultStatic(weighted, resource, region)).toBe(
        Math.min(expected[region] ?? 0, idle[region] ?? 0),
      );
    expect(defaultStatic(weighted, resource, 'sa-east-1')).toBe(0);
  });

  it('is what an operator wrote as `static`, in place of the default', () => {
    expect(enforcedLimit({ static: 12_000 }, context(EU, undefined), at(E, 1000))).toEqual({
      limit: 12_000,
      source: 'static',
    });
  });

  it('is in force without a heartbeat, whatever sync override the table holds', () => {
    for (const now of [at(E, 1000), at(E + 1, DELAY), at(E + 5, 0)]) {
      expect(enforcedLimit({ sync: grow }, context(EU, undefined), now)).toEqual({
        limit: 30_000,
        source: 'static',
      });
      expect(enforcedLimit({ sync: grow, static: 7000 }, context(EU, undefined), now).limit).toBe(7000);
    }
  });
});

describe('a sync override', () => {
  it('enforces min(prior, share) until the next epoch starts plus the activation delay, then its share, switching at that instant', () => {
    const ctx = context(EU, E);
    const switchAt = at(E + 1, DELAY);
    for (const now of [at(E, 1000), at(E, 59_999), at(E + 1, 0), switchAt - 1])
      expect(enforcedLimit({ sync: grow }, ctx, now)).toEqual({ limit: 30_000, source: 'sync-pending' });
    for (const now of [switchAt, switchAt + 1, at(E + 1, 30_000), at(E + 2, 0)])
      expect(enforcedLimit({ sync: grow }, ctx, now)).toEqual({ limit: 60_000, source: 'sync' });
  });

  it('puts a shrink in force at once', () => {
    const shrink: SyncOverride = { epoch: E, prior: 30_000, share: 10_000 };
    expect(enforcedLimit({ sync: shrink }, context(EU, E), at(E, 1000)).limit).toBe(10_000);
    expect(enforcedLimit({ sync: shrink }, context(EU, E), at(E + 1, DELAY))).toEqual({
      limit: 10_000,
      source: 'sync',
    });
  });

  it('wins over the static value while the heartbeat is recent, above it or below it', () => {
    const old: SyncOverride = { epoch: E - 3, prior: 45_000, share: 45_000 };
    for (const now of [at(E, 5000), at(E + 1, 30_000), at(E + 2, DELAY - 1)]) {
      expect(enforcedLimit({ sync: old, static: 20_000 }, context(EU, E), now)).toEqual({
        limit: 45_000,
        source: 'sync',
      });
      expect(
        enforcedLimit({ sync: { ...old, share: 1000, prior: 1000 }, static: 20_000 }, context(EU, E), now)
          .limit,
      ).toBe(1000);
    }
  });
});

describe('a late or dead sync', () => {
  // Own demand of window H - 1 = E - 1: 1,200,001 milli-units, i.e. ceil(20,000.02) = 20,001 per second.
  const H = E;
  const published = 1_200_001;
  // The counters have moved on three windows since: window E - 1 is three back.
  const state: LimitState = {
    sync: { epoch: E - 3, prior: 45_000, share: 45_000 },
    counters: counters(E + 2, [7, 8, 9, published, 5]),
  };

  it('enforces at most the share with every peer unknown and its own demand as last published, from H + 2 windows + the delay', () => {
    const ctx = context(EU, H);
    const fallback = shareWithPeersUnknown(ctx, Math.ceil(published / 60));
    expect(fallback).toBe(
      allocate(LIMIT, [
        { region: AP, demand: 'unknown' },
        { region: EU, demand: 20_001 },
        { region: US, demand: 'unknown' },
      ])[EU],
    );
    expect(fallback).toBe(20_001);
    expect(enforcedLimit(state, ctx, at(H + 2, DELAY - 1))).toEqual({ limit: 45_000, source: 'sync' });
    for (const now of [at(H + 2, DELAY), at(H + 3, 0), at(H + 3, DELAY) - 1])
      expect(enforcedLimit(state, ctx, now)).toEqual({ limit: 20_001, source: 'sync-fallback' });
    // From H + 3 windows + the delay the peers enforce shares computed without this region's snapshot of
    // H + 1, which it never published: whatever its demand, the share with every demand unknown is safe.
    for (const now of [at(H + 3, DELAY), at(H + 4, 0) - 1])
      expect(enforcedLimit(state, ctx, now)).toEqual({ limit: 30_000, source: 'sync-fallback' });
  });

  it('keeps an override already below the fallback, and caps a static value above it', () => {
    const ctx = context(EU, H);
    const low: LimitState = { ...state, sync: { epoch: E - 3, prior: 9000, share: 9000 } };
    expect(enforcedLimit(low, ctx, at(H + 3, 0))).toEqual({ limit: 9000, source: 'sync' });
    expect(enforcedLimit({ counters: state.counters }, ctx, at(H + 3, 0))).toEqual({
      limit: 20_001,
      source: 'sync-fallback',
    });
  });

  it('falls back to 0 for an entity that asked nothing in window H - 1 (peers may have taken all of it)', () => {
    const quiet: LimitState = { sync: state.sync, counters: counters(E + 2, [5, 5, 5, 0, 5]) };
    expect(enforcedLimit(quiet, context(EU, H), at(H + 3, 0))).toEqual({ limit: 0, source: 'sync-fallback' });
  });

  it('falls back to the static limit from H + 4 windows', () => {
    const ctx = context(EU, H);
    expect(enforcedLimit(state, ctx, at(H + 4, 0))).toEqual({ limit: 30_000, source: 'static' });
    expect(enforcedLimit({ ...state, static: 12_000 }, ctx, at(H + 4, 0))).toEqual({
      limit: 12_000,
      source: 'static',
    });
    expect(enforcedLimit(state, ctx, at(H + 40, 0)).limit).toBe(30_000);
  });
});

/**
 * Three regions move from one allocation to the next in epoch e. Before it, each enforces an override of an
 * earlier epoch (their shares sum to the limit) and its heartbeat is e - 1. In epoch e each region's pass
 * (at its own moment, or never: a failed pass) writes the share allocated from window e - 2's demand, with
 * as prior what it enforced then. No pass runs after epoch e, so the heartbeats age and the regions fall
 * back, the failed ones first.
 */
interface Switch {
  readonly oldShares: Readonly<Record<Region, number>>;
  /** Demand (milli-units per second) in windows e - 2 and e - 1. */
  readonly demand: Readonly<Record<Region, readonly [number, number]>>;
  /** ms into epoch e at which each region's pass writes; undefined: it fails. */
  readonly passAt: Readonly<Partial<Record<Region, number>>>;
}

const e = E + 10;

function regionAt(scenario: Switch, region: Region, now: number) {
  const [twoBack, oneBack] = scenario.demand[region];
  const before: LimitState = {
    sync: { epoch: e - 2, prior: scenario.oldShares[region], share: scenario.oldShares[region] },
    counters: counters(e - 1, [windowTotal(oneBack), windowTotal(twoBack)]),
  };
  const newShares = allocate(
    LIMIT,
    REGIONS.map((r) => ({ region: r, demand: scenario.demand[r][0] })),
  );
  const passAt = scenario.passAt[region];
  if (passAt === undefined || now < at(e, passAt)) return enforcedLimit(before, context(region, e - 1), now);
  const prior = enforcedLimit(before, context(region, e - 1), at(e, passAt)).limit;
  const after: LimitState = { ...before, sync: { epoch: e, prior, share: newShares[region] ?? 0 } };
  return enforcedLimit(after, context(region, e), now);
}

/** Every 250 ms from epoch e to e + 5, and both sides of every window start and every switch instant. */
function instants(): number[] {
  const list: number[] = [];
  for (let now = at(e, 0); now < at(e + 5, 0); now += 250) list.push(now);
  for (let k = 0; k <= 5; k++)
    for (const edge of [at(e + k, 0), at(e + k, DELAY)]) list.push(edge - 1, edge, edge + 1);
  return list;
}

const sumAt = (scenario: Switch, now: number) =>
  REGIONS.reduce((sum, region) => sum + regionAt(scenario, region, now).limit, 0);

describe('the regions together', () => {
  const even = { [AP]: 30_000, [EU]: 30_000, [US]: 30_000 };
  const shifting: Record<Region, readonly [number, number]> = {
    [AP]: [10_000, 10_000],
    [EU]: [60_000, 60_000],
    [US]: [20_000, 20_000],
  };
  const scenarios: [string, Switch][] = [
    [
      'every pass runs early',
      { oldShares: even, demand: shifting, passAt: { [EU]: 1000, [US]: 1500, [AP]: 2000 } },
    ],
    [
      'the grower passes first and the shrinkers late',
      { oldShares: even, demand: shifting, passAt: { [EU]: 1000, [US]: 30_000, [AP]: 59_999 } },
    ],
    ['a shrinker’s pass fails', { oldShares: even, demand: shifting, passAt: { [EU]: 1000, [US]: 1000 } }],
    ['both shrinkers’ passes fail', { oldShares: even, demand: shifting, passAt: { [EU]: 1000 } }],
    ['the grower’s pass fails', { oldShares: even, demand: shifting, passAt: { [US]: 1000, [AP]: 1000 } }],
    [
      'a region with no demand gives all of it up while its pass fails',
      {
        oldShares: { [AP]: 50_000, [EU]: 20_000, [US]: 20_000 },
        demand: { [AP]: [0, 0], [EU]: [90_000, 70_000], [US]: [90_000, 90_000] },
        passAt: { [EU]: 1200, [US]: 45_000 },
      },
    ],
  ];

  it.each(scenarios)('never enforce more than the limit in sum across the switch: %s', (_, scenario) => {
    for (const now of instants()) expect(sumAt(scenario, now)).toBeLessThanOrEqual(LIMIT);
  });

  it('reach the new allocation at the switch instant when every pass ran, and not a millisecond before', () => {
    const [, scenario] = scenarios[0] as [string, Switch];
    const switchAt = at(e + 1, DELAY);
    expect(regionAt(scenario, EU, switchAt - 1)).toEqual({ limit: 30_000, source: 'sync-pending' });
    expect(regionAt(scenario, EU, switchAt)).toEqual({ limit: 60_000, source: 'sync' });
    expect(regionAt(scenario, US, at(e, 1500))).toEqual({ limit: 20_000, source: 'sync-pending' });
    expect(sumAt(scenario, switchAt - 1)).toBe(30_000 + 20_000 + 10_000);
    expect(sumAt(scenario, switchAt)).toBe(LIMIT);
  });

  it("cap a failed shrinker at the grower's switch instant, by the fallback", () => {
    const [, scenario] = scenarios[2] as [string, Switch];
    const switchAt = at(e + 1, DELAY);
    expect(regionAt(scenario, AP, switchAt - 1)).toEqual({ limit: 30_000, source: 'sync' });
    expect(regionAt(scenario, AP, switchAt)).toEqual({ limit: 10_000, source: 'sync-fallback' });
    expect(sumAt(scenario, switchAt)).toBe(LIMIT);
  });

  it('never enforce more than the limit in sum for any demands, old allocation and pass times', () => {
    const demand = fc.integer({ min: 0, max: 120_000 });
    const passAt = fc.option(fc.integer({ min: 0, max: 59_999 }), { nil: undefined });
    fc.assert(
      fc.property(
        fc.tuple(demand, demand, demand),
        fc.tuple(fc.tuple(demand, demand), fc.tuple(demand, demand), fc.tuple(demand, demand)),
        fc.tuple(passAt, passAt, passAt),
        (old, [ap, eu, us], [apAt, euAt, usAt]) => {
          const oldShares = allocate(
            LIMIT,
            REGIONS.map((region, i) => ({ region, demand: old[i] ?? 0 })),
          ) as Record<Region, number>;
          const scenario: Switch = {
            oldShares,
            demand: { [AP]: ap, [EU]: eu, [US]: us },
            passAt: { [AP]: apAt, [EU]: euAt, [US]: usAt },
          };
          for (let k = 0; k <= 5; k++)
            for (const edge of [at(e + k, 0), at(e + k, DELAY)])
              for (const now of [edge - 1, edge, edge + 1, edge + 29_000])
                expect(sumAt(scenario, now)).toBeLessThanOrEqual(LIMIT);
          for (const ms of [apAt, euAt, usAt])
            if (ms !== undefined) expect(sumAt(scenario, at(e, ms))).toBeLessThanOrEqual(LIMIT);
        },
      ),
      { numRuns: 300 },
    );
  });
});
