import { allocate, type RegionDemand } from './allocate';
import { capacityOf, countIn } from './bucket';
import { configHash, resourceOf, type AllocationConfig, type ResourceLimit } from './config';
import {
  defaultStatic,
  demandPerSecond,
  enforcedLimit,
  staticLimitOf,
  type Heartbeat,
  type LimitState,
  type SyncOverride,
} from './enforcement';
import type { Snapshot, SnapshotEntry } from './snapshot';

/** The ADR's triggers: a grow is written when the share drifts this far from the one in force... */
export const DRIFT_TRIGGER = 0.15;
/** ...or when the bucket would run dry within this many windows at the last window's demand. */
export const EXHAUSTION_WINDOWS = 2;

/** A table item as the sync reads it. */
export interface LocalLimit {
  readonly entity: string;
  readonly resource: string;
  readonly state: LimitState;
}

/** What a region's previous-epoch snapshot told this pass: its entries, or why its demand is unknown. */
export type PeerView =
  | { readonly known: true; readonly snapshot: Snapshot }
  | { readonly known: false; readonly reason: 'missing' | 'stale' | 'undecodable' | 'unreachable' };

export interface PassInput {
  readonly config: AllocationConfig;
  readonly region: string;
  /** The epoch this pass runs in; allocations come from every region's snapshot of `epoch - 1`. */
  readonly epoch: number;
  readonly now: number;
  /** The region's completed passes, as read before this one. */
  readonly heartbeat: Heartbeat | undefined;
  /** Every region of `config`, this one included, by region. */
  readonly views: ReadonlyMap<string, PeerView>;
  readonly local: readonly LocalLimit[];
}

export interface OverrideWrite {
  readonly entity: string;
  readonly resource: string;
  readonly override: SyncOverride;
  /** The epoch of the override this write replaces, as read (undefined: none). */
  readonly expectedEpoch: number | undefined;
  readonly kind: 'shrink' | 'grow';
}

/** An override to remove (no demand anywhere): conditional on the one read. */
export interface OverrideRelease {
  readonly entity: string;
  readonly resource: string;
  readonly expectedEpoch: number;
}

export interface PassPlan {
  readonly writes: readonly OverrideWrite[];
  readonly releases: readonly OverrideRelease[];
  /** Per resource, this region's least default static share under every config in sight. */
  readonly staticCaps: ReadonlyMap<string, number>;
  /** Entities and resources computed. */
  readonly computed: number;
  /** Sum of this region's shares, milli-units per second, by resource. */
  readonly shareByResource: ReadonlyMap<string, number>;
  /** Grows the triggers held back. */
  readonly heldBack: number;
  /** Entities whose operator value is in force here (their override is kept current beneath it). */
  readonly operatorHeld: number;
  /** Sum over entities of what operator values in force put the regions' limits above the global one. */
  readonly operatorExcess: number;
  /** What the regions consumed in the last reported window beyond one global bucket's bound, milli-units. */
  readonly overAdmission: number;
  /** Configurations the pass computed under (more than one while a change rolls out). */
  readonly configs: number;
}

const keyOf = (entity: string, resource: string) => `${resource}\u0000${entity}`;

interface ConfigView {
  readonly config: AllocationConfig;
  /** Per resource: weights and floors by region, in the config's region order. */
  readonly resources: ReadonlyMap<
    string,
    { readonly limit: ResourceLimit; readonly floors: Map<string, number> }
  >;
}

function indexConfig(config: AllocationConfig): ConfigView {
  return {
    config,
    resources: new Map(
      config.resources.map((r) => [
        r.name,
        { limit: r, floors: new Map(r.floors.map((f) => [f.region, f.floor])) },
      ]),
    ),
  };
}

/**
 * One sync pass's decisions, pure: every region's share of every entity and resource seen in the previous
 * epoch's snapshots (or holding an override here), computed under every configuration in sight (the
 * smallest wins), and the overrides to write: every shrink at once, a grow only when triggered, never over
 * an operator value.
 */
export function planPass(input: PassInput): PassPlan {
  const { config, region, epoch, now, heartbeat } = input;
  const windowSec = config.windowSec;
  const entriesOf = new Map<string, Map<string, SnapshotEntry>>();
  const ownHash = configHash(config);
  const configs = new Map<string, ConfigView>([[ownHash, indexConfig(config)]]);
  for (const [peer, view] of input.views) {
    if (!view.known) continue;
    const entries = new Map<string, SnapshotEntry>();
    for (const entry of view.snapshot.entries) entries.set(keyOf(entry.entity, entry.resource), entry);
    entriesOf.set(peer, entries);
    if (!configs.has(view.snapshot.configHash))
      configs.set(view.snapshot.configHash, indexConfig(view.snapshot.config));
  }

  const local = new Map<string, LocalLimit>();
  for (const item of input.local) local.set(keyOf(item.entity, item.resource), item);
  const keys = new Map<string, { entity: string; resource: string }>();
  for (const entries of entriesOf.values())
    for (const e of entries.values())
      keys.set(keyOf(e.entity, e.resource), { entity: e.entity, resource: e.resource });
  for (const [key, item] of local)
    if (item.state.sync) keys.set(key, { entity: item.entity, resource: item.resource });

  const writes: OverrideWrite[] = [];
  const releases: OverrideRelease[] = [];
  const shareByResource = new Map<string, number>();
  let heldBack = 0;
  let operatorHeld = 0;
  let operatorExcess = 0;
  let overAdmission = 0;

  for (const [key, { entity, resource: name }] of keys) {
    const resource = resourceOf(config, name);
    if (!resource) continue;
    const ownShares = sharesUnder(configs.get(ownHash) as ConfigView, name, key, input.views, entriesOf);
    let share = ownShares?.[region] ?? 0;
    for (const view of configs.values()) {
      if (view.config === config) continue;
      const shares = sharesUnder(view, name, key, input.views, entriesOf);
      // A config without the resource cannot consume it anywhere; one without this region gives it nothing.
      if (shares) share = Math.min(share, shares[region] ?? 0);
    }
    shareByResource.set(name, (shareByResource.get(name) ?? 0) + share);

    let consumedEverywhere = 0;
    let operatorSum = 0;
    let anyOperator = false;
    const state = local.get(key)?.state ?? {};
    for (const r of config.regions) {
      const entry = entriesOf.get(r.region)?.get(key);
      consumedEverywhere += entry?.consumed ?? 0;
      const operator = r.region === region ? state.operator : entry?.operator;
      anyOperator ||= operator !== undefined;
      operatorSum += operator ?? ownShares?.[r.region] ?? 0;
    }
    overAdmission += Math.max(
      0,
      consumedEverywhere - (resource.limit * windowSec + capacityOf(resource.limit, resource.burstSec)),
    );

    if (anyOperator) operatorExcess += Math.max(0, operatorSum - resource.limit);
    // An operator's value wins in the hot path, but the override under it is kept current: removing the
    // operator's value must never bring back one the passes stopped maintaining.
    if (state.operator !== undefined) operatorHeld++;
    const own: LimitState = { ...state, operator: undefined };
    const context = { config, region, resource, heartbeat };
    const enforced = enforcedLimit(own, context, now).limit;
    const staticLimit = staticLimitOf(own, context);
    // What will be in force once pending grows land: the override, even one no completed pass stands behind.
    const target = state.sync ? state.sync.share : staticLimit;
    const override: SyncOverride = { epoch, prior: enforced, share };
    const idleEverywhere = config.regions.every(
      (r) => input.views.get(r.region)?.known === true && !entriesOf.get(r.region)?.has(key),
    );
    if (
      state.sync &&
      idleEverywhere &&
      state.operator === undefined &&
      state.static === undefined &&
      enforced === state.sync.share &&
      staticLimit <= enforced
    ) {
      // No demand anywhere and every region seen: the override goes, and static (no more than it) applies.
      releases.push({ entity, resource: name, expectedEpoch: state.sync.epoch });
    } else if (share < enforced || share < target) {
      writes.push({ entity, resource: name, override, expectedEpoch: state.sync?.epoch, kind: 'shrink' });
    } else if (share > target) {
      const demand = state.counters
        ? demandPerSecond(countIn(state.counters.demand, state.counters.window, epoch - 1), windowSec)
        : 0;
      const drifted = share > target * (1 + DRIFT_TRIGGER);
      const runsDry =
        demand > target &&
        capacityOf(target, resource.burstSec) <= (demand - target) * EXHAUSTION_WINDOWS * windowSec;
      if (drifted || runsDry)
        writes.push({ entity, resource: name, override, expectedEpoch: state.sync?.epoch, kind: 'grow' });
      else heldBack++;
    }
  }
  return {
    writes,
    releases,
    staticCaps: new Map(
      config.resources.map((r) => [
        r.name,
        Math.min(
          ...[...configs.values()].map((view) => {
            // A config without the resource cannot consume it at all: it does not bound the others.
            const theirs = view.resources.get(r.name);
            return theirs ? defaultStatic(view.config, theirs.limit, region) : Infinity;
          }),
        ),
      ]),
    ),
    computed: keys.size,
    shareByResource,
    heldBack,
    operatorHeld,
    operatorExcess,
    overAdmission,
    configs: configs.size,
  };
}

/** Every region's share of one entity and resource under one configuration; undefined if it has no such resource. */
function sharesUnder(
  configView: ConfigView,
  resource: string,
  key: string,
  views: ReadonlyMap<string, PeerView>,
  entriesOf: ReadonlyMap<string, ReadonlyMap<string, SnapshotEntry>>,
): Record<string, number> | undefined {
  const settings = configView.resources.get(resource);
  if (!settings) return undefined;
  const demands: RegionDemand[] = configView.config.regions.map((r) => {
    const known = views.get(r.region)?.known === true;
    const view = views.get(r.region);
    const total = entriesOf.get(r.region)?.get(key)?.demand ?? 0;
    const windowSec = view?.known ? view.snapshot.config.windowSec : 1;
    return {
      region: r.region,
      demand: known ? Math.min(demandPerSecond(total, windowSec), settings.limit.limit) : 'unknown',
      weight: r.weight,
      floor: settings.floors.get(r.region) ?? 0,
    };
  });
  return allocate(settings.limit.limit, demands);
}
