import { allocate } from './allocate';
import { countIn, type WindowCounters } from './bucket';
import { epochStart, type AllocationConfig, type ResourceLimit } from './config';

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

export interface EnforcementContext {
  readonly config: AllocationConfig;
  readonly region: string;
  readonly resource: ResourceLimit;
  /** The last epoch whose sync pass completed in this region (its heartbeat); undefined before the first. */
  readonly heartbeat: number | undefined;
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
  if (share === undefined) byRegion.shares.set(region, (share = computeDefaultStatic(config, resource, region)));
  return share;
}

/** Default static shares by resource settings (they never change in a process), then by region. */
const staticShares = new WeakMap<ResourceLimit, { config: AllocationConfig; shares: Map<string, number> }>();

function computeDefaultStatic(config: AllocationConfig, resource: ResourceLimit, region: string): number {
  if (!config.regions.some((r) => r.region === region)) return 0;
  const floors = new Map(resource.floors.map((f) => [f.region, f.floor]));
  const shares = allocate(
    resource.limit,
    config.regions.map((r) => ({
      region: r.region,
      demand: 'unknown' as const,
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
 * override, else static config. The rules that keep the regions' sum within the global limit:
 *
 * - a sync override written in epoch e enforces min(prior, share) until (e + 1) windows + the activation
 *   delay, then its share: a shrink is in force at once, a grow once every peer's epoch-e shrink must be;
 * - it stays in force while the sync keeps running: until 3 windows after the window of the last completed
 *   pass (the heartbeat H), after which a dead sync falls back to static config;
 * - from H + 2 windows + the activation delay (a pass was missed or is late, and peers may be enforcing what
 *   they computed from this region's last snapshot), it enforces at most what the region would get with its
 *   own demand as last published (window H - 1) and every peer unknown.
 */
export function enforcedLimit(state: LimitState, context: EnforcementContext, now: number): EnforcedLimit {
  if (state.operator !== undefined) return { limit: state.operator, source: 'operator' };
  const { config, heartbeat } = context;
  const staticLimit = state.static ?? defaultStatic(config, context.resource, context.region);
  if (heartbeat === undefined || now >= epochStart(config, heartbeat + 4))
    return { limit: staticLimit, source: 'static' };

  let enforced: EnforcedLimit = { limit: staticLimit, source: 'static' };
  const sync = state.sync;
  if (sync) {
    const pending = now < epochStart(config, sync.epoch + 1) + config.activationDelayMs;
    enforced = pending
      ? { limit: Math.min(sync.prior, sync.share), source: 'sync-pending' }
      : { limit: sync.share, source: 'sync' };
  }
  if (now >= epochStart(config, heartbeat + 2) + config.activationDelayMs) {
    const published = state.counters
      ? countIn(state.counters.demand, state.counters.window, heartbeat - 1)
      : 0;
    const fallback = shareWithPeersUnknown(context, Math.ceil(published / config.windowSec));
    if (fallback < enforced.limit) enforced = { limit: fallback, source: 'sync-fallback' };
  }
  return enforced;
}
