import { allocate } from '../../runtime/quota/allocate';
import type { AllocationConfig } from '../../runtime/quota/config';
import type { LimitState, SyncOverride } from '../../runtime/quota/enforcement';
import {
  planPass,
  type LocalLimit,
  type OverrideWrite,
  type PassPlan,
  type PeerView,
} from '../../runtime/quota/plan';
import type { SnapshotEntry } from '../../runtime/quota/snapshot';
import {
  AP,
  at,
  CONFIG,
  configWithLimit,
  counters,
  E,
  EU,
  LIMIT,
  REGIONS,
  snapshotOf,
  US,
  windowTotal,
  type Region,
  ranThrough,
} from '../support/quota-fixtures';

/** What one region reported for window E - 1, per entity: demand in milli-units per second (and more). */
type Report = Readonly<
  Record<
    string,
    number | { readonly perSecond: number; readonly operator?: number; readonly consumed?: number }
  >
>;

function entriesOf(report: Report): SnapshotEntry[] {
  return Object.entries(report).map(([entity, value]) => {
    const { perSecond, operator, consumed } = typeof value === 'number' ? { perSecond: value } : value;
    return {
      entity,
      resource: 'requests',
      consumed: consumed ?? 0,
      demand: windowTotal(perSecond),
      ...(operator !== undefined ? { operator } : {}),
    };
  });
}

type Seen = Report | { readonly unknown: 'missing' | 'stale' | 'undecodable' | 'unreachable' };

/** Every region's view of epoch E - 1's snapshots, in the order given (the plan must not care). */
function viewsOf(
  seen: Readonly<Record<Region, Seen>>,
  order: readonly Region[] = REGIONS,
  configOf: (region: Region) => AllocationConfig = () => CONFIG,
): Map<string, PeerView> {
  return new Map(
    order.map((region): [string, PeerView] => {
      const view = seen[region];
      if ('unknown' in view && typeof view.unknown === 'string')
        return [region, { known: false, reason: view.unknown }];
      return [
        region,
        { known: true, snapshot: snapshotOf(region, E - 1, entriesOf(view as Report), configOf(region)) },
      ];
    }),
  );
}

/** The region's own item: its counters hold what it reported for window E - 1. */
function localOf(entity: string, perSecond: number, state: Partial<LimitState> = {}): LocalLimit {
  return {
    entity,
    resource: 'requests',
    state: { counters: counters(E - 1, [windowTotal(perSecond)]), ...state },
  };
}

/** An override written two epochs ago: in force, not pending. */
const inForce = (share: number): SyncOverride => ({ epoch: E - 2, prior: share, share });

/** The writes without the epoch each replaces (checked on its own where it matters). */
const withoutExpected = (writes: readonly OverrideWrite[]) =>
  writes.map(({ expectedEpoch: _expected, ...write }) => write);

function plan(
  region: Region,
  views: ReadonlyMap<string, PeerView>,
  local: readonly LocalLimit[] = [],
  options: { heartbeat?: number; now?: number; epoch?: number } = {},
): PassPlan {
  return planPass({
    config: CONFIG,
    region,
    epoch: options.epoch ?? E,
    now: options.now ?? at(E, 1000),
    heartbeat:
      'heartbeat' in options
        ? options.heartbeat === undefined
          ? undefined
          : ranThrough(options.heartbeat)
        : ranThrough(E - 1),
    views,
    local,
  });
}

const shareOf = (p: PassPlan, entity: string) => p.writes.find((w) => w.entity === entity)?.override.share;

describe('planPass: one allocation for every region', () => {
  const seen: Record<Region, Seen> = {
    [AP]: { 'tenant-1': 10_000, 'tenant-2': 40_000 },
    [EU]: { 'tenant-1': 70_000, 'tenant-2': 40_000 },
    [US]: { 'tenant-1': 25_000, 'tenant-2': 40_000 },
  };
  const expected = allocate(LIMIT, [
    { region: AP, demand: 10_000 },
    { region: EU, demand: 70_000 },
    { region: US, demand: 25_000 },
  ]);

  it('writes in each region its entry of the one allocation of the same snapshots, whatever their order', () => {
    expect(expected).toEqual({ [AP]: 10_000, [EU]: 55_000, [US]: 25_000 });
    const orders: Region[][] = [
      [AP, EU, US],
      [US, EU, AP],
      [EU, AP, US],
    ];
    for (const [i, region] of REGIONS.entries()) {
      const own = seen[region] as Report;
      const p = plan(region, viewsOf(seen, orders[i]), [
        localOf('tenant-1', own['tenant-1'] as number),
        localOf('tenant-2', own['tenant-2'] as number),
      ]);
      expect(withoutExpected(p.writes)).toEqual([
        {
          entity: 'tenant-1',
          resource: 'requests',
          override: { epoch: E, prior: 30_000, share: expected[region] },
          kind: region === EU ? 'grow' : 'shrink',
        },
      ]);
      // tenant-2's demands sum past the limit evenly: 30,000 each, the static share, so nothing to write.
      expect(p.shareByResource.get('requests')).toBe((expected[region] ?? 0) + 30_000);
      expect(p.computed).toBe(2);
      expect(p.configs).toBe(1);
    }
  });

  it('allocates the whole limit over the regions, no more', () => {
    const total = REGIONS.reduce(
      (sum, region) => sum + (plan(region, viewsOf(seen)).shareByResource.get('requests') ?? 0),
      0,
    );
    expect(total).toBe(2 * LIMIT);
  });
});

describe('planPass: triggers', () => {
  it('writes a shrink at once, even 3% below the share in force', () => {
    const p = plan(EU, viewsOf({ [AP]: { t: 30_000 }, [EU]: { t: 29_000 }, [US]: { t: 31_000 } }), [
      localOf('t', 29_000, { sync: inForce(30_000) }),
    ]);
    expect(withoutExpected(p.writes)).toEqual([
      {
        entity: 't',
        resource: 'requests',
        override: { epoch: E, prior: 30_000, share: 29_000 },
        kind: 'shrink',
      },
    ]);
    expect(p.heldBack).toBe(0);
  });

  it('writes a share below a pending grow as a shrink, with what is enforced meanwhile as prior', () => {
    const pending: SyncOverride = { epoch: E - 1, prior: 20_000, share: 40_000 };
    const p = plan(EU, viewsOf({ [AP]: { t: 20_000 }, [EU]: { t: 35_000 }, [US]: { t: 35_000 } }), [
      localOf('t', 35_000, { sync: pending }),
    ]);
    expect(withoutExpected(p.writes)).toEqual([
      {
        entity: 't',
        resource: 'requests',
        override: { epoch: E, prior: 20_000, share: 35_000 },
        kind: 'shrink',
      },
    ]);
  });

  it('holds back a grow under 15% while the bucket would not run dry', () => {
    const views = viewsOf({ [AP]: { t: 29_000 }, [EU]: { t: 30_000 }, [US]: { t: 29_000 } });
    const p = plan(EU, views, [localOf('t', 30_000, { sync: inForce(30_000) })]);
    expect(p.shareByResource.get('requests')).toBe(30_667);
    expect(withoutExpected(p.writes)).toEqual([]);
    expect(p.heldBack).toBe(1);
  });

  it('writes a grow under 15% when the last window’s demand would drain the bucket within two windows', () => {
    // Capacity 30,000 drains within 120 s at 30,250/s or more (250 x 120 = 30,000), not at 30,249/s.
    const at30249 = plan(EU, viewsOf({ [AP]: { t: 29_000 }, [EU]: { t: 30_249 }, [US]: { t: 29_000 } }), [
      localOf('t', 30_249, { sync: inForce(30_000) }),
    ]);
    expect(withoutExpected(at30249.writes)).toEqual([]);
    expect(at30249.heldBack).toBe(1);

    const at30250 = plan(EU, viewsOf({ [AP]: { t: 29_000 }, [EU]: { t: 30_250 }, [US]: { t: 29_000 } }), [
      localOf('t', 30_250, { sync: inForce(30_000) }),
    ]);
    expect(withoutExpected(at30250.writes)).toEqual([
      {
        entity: 't',
        resource: 'requests',
        override: { epoch: E, prior: 30_000, share: 30_833 },
        kind: 'grow',
      },
    ]);
    expect(at30250.heldBack).toBe(0);
  });

  it('writes a grow of more than 15%', () => {
    const p = plan(EU, viewsOf({ [AP]: { t: 10_000 }, [EU]: { t: 30_000 }, [US]: { t: 10_000 } }), [
      localOf('t', 30_000, { sync: inForce(30_000) }),
    ]);
    const share = allocate(LIMIT, [
      { region: AP, demand: 10_000 },
      { region: EU, demand: 30_000 },
      { region: US, demand: 10_000 },
    ])[EU];
    expect(share).toBe(43_333);
    expect(withoutExpected(p.writes)).toEqual([
      { entity: 't', resource: 'requests', override: { epoch: E, prior: 30_000, share }, kind: 'grow' },
    ]);
  });

  it('measures a grow from the static share before the first override', () => {
    const p = plan(EU, viewsOf({ [AP]: { t: 10_000 }, [EU]: { t: 30_000 }, [US]: { t: 10_000 } }), [
      localOf('t', 30_000, { static: 40_000 }),
    ]);
    expect(withoutExpected(p.writes)).toEqual([]);
    expect(p.heldBack).toBe(1);
  });
});

describe('planPass: operator values', () => {
  const seen: Record<Region, Seen> = {
    [AP]: { t: 10_000 },
    [EU]: { t: { perSecond: 70_000, operator: 85_000 } },
    [US]: { t: 10_000 },
  };

  it('keeps the override under an operator value current, counts it and reports what it puts above the limit', () => {
    const p = plan(EU, viewsOf(seen), [localOf('t', 70_000, { operator: 85_000 })]);
    // The operator's value wins in the hot path; the share beneath it is what applies once it is removed.
    expect(withoutExpected(p.writes)).toEqual([
      {
        entity: 't',
        resource: 'requests',
        override: { epoch: E, prior: 30_000, share: 70_000 },
        kind: 'grow',
      },
    ]);
    expect(p.operatorHeld).toBe(1);
    // 85,000 here, and 10,000 in each peer.
    expect(p.operatorExcess).toBe(85_000 + 10_000 + 10_000 - LIMIT);
  });

  it('reports no excess for an operator value that keeps the sum within the limit', () => {
    const within: Record<Region, Seen> = { ...seen, [EU]: { t: { perSecond: 70_000, operator: 50_000 } } };
    const p = plan(EU, viewsOf(within), [localOf('t', 70_000, { operator: 50_000 })]);
    expect(p.operatorHeld).toBe(1);
    expect(p.operatorExcess).toBe(0);
    expect(p.writes.map((w) => w.override.share)).toEqual([70_000]);
  });

  it("counts a peer's operator value in the excess, and still writes this region's share", () => {
    const p = plan(US, viewsOf(seen), [localOf('t', 10_000, { sync: inForce(30_000) })]);
    expect(p.operatorHeld).toBe(0);
    expect(p.operatorExcess).toBe(85_000 + 10_000 + 10_000 - LIMIT);
    expect(shareOf(p, 't')).toBe(10_000);
  });
});

describe('planPass: overrides no completed pass stands behind, and operator values', () => {
  it('shrinks an override a failed first pass left, even with no heartbeat yet', () => {
    const views = viewsOf({ [AP]: { t: 28_000 }, [EU]: { t: 34_000 }, [US]: { t: 28_000 } });
    const left: LocalLimit = {
      entity: 't',
      resource: 'requests',
      state: { sync: { epoch: E - 1, prior: 30_000, share: 70_000 } },
    };
    const p = plan(EU, views, [left], { heartbeat: undefined });
    expect(p.writes.map((w) => [w.kind, w.override.share])).toEqual([['shrink', 34_000]]);
  });

  it('never releases an override beneath an operator value (its write would be refused)', () => {
    const views = viewsOf({ [AP]: { busy: 1000 }, [EU]: { busy: 1000 }, [US]: { busy: 1000 } });
    const held: LocalLimit = {
      entity: 'quiet',
      resource: 'requests',
      state: { sync: inForce(45_000), operator: 0 },
    };
    expect(plan(EU, views, [held]).releases).toEqual([]);
  });
});

describe('planPass: views', () => {
  it.each(['missing', 'stale', 'undecodable', 'unreachable'] as const)(
    'shrinks to the share the allocation gives with a peer unbounded when its snapshot is %s',
    (reason) => {
      const known = plan(EU, viewsOf({ [AP]: { t: 10_000 }, [EU]: { t: 50_000 }, [US]: { t: 10_000 } }));
      expect(known.shareByResource.get('requests')).toBe(56_667);
      const p = plan(EU, viewsOf({ [AP]: { t: 10_000 }, [EU]: { t: 50_000 }, [US]: { unknown: reason } }), [
        localOf('t', 50_000, { sync: inForce(56_667) }),
      ]);
      const share = allocate(LIMIT, [
        { region: AP, demand: 10_000 },
        { region: EU, demand: 50_000 },
        { region: US, demand: 'unknown' },
      ])[EU];
      expect(share).toBe(40_000);
      expect(withoutExpected(p.writes)).toEqual([
        { entity: 't', resource: 'requests', override: { epoch: E, prior: 56_667, share }, kind: 'shrink' },
      ]);
    },
  );

  it('sees its own missing snapshot as unknown too, as its peers do', () => {
    const p = plan(EU, viewsOf({ [AP]: { t: 10_000 }, [EU]: { unknown: 'missing' }, [US]: { t: 10_000 } }));
    expect(p.shareByResource.get('requests')).toBe(70_000);
  });

  it('takes the smaller share when a peer computes under another configuration', () => {
    const seen: Record<Region, Seen> = { [AP]: { t: 30_000 }, [EU]: { t: 30_000 }, [US]: { t: 30_000 } };
    const smaller = plan(
      EU,
      viewsOf(seen, REGIONS, (r) => (r === US ? configWithLimit(60_000) : CONFIG)),
      [localOf('t', 30_000)],
    );
    expect(smaller.configs).toBe(2);
    expect(withoutExpected(smaller.writes)).toEqual([
      {
        entity: 't',
        resource: 'requests',
        override: { epoch: E, prior: 30_000, share: 20_000 },
        kind: 'shrink',
      },
    ]);

    const larger = plan(
      EU,
      viewsOf(seen, REGIONS, (r) => (r === US ? configWithLimit(120_000) : CONFIG)),
      [localOf('t', 30_000)],
    );
    expect(larger.configs).toBe(2);
    expect(larger.shareByResource.get('requests')).toBe(30_000);
    expect(withoutExpected(larger.writes)).toEqual([]);
  });

  it('computes an entity that holds an override here but is in no snapshot, and releases it when idle everywhere', () => {
    const views = viewsOf({ [AP]: { busy: 1000 }, [EU]: { busy: 1000 }, [US]: { busy: 1000 } });
    const quiet: LocalLimit = { entity: 'quiet', resource: 'requests', state: { sync: inForce(45_000) } };
    const p = plan(EU, views, [quiet]);
    expect(p.computed).toBe(2);
    // No demand anywhere, every region seen: static (30,000, no more than the 45,000 in force) applies.
    expect(p.writes).toEqual([]);
    expect(p.releases).toEqual([{ entity: 'quiet', resource: 'requests', expectedEpoch: E - 2 }]);
    // Still pending, or with a peer unseen, it is kept and computed instead.
    const pending: LocalLimit = { ...quiet, state: { sync: { epoch: E - 1, prior: 30_000, share: 45_000 } } };
    expect(plan(EU, views, [pending], { now: at(E, 1000) }).releases).toEqual([]);

    // With a peer unknown, an entity nobody asked for is all the peer's.
    const unknown = viewsOf({ [AP]: { busy: 1000 }, [EU]: { busy: 1000 }, [US]: { unknown: 'missing' } });
    expect(shareOf(plan(EU, unknown, [quiet]), 'quiet')).toBe(0);
  });

  it('reports what the regions consumed beyond one global bucket in the last window', () => {
    const bound = LIMIT * 60 + LIMIT;
    const p = plan(
      EU,
      viewsOf({
        [AP]: { t: { perSecond: 50_000, consumed: 3_000_000 } },
        [EU]: { t: { perSecond: 50_000, consumed: 3_000_000 } },
        [US]: { t: 0 },
      }),
    );
    expect(p.overAdmission).toBe(6_000_000 - bound);
  });
});

describe('planPass: override diffing', () => {
  const seen: Record<Region, Seen> = {
    [AP]: { grow: 10_000, shrink: 40_000, held: 29_000, op: 10_000, quiet: 0 },
    [EU]: { grow: 30_000, shrink: 20_000, held: 30_000, op: { perSecond: 70_000, operator: 85_000 } },
    [US]: { grow: 10_000, shrink: 40_000, held: 29_000, op: 10_000 },
  };
  const local: LocalLimit[] = [
    localOf('grow', 30_000, { sync: inForce(30_000) }),
    localOf('shrink', 20_000, { sync: inForce(30_000) }),
    localOf('held', 30_000, { sync: inForce(30_000) }),
    localOf('op', 70_000, { operator: 85_000 }),
    { entity: 'quiet', resource: 'requests', state: { sync: inForce(50_000) } },
  ];
  const applied = (p: PassPlan): LocalLimit[] =>
    local.map((item) => {
      const write = p.writes.find((w) => w.entity === item.entity);
      return write ? { ...item, state: { ...item.state, sync: write.override } } : item;
    });

  it('plans no write a second time once the first plan’s writes are in the table', () => {
    const first = plan(EU, viewsOf(seen), local);
    expect(first.writes.map((w) => [w.entity, w.kind])).toEqual([
      ['grow', 'grow'],
      ['shrink', 'shrink'],
      ['op', 'grow'],
      ['quiet', 'shrink'],
    ]);
    expect(first.heldBack).toBe(1);
    expect(first.operatorHeld).toBe(1);

    // A repeated pass of the epoch (a retry), at once or later in the window.
    for (const now of [at(E, 1000), at(E, 40_000)]) {
      const again = plan(EU, viewsOf(seen), applied(first), { heartbeat: E, now });
      expect(withoutExpected(again.writes)).toEqual([]);
      expect(again.heldBack).toBe(1);
      expect(again.operatorHeld).toBe(1);
    }
  });

  it('plans no write in the next epoch while the demand stays the same', () => {
    const first = plan(EU, viewsOf(seen), local);
    const next = planPass({
      config: CONFIG,
      region: EU,
      epoch: E + 1,
      now: at(E + 1, 1000),
      heartbeat: ranThrough(E),
      views: new Map(
        [...viewsOf(seen)].map(([region, view]): [string, PeerView] => [
          region,
          view.known ? { known: true, snapshot: { ...view.snapshot, epoch: E } } : view,
        ]),
      ),
      local: applied(first).map((item) => ({
        ...item,
        state: item.state.counters
          ? { ...item.state, counters: { ...item.state.counters, window: E } }
          : item.state,
      })),
    });
    expect(withoutExpected(next.writes)).toEqual([]);
  });
});
