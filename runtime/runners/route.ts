import { runnerTypeFor, type RunnerConfig } from './config';
import {
  SPILL_METRICS,
  type RegionView,
  type RouteDecision,
  type RouteReason,
  type RunPlacement,
  type SpillMetric,
  type WorkflowJob,
} from './model';
import { nextSpilling } from './spillover';

/**
 * Where a queued `workflow_job` runs. Pure and deterministic: the same input gives the same decision (no
 * clock, no randomness, nothing read from the order of `regions`), so two routers that saw the same inputs
 * send a job to the same region.
 *
 * 1. Runner type: the first type whose labels include every label of the job; none: `undefined` (the job
 *    is not this estate's).
 * 2. Home: the repository's region, else the organisation's, else `defaultRegion` (own properties only, so
 *    `__proto__` and `constructor` are names like others; a home that is not a configured region, which only
 *    a hand-built config can hold, falls through to the next rule).
 * 3. Spilling: every configured region's triggers after this look (`nextSpilling`); a configured region
 *    missing from `regions` counts as `out` with zero metrics. Regions that are not configured are ignored.
 * 4. Eligible: status `active`. Draining and out regions take no new jobs, not even jobs of a placed run.
 * 5. Sticky: a placement naming an eligible configured region wins, spilling or not (`sticky`). A placement
 *    naming a region that is not configured is ignored, as if the run had none.
 * 6. Otherwise the first eligible region that is not spilling, home first, then by priority. Reason: `home`;
 *    `spillover:<metric>` when home was eligible but spilling (its first tripped metric); `drained` when the
 *    run's placed region or home was not eligible. A drained placement outranks spillover: sticky beats
 *    spillover, so only the drain moved the run.
 * 7. Every eligible region spilling: home when eligible, else the first eligible region by priority.
 * 8. No eligible region: home, `no-region-eligible` (the job is never dropped: it waits in home's queue).
 */

export interface RouteInput {
  readonly job: WorkflowJob;
  readonly config: RunnerConfig;
  /** Every region as the router read it; a configured region missing here is `out`. */
  readonly regions: ReadonlyMap<string, RegionView>;
  /** Where the job's run went, when an earlier job of the run was routed. */
  readonly placement?: RunPlacement;
}

const NOTHING_TRIPPED: ReadonlySet<SpillMetric> = new Set();

const MISSING: RegionView = {
  status: 'out',
  metrics: { queueDepth: 0, inUse: 0, capacity: 0, dispatched: 0, failed: 0 },
  spilling: NOTHING_TRIPPED,
};

const ownValue = (names: Readonly<Record<string, string>>, name: string): string | undefined =>
  Object.hasOwn(names, name) ? names[name] : undefined;

/** The run's home region under the config rules (always a configured region). */
export function homeRegion(config: RunnerConfig, job: WorkflowJob): string {
  const configured = (region: string | undefined) =>
    region !== undefined && config.regions.some((r) => r.region === region) ? region : undefined;
  return (
    configured(ownValue(config.repositories, job.repository)) ??
    configured(ownValue(config.organizations, job.organization)) ??
    configured(config.defaultRegion) ??
    config.regions[0]?.region ??
    config.defaultRegion
  );
}

const viewOf = (regions: RouteInput['regions'], region: string): RegionView => regions.get(region) ?? MISSING;

function spillingAfter(input: RouteInput): ReadonlyMap<string, ReadonlySet<SpillMetric>> {
  const { config, regions } = input;
  return new Map(
    config.regions.map((settings) => {
      const view = viewOf(regions, settings.region);
      return [
        settings.region,
        nextSpilling(view.spilling, view.metrics, settings, config.minErrorSamples),
      ] as const;
    }),
  );
}

interface Situation {
  readonly home: string;
  /** Configured regions, home first, then by priority. */
  readonly candidates: readonly string[];
  readonly eligible: (region: string) => boolean;
  readonly spilling: ReadonlyMap<string, ReadonlySet<SpillMetric>>;
  /** The run was placed in a configured region that takes no new jobs. */
  readonly placementLeft: boolean;
}

function reasonFor(region: string, s: Situation): RouteReason {
  if (s.placementLeft || !s.eligible(s.home)) return 'drained';
  if (region === s.home) return 'home';
  const tripped = SPILL_METRICS.find((metric) => s.spilling.get(s.home)?.has(metric));
  return tripped ? `spillover:${tripped}` : 'drained';
}

function place(s: Situation): { region: string; reason: RouteReason } {
  const eligible = s.candidates.filter(s.eligible);
  const first = eligible.find((region) => (s.spilling.get(region)?.size ?? 0) === 0) ?? eligible[0];
  if (first === undefined) return { region: s.home, reason: 'no-region-eligible' };
  return { region: first, reason: reasonFor(first, s) };
}

/** The job's region, runner type and reason, with every region's triggers after this look. */
export function routeJob(input: RouteInput): RouteDecision | undefined {
  const { job, config, regions, placement } = input;
  const runnerType = runnerTypeFor(config, job.labels);
  if (!runnerType) return undefined;

  const home = homeRegion(config, job);
  const spilling = spillingAfter(input);
  const names = config.regions.map((r) => r.region);
  const eligible = (region: string) => viewOf(regions, region).status === 'active';
  const decide = (region: string, reason: RouteReason): RouteDecision => ({
    region,
    runnerType: runnerType.name,
    reason,
    home,
    spilling,
  });

  const placed = placement && names.includes(placement.region) ? placement.region : undefined;
  if (placed !== undefined && eligible(placed)) return decide(placed, 'sticky');

  const { region, reason } = place({
    home,
    candidates: [home, ...names.filter((name) => name !== home)],
    eligible,
    spilling,
    placementLeft: placed !== undefined,
  });
  return decide(region, reason);
}
