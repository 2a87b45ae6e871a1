import { randomUUID } from 'node:crypto';
import { addToWindow, type WindowCounters } from './bucket';
import { epochOf, resourceOf, type AllocationConfig, type ResourceLimit } from './config';
import { enforcedLimit, type EnforcedLimit, type Heartbeat } from './enforcement';
import { QuotaInputError } from './limiter';
import { isValidEntity } from './snapshot';
import type { LimiterStore } from './store';

/**
 * A quota resource used as a level rather than a rate (runners at once, connections open): the region's
 * allocation of an entity's global limit, read exactly as the hot path reads it, and the entity's peak
 * level recorded into the item's window counters so the sync allocates by it.
 *
 * Units: a level of N is N x 1,000 milli-units per second. The sync turns a window total T into a
 * per-second demand ceil(T / windowSec) (enforcement.ts `demandPerSecond`), so a peak of N over a window is
 * recorded as the total N x windowSec x 1,000, with max semantics: a window's counter only ever rises to the
 * highest level seen in it, whatever the number of writes. `consumed` is the level actually held, never
 * above the level wanted (the snapshot's rule).
 */

/** The peak levels to record, in whole units (runners). */
export interface Level {
  /** What the entity wanted at once: held plus waiting. */
  readonly wanted: number;
  /** What it held at once. */
  readonly held: number;
}

export interface RegionalLimitOptions {
  readonly store: LimiterStore;
  readonly config: AllocationConfig;
  readonly region: string;
  readonly now?: () => number;
  /** How long the sync's heartbeat is trusted before it is read again, ms. Default: 1,000. */
  readonly heartbeatCacheMs?: number;
  /** Conditional-write attempts before a contended counter write gives up. Default: 5. */
  readonly maxAttempts?: number;
  /** Days an idle item with no limit on it is kept. Default: 30. */
  readonly idleDays?: number;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Largest level recorded: its window total stays a safe integer for every window of at most a day. */
const MAX_LEVEL = 1_000_000;

/** Counters moved on to `window`, with the window's demand and consumption raised to at least `atLeast`. */
export function raiseWindow(
  counters: WindowCounters | undefined,
  window: number,
  atLeast: { readonly demand: number; readonly consumed: number },
): WindowCounters {
  const moved = addToWindow(counters, window, { demand: 0, consumed: 0 });
  const demand = [...moved.demand];
  const consumed = [...moved.consumed];
  demand[0] = Math.max(demand[0] ?? 0, atLeast.demand);
  consumed[0] = Math.max(consumed[0] ?? 0, Math.min(atLeast.consumed, demand[0]));
  return { window: moved.window, demand, consumed };
}

/** The whole units a limit of `limit` milli-units per second allows at once. */
export const unitsOf = (limit: number): number => Math.floor(limit / 1000);

export class RegionalLimit {
  private heartbeat: { readonly value: Heartbeat | undefined; readonly readAt: number } | undefined;
  private readonly now: () => number;

  constructor(private readonly options: RegionalLimitOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The limit in force for `entity` (milli-units per second), as `QuotaLimiter.consume` enforces it. */
  async limitOf(entity: string, resource: string): Promise<EnforcedLimit> {
    const settings = this.settings(entity, resource);
    const now = this.now();
    const [item, heartbeat] = await Promise.all([
      this.options.store.read(entity, resource),
      this.heartbeatAt(now),
    ]);
    const { config, region } = this.options;
    return enforcedLimit(item ?? {}, { config, region, resource: settings, heartbeat }, now);
  }

  /**
   * Raises the current window's counters of `entity` to `level` (max semantics, see above), conditional on
   * the version read. False when the item stayed contended: the next call records the level again.
   */
  async recordLevel(entity: string, resource: string, level: Level): Promise<boolean> {
    this.settings(entity, resource);
    const { config, store } = this.options;
    const wanted = Math.min(MAX_LEVEL, Math.max(0, Math.floor(level.wanted)));
    const held = Math.min(wanted, Math.max(0, Math.floor(level.held)));
    const total = (units: number) => units * config.windowSec * 1000;
    const attempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const now = this.now();
      const item = await store.read(entity, resource);
      const counters = raiseWindow(item?.counters, epochOf(config, now), {
        demand: total(wanted),
        consumed: total(held),
      });
      const holdsLimit = item && (item.operator ?? item.static ?? item.sync) !== undefined;
      const written = await store.writeBucket({
        entity,
        resource,
        expectedVersion: item?.version,
        // No token bucket is spent for a level: a bucket already there is kept as it is.
        bucket: item?.bucket ?? { tokens: 0, refilledAt: now },
        counters,
        trip: randomUUID(),
        expiresAtSec: holdsLimit
          ? undefined
          : Math.floor(now / 1000) + (this.options.idleDays ?? 30) * 86_400,
      });
      if (written) return true;
      if (attempt < attempts)
        await (this.options.sleep ?? defaultSleep)(
          Math.floor((this.options.random ?? Math.random)() * Math.min(200, 10 * 2 ** attempt)),
        );
    }
    return false;
  }

  private settings(entity: string, resource: string): ResourceLimit {
    if (typeof entity !== 'string' || !isValidEntity(entity))
      throw new QuotaInputError(
        'entity',
        'expected 1-512 UTF-8 bytes without control characters, not starting with #',
      );
    const settings = resourceOf(this.options.config, resource);
    if (!settings) throw new QuotaInputError('resource', 'expected a resource of the allocation config');
    return settings;
  }

  private async heartbeatAt(now: number): Promise<Heartbeat | undefined> {
    const cacheMs = this.options.heartbeatCacheMs ?? 1000;
    if (!this.heartbeat || now - this.heartbeat.readAt >= cacheMs || now < this.heartbeat.readAt)
      this.heartbeat = { value: await this.options.store.readHeartbeat(), readAt: now };
    return this.heartbeat.value;
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
