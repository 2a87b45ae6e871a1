// Quota sync benchmark. Prints, in one run:
//  - allocate() for 10,000 entities x 5 regions, against a baseline taken in the same run: an equal split of
//    the same limits (one division per region);
//  - one sync pass's planning (planPass) over 10,000 entities x 5 regions;
//  - override writes per cycle as a function of the entities whose demand changed;
//  - the hot path's table writes per entity at 1,000 requests/s, by containers, against one write per request;
//  - the seeded simulation: 3 regions, 1,000 entities, 100 windows, one region partitioned for 10 windows,
//    against one global bucket, the clairvoyant allocator, a static equal split and no sync; then how
//    utilisation moves with faster-moving and burstier demand (200 entities).
// Usage: npm run bench:quota  (QUOTA_BENCH_ENTITIES=200 for a quicker simulation; QUOTA_BENCH_ONLY=allocation,
// plan, hot-path or simulation for one part)
import { allocate, type RegionDemand } from '../runtime/quota/allocate';
import { configHash, epochStart, type AllocationConfig } from '../runtime/quota/config';
import { QuotaLimiter } from '../runtime/quota/limiter';
import { planPass, type LocalLimit, type PeerView } from '../runtime/quota/plan';
import type { Snapshot, SnapshotEntry } from '../runtime/quota/snapshot';
import { MemoryLimiterStore } from '../runtime/quota/store';
import { simulateQuota, STRATEGIES, type QuotaSimulationOptions } from '../test/support/quota-simulation';
import { seededRandom } from '../test/support/seeded-random';

const REGIONS = ['ap-southeast-1', 'eu-central-1', 'eu-west-1', 'us-east-1', 'us-west-2'];
const ENTITIES = 10_000;
const random = seededRandom(42);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function timeRounds(rounds: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(times);
}

function allocationBench(): void {
  const inputs = Array.from({ length: ENTITIES }, () => ({
    limit: Math.floor(random() * 1_000_000_000),
    demands: REGIONS.map((region): RegionDemand => ({
      region,
      demand: random() < 0.1 ? 'unknown' : Math.floor(random() * 400_000_000),
      weight: 1 + Math.floor(random() * 3),
    })),
  }));
  let sink = 0;
  const allocateMs = timeRounds(30, () => {
    for (const { limit, demands } of inputs) sink += allocate(limit, demands)['us-east-1'] ?? 0;
  });
  const splitMs = timeRounds(30, () => {
    for (const { limit, demands } of inputs) {
      const total = demands.reduce((sum, d) => sum + (d.weight ?? 1), 0);
      const shares: Record<string, number> = {};
      for (const d of demands) shares[d.region] = Math.floor((limit * (d.weight ?? 1)) / total);
      sink += shares['us-east-1'] ?? 0;
    }
  });
  console.log('allocation, 10,000 entities x 5 regions (median of 30 rounds)');
  console.log(
    `allocate() (water-filling, exact integers)   ${allocateMs.toFixed(1).padStart(7)} ms   goal <= 20 ms`,
  );
  console.log(`baseline: equal split of the same limits     ${splitMs.toFixed(1).padStart(7)} ms`);
  console.log(`ratio allocate/baseline: ${(allocateMs / splitMs).toFixed(1)}x   (checksum ${sink % 997})\n`);
}

const config: AllocationConfig = {
  windowSec: 60,
  activationDelayMs: 2100,
  regions: REGIONS.map((region) => ({ region, weight: 1 })),
  resources: [{ name: 'requests', limit: 100_000, burstSec: 1, floors: [] }],
};
const EPOCH = 29_000_000;

/** Every region's previous-epoch snapshot, from demand per region and entity (milli-units per window). */
function views(demand: (region: number, entity: number) => number): Map<string, PeerView> {
  return new Map(
    REGIONS.map((region, r): [string, PeerView] => {
      const entries: SnapshotEntry[] = [];
      for (let e = 0; e < ENTITIES; e++) {
        const value = demand(r, e);
        if (value > 0)
          entries.push({ entity: `tenant-${e}`, resource: 'requests', consumed: value, demand: value });
      }
      const snapshot: Snapshot = {
        schema: 1,
        region,
        epoch: EPOCH - 1,
        generatedAt: epochStart(config, EPOCH - 1) + 5000,
        configHash: configHash(config),
        config,
        entries,
      };
      return [region, { known: true, snapshot }];
    }),
  );
}

function planBench(): void {
  const base = Array.from({ length: ENTITIES }, () => REGIONS.map(() => Math.floor(random() * 2_000_000)));
  const steady = views((r, e) => base[e]?.[r] ?? 0);
  const now = epochStart(config, EPOCH) + 10_000;
  const region = 'us-east-1';
  const plannedMs = timeRounds(10, () => {
    planPass({
      config,
      region,
      epoch: EPOCH,
      now,
      heartbeat: { epoch: EPOCH - 1, completed: [EPOCH - 1, EPOCH - 2], partial: [], staticCaps: new Map() },
      views: steady,
      local: [],
    });
  });
  console.log(
    `one sync pass's planning, 10,000 entities x 5 regions: ${plannedMs.toFixed(1)} ms (median of 10)\n`,
  );

  // Steady state: the overrides of the last pass applied, as the table would hold them.
  const first = planPass({
    config,
    region,
    epoch: EPOCH,
    now,
    heartbeat: { epoch: EPOCH - 1, completed: [EPOCH - 1, EPOCH - 2], partial: [], staticCaps: new Map() },
    views: steady,
    local: [],
  });
  const local: LocalLimit[] = first.writes.map((w) => ({
    entity: w.entity,
    resource: w.resource,
    state: { sync: { ...w.override, epoch: EPOCH - 1, prior: w.override.share } },
  }));
  console.log(
    'override writes in one pass, by entities whose demand changed (10,000 entities, of 5 regions)',
  );
  console.log('changed   writes   writes/changed');
  for (const changed of [0, 10, 100, 1_000, 10_000]) {
    // A changed entity's demand doubles in its busiest region; the others keep theirs.
    const next = views((r, e) => {
      const demand = base[e]?.[r] ?? 0;
      const busiest = (base[e] ?? []).indexOf(Math.max(...(base[e] ?? [])));
      return e < changed && r === busiest ? demand * 2 : demand;
    });
    const plan = planPass({
      config,
      region,
      epoch: EPOCH,
      now,
      heartbeat: { epoch: EPOCH - 1, completed: [EPOCH - 1, EPOCH - 2], partial: [], staticCaps: new Map() },
      views: next,
      local,
    });
    const per = changed === 0 ? '-' : (plan.writes.length / changed).toFixed(2);
    console.log(
      `${String(changed).padStart(7)}  ${String(plan.writes.length).padStart(7)}   ${per.padStart(6)}`,
    );
  }
  console.log(`baseline: a pass that rewrites every override: ${first.writes.length} writes\n`);
}

async function hotPathBench(): Promise<void> {
  console.log('hot path: one entity at 1,000 requests/s for 10 s (1 ms apart, spread over the containers)');
  console.log('region share    containers   table writes/s   admitted   ratio to one write per request');
  // 5 regions of weight 1: the region's static share is a fifth of the limit.
  for (const [label, limit] of [
    ['1,200/s', 6_000_000],
    ['600/s', 3_000_000],
  ] as const) {
    const hot: AllocationConfig = {
      ...config,
      resources: [{ name: 'requests', limit, burstSec: 1, floors: [] }],
    };
    for (const containers of [1, 4, 16, 64]) {
      let now = epochStart(hot, EPOCH) + 5000;
      const store = new MemoryLimiterStore();
      const limiters = Array.from(
        { length: containers },
        () => new QuotaLimiter({ store, config: hot, region: 'us-east-1', now: () => now, leaseMs: 100 }),
      );
      let admitted = 0;
      for (let i = 0; i < 10_000; i++) {
        now += 1;
        if ((await (limiters[i % containers] as QuotaLimiter).consume('tenant-1', 'requests', 1)).admitted)
          admitted++;
      }
      const perSecond = store.counts.bucketWrites / 10;
      console.log(
        `${label.padEnd(12)} ${String(containers).padStart(13)}   ${perSecond.toFixed(0).padStart(14)}   ${String(admitted).padStart(8)}   ${(perSecond / 1000).toFixed(3)}x`,
      );
    }
  }
  console.log('');
}

const simulation = (
  entities: number,
  overrides: Partial<QuotaSimulationOptions> = {},
): QuotaSimulationOptions => ({
  seed: 7,
  regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'],
  entities,
  windows: 100,
  windowSec: 60,
  tickMs: 1000,
  limitPerSec: 20,
  burstSec: 1,
  partition: { region: 'us-east-1', from: 40, to: 50 },
  leaseMs: 100,
  heartbeatCacheMs: 1000,
  clockMarginMs: 1000,
  containersPerRegion: 2,
  burstChance: 0.02,
  moveEvery: { min: 20, spread: 40 },
  ...overrides,
});

/** Windows before the first allocation can be in force (no snapshot exists yet): left out of one figure. */
const WARM_UP = 3;

async function simulationBench(): Promise<void> {
  const entities = Number(process.env.QUOTA_BENCH_ENTITIES ?? 1000);
  const started = Date.now();
  const result = await simulateQuota(simulation(entities));
  const { strategies } = result;
  const clairvoyant = strategies.clairvoyant;
  const outsideAfterWarmUp = (byWindow: readonly number[]) =>
    byWindow.reduce((sum, value, w) => (w >= WARM_UP && (w < 40 || w >= 50) ? sum + value : sum), 0);
  console.log(
    `simulation: 3 regions, ${entities} entities, 100 windows of 60 s, us-east-1 partitioned in windows 40-49 (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  console.log(
    `demand: home region ~0.3-1.3x the limit, moving every 20-60 windows over 3 windows; 0.01-0.1x elsewhere; 2% bursts of 2-4x`,
  );
  console.log(
    'strategy        over-admitted  windows  utilisation outside (after warm-up)  inside partition  vs one global bucket',
  );
  for (const name of STRATEGIES) {
    const s = strategies[name];
    console.log(
      `${name.padEnd(14)} ${s.overAdmission.toFixed(0).padStart(14)} ${String(s.windowsOverAdmitting).padStart(8)}  ${(s.admittedOutside / clairvoyant.admittedOutside).toFixed(3).padStart(11)} (${(outsideAfterWarmUp(s.byWindow) / outsideAfterWarmUp(clairvoyant.byWindow)).toFixed(3)})${''.padStart(19)}${(s.admittedInside / clairvoyant.admittedInside).toFixed(3).padStart(8)}  ${(s.admittedOutside / strategies.globalBucket.admittedOutside).toFixed(3).padStart(18)}`,
    );
  }
  console.log(
    `largest sum of enforced limits over the global one: ${result.maxEnforcedExcess} milli-units/s; ${result.passes} passes, ${result.overridesWritten} override writes, ${result.bucketWrites} bucket writes for ${result.requests} requests\n`,
  );

  console.log(
    'utilisation (sync / clairvoyant, outside the partition) as demand moves faster and bursts more (200 entities)',
  );
  console.log('moves every        bursts   utilisation   over-admitted');
  for (const [moveEvery, burstChance] of [
    [{ min: 20, spread: 40 }, 0.02],
    [{ min: 20, spread: 40 }, 0.05],
    [{ min: 10, spread: 30 }, 0.02],
    [{ min: 5, spread: 20 }, 0.05],
    [{ min: 1000, spread: 1 }, 0],
  ] as const) {
    const r = await simulateQuota(simulation(200, { moveEvery, burstChance }));
    const label =
      moveEvery.min >= 1000 ? 'never' : `${moveEvery.min}-${moveEvery.min + moveEvery.spread} windows`;
    console.log(
      `${label.padEnd(17)} ${`${burstChance * 100}%`.padStart(6)}   ${(r.strategies.sync.admittedOutside / r.strategies.clairvoyant.admittedOutside).toFixed(3).padStart(11)}   ${r.strategies.sync.overAdmission.toFixed(0).padStart(13)}`,
    );
  }
}

async function main(): Promise<void> {
  const only = process.env.QUOTA_BENCH_ONLY;
  if (!only || only === 'allocation') allocationBench();
  if (!only || only === 'plan') planBench();
  if (!only || only === 'hot-path') await hotPathBench();
  if (!only || only === 'simulation') await simulationBench();
}

void main();
