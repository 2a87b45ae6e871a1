import type { AllocationConfig } from '../runtime/quota/config';
import type { EnvironmentConfig } from './schema';

/** Milli-units per unit: the runtime counts in integers. */
const MILLI = 1000;

/**
 * The allocation config every region of the environment computes under, from its `quota` settings: limits
 * and floors in milli-units per second, regions and resources sorted, and an activation delay covering the
 * hot path's caches and a margin for clocks.
 */
export function allocationConfigOf(env: EnvironmentConfig): AllocationConfig {
  const { quota } = env;
  const byName = <T>(entries: [string, T][]) => entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    windowSec: quota.syncWindowSec,
    activationDelayMs: quota.leaseMs + quota.heartbeatCacheMs + quota.clockMarginMs,
    regions: [...env.regions].sort().map((region) => ({ region, weight: quota.weights[region] ?? 1 })),
    resources: byName(Object.entries(quota.resources)).map(([name, resource]) => ({
      name,
      limit: resource.limitPerSec * MILLI,
      burstSec: resource.burstSec,
      floors: byName(Object.entries(resource.floorsPerSec)).map(([region, floor]) => ({
        region,
        floor: (floor ?? 0) * MILLI,
      })),
    })),
  };
}
