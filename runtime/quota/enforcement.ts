import { allocate } from './allocate';
import { countIn, type WindowCounters } from './bucket';
import { epochOf, epochStart, type AllocationConfig, type ResourceLimit } from './config';

/** A share the sync wrote: in force from its epoch, growing only once every peer's shrink must be in force. */
export interface SyncOverride {
  /** The epoch it was computed in. */
  readonly epoch: number;
  /** What was in force when it was written: a grow waits at this value until it may take effect. */
  readonly prior: number;
  /** The region's share for `epoch`, milli-units per second. */
  readonly share: number;
}

/** What the region's table holds about one entity and resource's limit. */
export interface LimitState {
  /** Written by an operator: wins over everything (outside the sum guarantee; reported as excess). */
  readonly operator?: number;
  /** Written by an operator: the region's fallback when no sync override is in force. */
  readonly static?: number;
  readonly sync?: SyncOverride;
  readonly counters?: WindowCounters;
}

export type LimitSource = 'operator' | 'sync' | 'sync-pending' | 'sync-fallback' | 'static';

export interface EnforcedLimit {
  /** Milli-units per second. */
  readonly limit: number;
  readonly source: LimitSource;
}

/** The region's sync passes that completed: the latest, and the epochs of the last few. */
export interface Heartbeat {
  readonly epoch: number;
  /** The latest completed epochs, newest first (at most HEARTBEAT_HISTORY). */
  readonly completed: readonly number[];
  /** Those of `completed` that ran with some region's snapshot unknown: they computed only what they saw. */
  readonly partial: readonly number[];
  /**
   * Per resource, the smallest default static share of this region under every config the last pass saw
   * (a config rolling out region by region): static config never goes above it.
   */
  readonly staticCaps: ReadonlyMap<string, number>;
}

/** Completed epochs a heartbeat remembers: enough to tell whether the two before the current one ran. */
export const HEARTBEAT_HISTORY = 3;

/** The heartbeat after a pass of `epoch` completed. */
export function nextHeartbeat(
  previous: Heartbeat | undefined,
  epoch: number,
  pass: { readonly partial: boolean; readonly staticCaps: ReadonlyMap<string, number> } = {
    partial: false,
    staticCaps: new Map(),
  },
): Heartbeat {
  // A pass that ends after a later one has completed is not recorded: the later one planned without what it
  // wrote, so what it wrote must not take effect (see enforcedLimit).
  if (previous && epoch < previous.epoch) return previous;
  const completed = [...new Set([epoch, ...(previous?.completed ?? [])])]
    .sort((a, b) => b - a)
    .slice(0, HEARTBEAT_HISTORY);
  const earlier = (previous?.partial ?? []).filter((e) => e !== epoch);
  const partial = (pass.partial ? [epoch, ...earlier] : earlier).filter((e) => completed.includes(e));
  const newest = completed[0] === epoch;
  return {
    epoch: completed[0] ?? epoch,
    completed,
    partial,
    staticCaps: newest || !previous ? pass.staticCaps : previous.staticCaps,
  };
}

export interface EnforcementContext {
  readonly config: AllocationConfig;
  readonly region: string;
  readonly resource: ResourceLimit;
  /** The region's completed sync passes; undefined before the first. */
  readonly heartbeat: Heartbeat | undefined;
}

/**
 * The region's share when every region's demand is unknown: the default static limit. It is the least the
 * region can get in any view, so regions falling back to it (all at once, or some while the others see them
 * as unknown) never sum past the limit.
 */
export function defaultStatic(config: AllocationConfig, resource: ResourceLimit, region: string): number {
  let byRegion = staticShares.get(resource);
  if (byRegion?.config !== config) staticShares.set(resource, (byRegion = { config, shares: new Map() }));
  let share = byRegion.shares.get(region);
  if (share === undefined)
    byRegion.shares.set(region, (share = computeDefaultStatic(config, resource, region)));
  return share;
}

/** Default static shares by resource settings (they never change in a process), then by region. */
const staticShares = new WeakMap<ResourceLimit, { config: AllocationConfig; shares: Map<string, number> }>();

function computeDefaultStatic(config: AllocationConfig, resource: ResourceLimit, region: string): number {
  // The least of the share with every demand unknown and the share with every demand nil (the slack split
  // by weight, which floors do not enter): a region that never computed an entity stays within what its
  // peers gave it when they computed the entity with its demand unknown, or with no demand at all.
  return Math.min(shareWhen(config, resource, region, 'unknown'), shareWhen(config, resource, region, 0));
}

function shareWhen(
  config: AllocationConfig,
  resource: ResourceLimit,
  region: string,
  demand: 'unknown' | 0,
): number {
  if (!config.regions.some((r) => r.region === region)) return 0;
  const floors = new Map(resource.floors.map((f) => [f.region, f.floor]));
  const shares = allocate(
    resource.limit,
    config.regions.map((r) => ({
      region: r.region,
      demand,
      weight: r.weight,
      floor: floors.get(r.region) ?? 0,
    })),
  );
  return shares[region] ?? 0;
}

/**
 * The region's own share when every peer's demand is unknown and its own is `demand`: what it may enforce
 * after missing a sync pass, whatever the peers computed from the snapshots it published before.
 */
export function shareWithPeersUnknown(context: EnforcementContext, demand: number): number {
  const { config, resource, region } = context;
  if (!config.regions.some((r) => r.region === region)) return 0;
  const floors = new Map(resource.floors.map((f) => [f.region, f.floor]));
  const shares = allocate(
    resource.limit,
    config.regions.map((r) => ({
      region: r.region,
      demand: r.region === region ? Math.min(demand, resource.limit) : ('unknown' as const),
      weight: r.weight,
      floor: floors.get(r.region) ?? 0,
    })),
  );
  return shares[region] ?? 0;
}

/**
 * The limit the region enforces at `now` (milli-units per second): operator config, else an unexpired sync
 * override, else static config. Time is cut into intervals I_E = [start of epoch E + activation delay, the
 * same in E + 1): during I_E every region enforces at most its share of epoch E - 1, all computed from the
 * snapshots of epoch E - 2, so their sum stays within the limit:
 *
 * - a sync override written in epoch e enforces min(prior, share) until I_(e + 1) begins, then its share: a
 *   shrink is in force at once, a grow once every peer's epoch-e shrink must be;
 * - when the pass of E - 1 did not complete (missed, late, failed), the region never computed its share of
 *   E - 1, which its peers enforce theirs against: it enforces at most what it gets with every peer unknown
 *   and its own demand as it published it for them (window E - 3; unbounded if it published nothing); the
 *   same holds for an entity with no override after a pass that could not read every region's snapshot;
 * - static config is the least of the region's shares with every demand unknown and with none, under every
 *   config the last pass saw;
 * - overrides stay in force while the sync runs: until 3 windows after the window of the last completed
 *   pass, after which a dead sync falls back to static config.
 */
export function enforcedLimit(state: LimitState, context: EnforcementContext, now: number): EnforcedLimit {
  if (state.operator !== undefined) return { limit: state.operator, source: 'operator' };
  const { config, heartbeat } = context;
  const staticLimit = staticLimitOf(state, context);
  if (heartbeat === undefined || now >= epochStart(config, heartbeat.epoch + 4))
    return { limit: staticLimit, source: 'static' };

  let enforced: EnforcedLimit = { limit: staticLimit, source: 'static' };
  const sync = state.sync;
  if (sync) {
    // Written by a pass that never completed although a later one did (it stalled past it): only what
    // it shrank stands.
    const abandoned =
      !heartbeat.completed.includes(sync.epoch) &&
      sync.epoch < heartbeat.epoch &&
      sync.epoch >= (heartbeat.completed.at(-1) ?? heartbeat.epoch);
    const pending = abandoned || now < epochStart(config, sync.epoch + 1) + config.activationDelayMs;
    enforced = pending
      ? { limit: Math.min(sync.prior, sync.share), source: 'sync-pending' }
      : { limit: sync.share, source: 'sync' };
  }
  const interval = epochOf(config, now - config.activationDelayMs);
  const missed = !heartbeat.completed.includes(interval - 1);
  // A pass that could not read some region computed only the entities it saw: one it holds no override for
  // may have been computed by its peers with this region's demand as published, so it gets no more than
  // that demand earns with every peer unknown.
  const unseen = !missed && heartbeat.partial.includes(interval - 1) && !sync;
  if (missed || unseen) {
    // Published in the snapshot of `interval - 2` if that pass completed; otherwise peers saw this region as
    // unknown, and any demand is consistent with their view.
    const published = heartbeat.completed.includes(interval - 2);
    const counters = state.counters;
    const demand = !published
      ? context.resource.limit
      : counters
        ? demandPerSecond(countIn(counters.demand, counters.window, interval - 3), config.windowSec)
        : 0;
    const fallback = shareWithPeersUnknown(context, demand);
    if (fallback < enforced.limit) enforced = { limit: fallback, source: 'sync-fallback' };
  }
  return enforced;
}

/** Static config: the operator's `static`, else the default share, capped as the last pass recorded. */
export function staticLimitOf(state: LimitState, context: EnforcementContext): number {
  if (state.static !== undefined) return state.static;
  const own = defaultStatic(context.config, context.resource, context.region);
  const cap = context.heartbeat?.staticCaps.get(context.resource.name);
  return cap === undefined ? own : Math.min(own, cap);
}

/** A window's total (milli-units) as the per-second demand the allocation takes. */
export function demandPerSecond(windowTotal: number, windowSec: number): number {
  return Math.ceil(windowTotal / windowSec);
}
