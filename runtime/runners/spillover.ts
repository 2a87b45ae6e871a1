import type { RegionSettings, Thresholds } from './config';
import { SPILL_METRICS, type RegionMetrics, type SpillMetric } from './model';

/**
 * Spillover hysteresis, pure: which of a region's triggers are tripped after one look at its metrics.
 *
 * - A metric trips when its value is strictly over its `spillover` threshold.
 * - A tripped metric stays tripped while its value is at or above its `recover` threshold, and clears below.
 * - Fail safe: a value the source cannot have meant (NaN, Infinity, negative; see the value helpers) trips
 *   nothing new and clears nothing: the region keeps the state it had until a readable value arrives. A
 *   broken metrics source must neither push work out of a healthy region nor pull it back into a busy one.
 *
 * Each metric is judged on its own inputs: a bad queue depth does not freeze the error rate.
 */

const THRESHOLD: Readonly<Record<SpillMetric, keyof Thresholds>> = {
  'queue-depth': 'queueDepth',
  concurrency: 'concurrencyPercent',
  'error-rate': 'errorRate',
};

const isCount = (value: number): boolean => Number.isFinite(value) && value >= 0;

/** Messages waiting in the region's runner queues; NaN when the source gave no usable count. */
export function queueDepthOf(metrics: RegionMetrics): number {
  return isCount(metrics.queueDepth) ? metrics.queueDepth : Number.NaN;
}

/** Runners in use as a percentage of capacity; NaN when a count is unusable or the capacity is 0. */
export function concurrencyOf(metrics: RegionMetrics): number {
  const { inUse, capacity } = metrics;
  if (!isCount(inUse) || !isCount(capacity) || capacity === 0) return Number.NaN;
  // One rounding (not inUse / capacity * 100): 7 of 100 is exactly 7, so a threshold of 7 is not crossed.
  return (inUse * 100) / capacity;
}

/**
 * Failed dispatches over all dispatches, 0 to 1; 0 while the window holds fewer than `minErrorSamples`
 * (one failure of two is no signal); NaN when a count is unusable.
 */
export function errorRateOf(metrics: RegionMetrics, minErrorSamples: number): number {
  const { dispatched, failed } = metrics;
  if (!isCount(dispatched) || !isCount(failed)) return Number.NaN;
  const samples = dispatched + failed;
  return samples < minErrorSamples || samples === 0 ? 0 : failed / samples;
}

/** The value a trigger compares with its thresholds. */
export function metricValue(metric: SpillMetric, metrics: RegionMetrics, minErrorSamples: number): number {
  switch (metric) {
    case 'queue-depth':
      return queueDepthOf(metrics);
    case 'concurrency':
      return concurrencyOf(metrics);
    case 'error-rate':
      return errorRateOf(metrics, minErrorSamples);
  }
}

function trippedAfter(value: number, wasTripped: boolean, settings: RegionSettings, metric: SpillMetric) {
  if (Number.isNaN(value)) return wasTripped;
  const key = THRESHOLD[metric];
  return wasTripped ? value >= settings.recover[key] : value > settings.spillover[key];
}

const sameMembers = (a: ReadonlySet<SpillMetric>, b: ReadonlySet<SpillMetric>): boolean =>
  a.size === b.size && [...a].every((metric) => b.has(metric));

/**
 * The region's tripped triggers after this look, in `SPILL_METRICS` order. When nothing changed it returns
 * `previous` itself, so a caller can tell by identity that there is nothing to write.
 */
export function nextSpilling(
  previous: ReadonlySet<SpillMetric>,
  metrics: RegionMetrics,
  settings: RegionSettings,
  minErrorSamples: number,
): ReadonlySet<SpillMetric> {
  const next = new Set(
    SPILL_METRICS.filter((metric) =>
      trippedAfter(metricValue(metric, metrics, minErrorSamples), previous.has(metric), settings, metric),
    ),
  );
  return sameMembers(previous, next) ? previous : next;
}
