import { RegionalLimit, unitsOf } from '../quota/regional-limit';
import type { ConcurrencyCap } from './dispatch';

/**
 * An organisation's runner cap in the region: the quota sync's allocation for this region of the
 * organisation's global limit of the quota resource `concurrencyResource` (entity = the organisation's
 * login), read as the quota hot path reads its limit (`enforcedLimit` over the limiter item and the sync's
 * heartbeat, so operator values, pending grows, a missed pass and a dead sync all apply alike).
 *
 * Units: a limit of L milli-units per second is floor(L / 1000) runners at once. The global limit of the
 * resource is therefore "runners at once x 1,000" (an organisation allowed 40 runners across the regions
 * has a limit of 40,000).
 *
 * Demand: at every decision the dispatcher records the organisation's runners wanted at once (leases held
 * plus jobs waiting for a slot) and held, with max semantics, into the current window's counters of the same
 * item (quota/regional-limit.ts `recordLevel`): a peak of N runners over a window is a window total of
 * N x windowSec x 1,000, which the sync reads as a per-second demand of N x 1,000, so it allocates the
 * global limit by each region's peak concurrency demand. A lower allocation never stops a running runner:
 * it only refuses new leases until enough end.
 *
 * `recordDemand` answers false when the level could not be written (the limiter item stayed contended after
 * `recordLevel`'s attempts): the dispatcher counts it (`DemandNotRecorded`) and logs it. Nothing else is
 * lost: the next decision records the level again, and a window's max keeps the peak.
 */
export class QuotaConcurrencyCap implements ConcurrencyCap {
  constructor(
    private readonly limits: RegionalLimit,
    private readonly resource: string,
  ) {}

  async capOf(organization: string): Promise<number> {
    return unitsOf((await this.limits.limitOf(organization, this.resource)).limit);
  }

  async recordDemand(
    organization: string,
    level: { readonly wanted: number; readonly held: number },
  ): Promise<boolean> {
    return this.limits.recordLevel(organization, this.resource, level);
  }
}

/** No `concurrencyResource` configured: no per-organisation cap (the region's capacity still applies). */
export const NO_CONCURRENCY_CAP: ConcurrencyCap = {
  capOf: async () => undefined,
  recordDemand: async () => true,
};
