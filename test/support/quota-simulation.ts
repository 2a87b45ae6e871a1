import { allocate } from '../../runtime/quota/allocate';
import { capacityOf, fullBucket, refill, type BucketState } from '../../runtime/quota/bucket';
import { epochStart, type AllocationConfig } from '../../runtime/quota/config';
import { enforcedLimit } from '../../runtime/quota/enforcement';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import type { SnapshotStore } from '../../runtime/quota/snapshot-store';
import { MemoryLimiterStore } from '../../runtime/quota/store';
import { runSyncPass, type SyncMetrics } from '../../runtime/quota/sync';
import { seededRandom } from './seeded-random';

/**
 * A seeded simulation of the quota sync with no AWS: every region's limiter table in memory, the real hot
 * path (QuotaLimiter, its leases and heartbeat cache) in two containers per region, the real sync pass at
 * its own random moment of every window, snapshots in a shared in-memory store that a partition cuts, and
 * bursty demand that moves between regions. Against it, in the same run: one global token bucket per entity
 * (the reference for over-admission and the clairvoyant allocator's utilisation), a static equal split and
 * no sync (each region enforcing the whole limit).
 */
export interface QuotaSimulationOptions {
  readonly seed: number;
  readonly regions: readonly string[];
  readonly entities: number;
  readonly windows: number;
  readonly windowSec: number;
  /** Requests arrive once per tick per entity and region. */
  readonly tickMs: number;
  /** Global limit of every entity, units per second. */
  readonly limitPerSec: number;
  readonly burstSec: number;
  /** A region that can neither read its peers' snapshots nor be read, for windows [from, to). */
  readonly partition?: { readonly region: string; readonly from: number; readonly to: number };
  readonly leaseMs: number;
  readonly heartbeatCacheMs: number;
  readonly clockMarginMs: number;
  readonly containersPerRegion: number;
  /** Chance, per region and window, that its demand bursts to 2-4x for the window. */
  readonly burstChance: number;
  /** Windows between an entity's home moves: from `min` to `min + spread`. */
  readonly moveEvery: { readonly min: number; readonly spread: number };
}

/**
 * `sync`: this project. `globalBucket`: one token bucket per entity with the global capacity and rate (the
 * bound over-admission is measured against). `clairvoyant`: per-region buckets holding, from the first
 * instant of every window, the allocation of that window's true demand. `staticSplit`: an equal share per
 * region, never changed. `noSync`: every region enforcing the whole limit.
 */
export const STRATEGIES = ['sync', 'globalBucket', 'clairvoyant', 'staticSplit', 'noSync'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface StrategyResult {
  /** Units admitted beyond one global bucket's bound over some interval, summed over entities. */
  readonly overAdmission: number;
  readonly entitiesOverAdmitted: number;
  /** Windows in which some entity was admitted beyond the global bound. */
  readonly windowsOverAdmitting: number;
  /** Admitted in each window. */
  readonly byWindow: readonly number[];
  /** Admitted over the windows outside the partition, and inside it. */
  readonly admittedOutside: number;
  readonly admittedInside: number;
}

export interface QuotaSimulationResult {
  readonly options: QuotaSimulationOptions;
  readonly demanded: number;
  readonly strategies: Readonly<Record<Strategy, StrategyResult>>;
  /** Largest excess (milli-units per second) of the regions' enforced limits over the global one, any instant. */
  readonly maxEnforcedExcess: number;
  readonly passes: number;
  readonly overridesWritten: number;
  readonly bucketWrites: number;
  readonly requests: number;
}

/** Over-admission of one entity against one global token bucket (capacity C, rate R), tick by tick. */
class OverAdmissionMeter {
  private admitted = 0;
  /** min over earlier instants a of (A(a) - R a). */
  private lowest = 0;
  worst = 0;

  constructor(
    private readonly capacity: number,
    private readonly ratePerMs: number,
  ) {}

  /** Adds what was admitted up to `atMs`; returns the excess over the bound for the worst interval ending now. */
  record(amount: number, atMs: number): number {
    this.admitted += amount;
    const level = this.admitted - this.ratePerMs * atMs;
    const excess = level - this.lowest - this.capacity;
    this.lowest = Math.min(this.lowest, level);
    if (excess > this.worst) this.worst = excess;
    return excess;
  }
}

/** A token bucket admitting a request whole or not at all, as the hot path does (baselines, references). */
class Bucket {
  private state: BucketState;

  constructor(
    private rate: number,
    private capacity: number,
  ) {
    this.state = fullBucket(capacity, 0);
  }

  /** Changes the bucket's share: tokens above a smaller capacity are dropped at the next take. */
  resize(rate: number, capacity: number): void {
    this.rate = rate;
    this.capacity = capacity;
  }

  take(amount: number, now: number): boolean {
    this.state = refill(this.state, this.rate, this.capacity, now);
    if (this.state.tokens < amount) return false;
    this.state = { ...this.state, tokens: this.state.tokens - amount };
    return true;
  }
}

/** In-memory snapshot buckets shared by the regions; a partitioned region neither reads nor is read. */
class SimulatedSnapshots implements SnapshotStore {
  constructor(
    private readonly region: string,
    private readonly objects: Map<string, string>,
    private readonly partitioned: () => string | undefined,
  ) {}

  async put(epoch: number, body: string): Promise<'written' | 'exists'> {
    const key = `${this.region}/${epoch}`;
    if (this.objects.has(key)) return 'exists';
    this.objects.set(key, body);
    return 'written';
  }

  async get(region: string, epoch: number): Promise<Uint8Array | undefined> {
    const cut = this.partitioned();
    if (cut !== undefined && region !== this.region && (cut === region || cut === this.region))
      throw new Error('unreachable');
    const body = this.objects.get(`${region}/${epoch}`);
    return body === undefined ? undefined : Buffer.from(body);
  }
}

const quietMetrics: SyncMetrics = {
  peerView: () => undefined,
  snapshotAgeMs: () => undefined,
  decodeFailed: () => undefined,
  unreadableItems: () => undefined,
  planned: () => undefined,
  overridesWritten: () => undefined,
};

/** Windows over which an entity's traffic shifts to its new home (resolvers' caches, clients reconnecting). */
const MOVE_WINDOWS = 3;

interface EntityDemand {
  home: number;
  /** Units per second at home, as a fraction of the limit. */
  level: number;
  /** Units per second of the traffic every region sees anyway, as a fraction of the limit. */
  away: number[];
  /** The home before the last move, and when it started: traffic shifts over MOVE_WINDOWS windows. */
  previous: number;
  movedAt: number;
  nextMove: number;
  /** Units per second by region this window. */
  rates: number[];
}

export async function simulateQuota(options: QuotaSimulationOptions): Promise<QuotaSimulationResult> {
  const random = seededRandom(options.seed);
  const regions = [...options.regions].sort();
  const n = regions.length;
  const limit = options.limitPerSec * 1000;
  const config: AllocationConfig = {
    windowSec: options.windowSec,
    activationDelayMs: options.leaseMs + options.heartbeatCacheMs + options.clockMarginMs,
    regions: regions.map((region) => ({ region, weight: 1 })),
    resources: [{ name: 'requests', limit, burstSec: options.burstSec, floors: [] }],
  };
  const resource = config.resources[0] as AllocationConfig['resources'][number];
  const windowMs = options.windowSec * 1000;
  let now = 0;
  const clock = () => now;
  const partitionAt = (ms: number) => {
    const p = options.partition;
    const window = Math.floor(ms / windowMs);
    return p && window >= p.from && window < p.to ? p.region : undefined;
  };
  // Windows are numbered from the simulation's start; epochs are absolute, far from zero like real ones.
  const firstEpoch = 29_000_000;
  const startMs = epochStart(config, firstEpoch);
  const objects = new Map<string, string>();
  const stores = regions.map(() => new MemoryLimiterStore());
  const containers = regions.map((region, r) =>
    Array.from(
      { length: options.containersPerRegion },
      () =>
        new QuotaLimiter({
          store: stores[r] as MemoryLimiterStore,
          config,
          region,
          now: clock,
          leaseMs: options.leaseMs,
          heartbeatCacheMs: options.heartbeatCacheMs,
        }),
    ),
  );
  const snapshots = regions.map(
    (region) => new SimulatedSnapshots(region, objects, () => partitionAt(now - startMs)),
  );

  const entityIds = Array.from({ length: options.entities }, (_, i) => `tenant-${i}`);
  const demand: EntityDemand[] = entityIds.map(() => ({
    home: Math.floor(random() * n),
    level: 0.4 + random() * 0.8,
    away: Array.from({ length: n }, () => 0.02 + random() * 0.06),
    previous: 0,
    movedAt: -Infinity,
    nextMove: 5 + Math.floor(random() * (options.moveEvery.min + options.moveEvery.spread)),
    rates: new Array<number>(n).fill(0),
  }));
  const capacity = capacityOf(limit, options.burstSec);
  const perEntity = <T>(make: () => T) => entityIds.map(make);
  const perRegion =
    <T>(make: () => T) =>
    () =>
      regions.map(make);
  const split = Math.floor(limit / n);
  const buckets = {
    globalBucket: perEntity(() => new Bucket(limit, capacity)),
    clairvoyant: perEntity(perRegion(() => new Bucket(split, capacityOf(split, options.burstSec)))),
    staticSplit: perEntity(perRegion(() => new Bucket(split, capacityOf(split, options.burstSec)))),
    noSync: perEntity(perRegion(() => new Bucket(limit, capacity))),
  };
  const meters = Object.fromEntries(
    STRATEGIES.map((name) => [name, perEntity(() => new OverAdmissionMeter(capacity, limit / 1000))]),
  ) as Record<Strategy, OverAdmissionMeter[]>;
  const totals = Object.fromEntries(
    STRATEGIES.map((name) => [
      name,
      {
        outside: 0,
        inside: 0,
        windows: new Set<number>(),
        byWindow: new Array<number>(options.windows).fill(0),
      },
    ]),
  ) as Record<Strategy, { outside: number; inside: number; windows: Set<number>; byWindow: number[] }>;
  let demanded = 0;
  let passes = 0;
  let requests = 0;
  let maxEnforcedExcess = 0;
  let overridesWritten = 0;
  let request = 0;

  /** The sum of what the regions enforce for `entity` at `at` (milli-units per second). */
  const enforcedSum = (entity: string, at: number) => {
    let sum = 0;
    for (let r = 0; r < n; r++) {
      const store = stores[r] as MemoryLimiterStore;
      const item = store.items.get(`requests\u0000${entity}`);
      const context = { config, region: regions[r] as string, resource, heartbeat: store.heartbeat };
      sum += enforcedLimit(item ?? {}, context, at).limit;
    }
    return sum;
  };

  const ticksPerWindow = Math.round(windowMs / options.tickMs);
  for (let window = 0; window < options.windows; window++) {
    const windowStart = startMs + window * windowMs;
    // Demand for this window: each entity has a level of its own and a home region that carries most of it;
    // the home moves now and then (at once), the level drifts a little each window, and bursts come and go.
    for (const [e, entity] of demand.entries()) {
      if (window >= entity.nextMove) {
        entity.previous = entity.home;
        entity.home = (entity.home + 1 + Math.floor(random() * (n - 1))) % n;
        entity.movedAt = window;
        entity.nextMove = window + options.moveEvery.min + Math.floor(random() * options.moveEvery.spread);
      }
      const moved = Math.min(1, (window - entity.movedAt + 1) / MOVE_WINDOWS);
      entity.level = Math.min(1.3, Math.max(0.3, entity.level * (0.9 + random() * 0.2)));
      for (let r = 0; r < n; r++) {
        const home = (r === entity.home ? moved : 0) + (r === entity.previous ? 1 - moved : 0);
        const away = (entity.away[r] = Math.min(
          0.1,
          Math.max(0.01, (entity.away[r] ?? 0.05) * (0.9 + random() * 0.2)),
        ));
        const base = home * entity.level + away;
        const burst = random() < options.burstChance ? 2 + random() * 2 : 1;
        entity.rates[r] = base * burst * options.limitPerSec;
      }
      // The clairvoyant allocator: this window's true demand, allocated at once, in force at once.
      const shares = allocate(
        limit,
        regions.map((region, r) => ({ region, demand: Math.ceil((entity.rates[r] ?? 0) * 1000) })),
      );
      regions.forEach((region, r) => {
        const share = shares[region] ?? 0;
        buckets.clairvoyant[e]?.[r]?.resize(share, capacityOf(share, options.burstSec));
      });
    }
    // Each region's sync at its own moment of the window (after a second, before the last one).
    const syncs = regions
      .map((_, r) => ({ r, at: windowStart + 3000 + Math.floor(random() * (windowMs - 4000)) }))
      .sort((a, b) => a.at - b.at);
    const inPartition = partitionAt(window * windowMs) !== undefined;

    for (let tick = 0; tick < ticksPerWindow; tick++) {
      const tickAt = windowStart + tick * options.tickMs;
      while (syncs.length > 0 && (syncs[0]?.at ?? Infinity) <= tickAt) {
        const { r, at } = syncs.shift() as { r: number; at: number };
        now = at;
        const store = stores[r] as MemoryLimiterStore;
        const before = store.counts.overrideWrites;
        await runSyncPass({
          config,
          region: regions[r] as string,
          store,
          snapshots: snapshots[r] as SimulatedSnapshots,
          metrics: quietMetrics,
          now: clock,
          settleMs: 0,
        });
        overridesWritten += store.counts.overrideWrites - before;
        passes++;
        // The instant after a pass: what every region enforces now, for every entity.
        for (const entity of entityIds)
          maxEnforcedExcess = Math.max(maxEnforcedExcess, enforcedSum(entity, now) - limit);
      }
      now = tickAt;
      const elapsedMs = tickAt - startMs;
      for (let e = 0; e < entityIds.length; e++) {
        const entity = entityIds[e] as string;
        const rates = (demand[e] as EntityDemand).rates;
        // The tick's demand per region in up to four requests, taken in turn across regions.
        const queues = regions.map((_, r) => {
          const units = Math.floor(((rates[r] ?? 0) * options.tickMs) / 1000 + random());
          demanded += units;
          const size = Math.max(1, Math.ceil(units / 4));
          const amounts: number[] = [];
          for (let left = units; left > 0; left -= size) amounts.push(Math.min(size, left));
          return amounts;
        });
        const admitted = Object.fromEntries(STRATEGIES.map((name) => [name, 0])) as Record<Strategy, number>;
        for (let turn = 0; queues.some((q) => turn < q.length); turn++) {
          for (let r = 0; r < n; r++) {
            const amount = queues[r]?.[turn];
            if (amount === undefined) continue;
            const milli = amount * 1000;
            const container = (containers[r] as QuotaLimiter[])[request++ % options.containersPerRegion];
            requests++;
            if ((await (container as QuotaLimiter).consume(entity, 'requests', amount)).admitted)
              admitted.sync += amount;
            if (buckets.globalBucket[e]?.take(milli, tickAt)) admitted.globalBucket += amount;
            if (buckets.clairvoyant[e]?.[r]?.take(milli, tickAt)) admitted.clairvoyant += amount;
            if (buckets.staticSplit[e]?.[r]?.take(milli, tickAt)) admitted.staticSplit += amount;
            if (buckets.noSync[e]?.[r]?.take(milli, tickAt)) admitted.noSync += amount;
          }
        }
        maxEnforcedExcess = Math.max(maxEnforcedExcess, enforcedSum(entity, tickAt) - limit);
        for (const name of STRATEGIES) {
          const excess = (meters[name][e] as OverAdmissionMeter).record(admitted[name] * 1000, elapsedMs);
          if (excess > 0) totals[name].windows.add(window);
          totals[name].byWindow[window] = (totals[name].byWindow[window] ?? 0) + admitted[name];
          if (inPartition) totals[name].inside += admitted[name];
          else totals[name].outside += admitted[name];
        }
      }
    }
  }
  const strategy = (name: Strategy): StrategyResult => ({
    overAdmission: meters[name].reduce((sum, m) => sum + m.worst, 0) / 1000,
    entitiesOverAdmitted: meters[name].filter((m) => m.worst > 0).length,
    windowsOverAdmitting: totals[name].windows.size,
    byWindow: totals[name].byWindow,
    admittedOutside: totals[name].outside,
    admittedInside: totals[name].inside,
  });
  return {
    options,
    demanded,
    strategies: Object.fromEntries(STRATEGIES.map((name) => [name, strategy(name)])) as Record<
      Strategy,
      StrategyResult
    >,
    maxEnforcedExcess,
    passes,
    overridesWritten,
    bucketWrites: stores.reduce((sum, s) => sum + s.counts.bucketWrites, 0),
    requests,
  };
}
