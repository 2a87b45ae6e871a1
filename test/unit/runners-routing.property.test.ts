import fc from 'fast-check';
import { parseRunnerConfig, runnerTypeFor, type RunnerConfig } from '../../runtime/runners/config';
import {
  SPILL_METRICS,
  type RegionMetrics,
  type RegionView,
  type RouteDecision,
  type SpillMetric,
  type WorkflowJob,
} from '../../runtime/runners/model';
import { homeRegion, routeJob, type RouteInput } from '../../runtime/runners/route';
import { nextSpilling } from '../../runtime/runners/spillover';

const RUNS = { numRuns: 500 };

const REGION_POOL = ['eu-central-1', 'us-east-1', 'ap-southeast-2', 'eu-west-1', 'us-west-2'];
/** Never configured: a placement or a view may still name it. */
const STRANGER = 'sa-east-1';
const ORGS = ['acme', 'globex', 'constructor', 'initech'];
const JOB_ORGS = [...ORGS, 'nobody', '__proto__', 'hasownproperty'];
const LABELS = ['self-hosted', 'linux', 'x64', 'docker', 'arm64', 'gpu'];

const routedJob: WorkflowJob = {
  action: 'queued',
  jobId: 1,
  runId: 1,
  runAttempt: 1,
  organization: 'nobody',
  repository: 'nobody/app',
  labels: ['self-hosted'],
};

const RUNNER_TYPES = [
  { name: 'standard', labels: ['self-hosted', 'linux', 'x64'] },
  {
    name: 'docker',
    labels: ['self-hosted', 'linux', 'x64', 'docker'],
    launch: 'ec2',
    runnerGroup: 'docker-trusted',
  },
  { name: 'arm', labels: ['self-hosted', 'linux', 'arm64'] },
];

// ---------------------------------------------------------------------------------------------------------
// Arbitraries

/**
 * Whole-number pairs (0 < recover <= spillover: the config refuses a recover of 0 under a spillover above
 * it); the error rate in hundredths.
 */
const thresholdsArb = fc
  .record({
    depth: fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 200 })),
    percent: fc.tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 100 })),
    rate: fc.tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 100 })),
  })
  .map(({ depth, percent, rate }) => ({
    spillover: {
      queueDepth: Math.max(...depth),
      concurrencyPercent: Math.max(...percent),
      errorRate: Math.max(...rate) / 100,
    },
    recover: {
      queueDepth: Math.min(...depth),
      concurrencyPercent: Math.min(...percent),
      errorRate: Math.min(...rate) / 100,
    },
  }));

const configArb: fc.Arbitrary<RunnerConfig> = fc
  .shuffledSubarray(REGION_POOL, { minLength: 1 })
  .chain((regions) =>
    fc.record({
      regions: fc.tuple(
        ...regions.map((region, index) =>
          fc.record({
            region: fc.constant(region),
            priority: fc.constant(index + 1),
            capacity: fc.integer({ min: 1, max: 100 }),
            thresholds: fc.option(thresholdsArb, { nil: undefined }),
          }),
        ),
      ),
      organizations: fc.array(fc.tuple(fc.constantFrom(...ORGS), fc.constantFrom(...regions))),
      repositories: fc.array(
        fc.tuple(fc.constantFrom(...ORGS), fc.constantFrom('app', 'mobile'), fc.constantFrom(...regions)),
      ),
      defaultRegion: fc.option(fc.constantFrom(...regions), { nil: undefined }),
      minErrorSamples: fc.integer({ min: 1, max: 50 }),
    }),
  )
  .map((doc) =>
    parseRunnerConfig({
      // Listed in reverse: the parser sorts by priority.
      regions: [...doc.regions].reverse().map(({ thresholds, ...r }) => ({ ...r, ...(thresholds ?? {}) })),
      organizations: Object.fromEntries(new Map(doc.organizations)),
      repositories: Object.fromEntries(new Map(doc.repositories.map(([o, n, r]) => [`${o}/${n}`, r]))),
      ...(doc.defaultRegion ? { defaultRegion: doc.defaultRegion } : {}),
      runnerTypes: RUNNER_TYPES,
      minErrorSamples: doc.minErrorSamples,
    }),
  );

const jobArb: fc.Arbitrary<WorkflowJob> = fc
  .record({
    organization: fc.constantFrom(...JOB_ORGS),
    name: fc.constantFrom('app', 'mobile', '__proto__'),
    labels: fc.subarray(LABELS, { minLength: 1 }),
    runId: fc.integer({ min: 1, max: 1_000_000 }),
  })
  .map(({ organization, name, labels, runId }) => ({
    action: 'queued' as const,
    jobId: runId * 10,
    runId,
    runAttempt: 1,
    organization,
    repository: `${organization}/${name}`,
    labels,
  }));

/** Counts from a sound source, with now and then a value a broken one sends. */
const countArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1) },
);

const metricsArb: fc.Arbitrary<RegionMetrics> = fc.record({
  queueDepth: countArb,
  inUse: countArb,
  capacity: countArb,
  dispatched: countArb,
  failed: countArb,
});

const calmMetricsArb: fc.Arbitrary<RegionMetrics> = fc.record({
  queueDepth: fc.oneof(fc.integer({ min: 0, max: 150 }), fc.constant(Number.NaN)),
  inUse: fc.integer({ min: 0, max: 100 }),
  capacity: fc.constant(100),
  dispatched: fc.integer({ min: 0, max: 1_000 }),
  failed: fc.integer({ min: 0, max: 20 }),
});

const viewArb: fc.Arbitrary<RegionView> = fc.record({
  status: fc.constantFrom('active' as const, 'draining' as const, 'out' as const),
  metrics: metricsArb,
  spilling: fc.subarray([...SPILL_METRICS]).map((metrics) => new Set(metrics)),
});

const inputArb: fc.Arbitrary<RouteInput> = configArb.chain((config) => {
  const names = config.regions.map((r) => r.region);
  return fc.record({
    job: jobArb,
    config: fc.constant(config),
    regions: fc
      .tuple(
        ...[...names, STRANGER].map((name) =>
          fc.option(viewArb, { nil: undefined, freq: 5 }).map((view) => [name, view] as const),
        ),
      )
      .map((views) => {
        const map = new Map<string, RegionView>();
        for (const [name, view] of views) if (view) map.set(name, view);
        return map;
      }),
    placement: fc.option(fc.record({ region: fc.constantFrom(...names, STRANGER), placedAt: fc.nat() }), {
      nil: undefined,
    }),
  });
});

/** An input whose job always has a runner type (every type has `self-hosted`). */
const routedArb = inputArb.map((input) => ({ ...input, job: { ...input.job, labels: ['self-hosted'] } }));

// ---------------------------------------------------------------------------------------------------------
// Helpers

const summary = (decision: RouteDecision | undefined) =>
  decision && {
    region: decision.region,
    reason: decision.reason,
    runnerType: decision.runnerType,
    home: decision.home,
    spilling: [...decision.spilling].map(([region, tripped]) => [region, [...tripped]]),
  };

/** The same input, rebuilt: views inserted in reverse, fresh sets, a copied job. */
function rebuilt(input: RouteInput): RouteInput {
  const regions = new Map(
    [...input.regions].reverse().map(([name, view]) => [name, { ...view, spilling: new Set(view.spilling) }]),
  );
  return { ...input, job: { ...input.job, labels: [...input.job.labels] }, regions };
}

const configured = (input: RouteInput) => input.config.regions.map((r) => r.region);
const isActive = (input: RouteInput, region: string) =>
  configured(input).includes(region) && input.regions.get(region)?.status === 'active';

// ---------------------------------------------------------------------------------------------------------
// Properties

describe('routeJob properties', () => {
  it('decides the same for the same input, whatever the order of the views', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        expect(summary(routeJob(rebuilt(input)))).toEqual(summary(routeJob(input)));
      }),
      RUNS,
    );
  });

  it('routes every job a runner type takes, to a configured region, with every region evaluated', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const decision = routeJob(input);
        const type = runnerTypeFor(input.config, input.job.labels);
        expect(decision?.runnerType).toBe(type?.name);
        if (!decision) return;
        expect(configured(input)).toContain(decision.region);
        expect(configured(input)).toContain(decision.home);
        expect([...decision.spilling.keys()]).toEqual(configured(input));
      }),
      RUNS,
    );
  });

  it('never picks a region that is not active while some configured region is', () => {
    fc.assert(
      fc.property(routedArb, (input) => {
        const decision = routeJob(input);
        const someActive = configured(input).some((region) => isActive(input, region));
        if (someActive) expect(isActive(input, decision?.region ?? '')).toBe(true);
        else expect(decision?.reason).toBe('no-region-eligible');
      }),
      RUNS,
    );
  });

  it('keeps a run in its placed region whenever that region is active', () => {
    const placedActiveArb = routedArb.chain((input) =>
      fc.tuple(fc.constantFrom(...configured(input)), viewArb).map(([region, view]) => {
        const regions = new Map(input.regions).set(region, { ...view, status: 'active' });
        return { ...input, regions, placement: { region, placedAt: 0 } };
      }),
    );
    fc.assert(
      fc.property(placedActiveArb, (input) => {
        const decision = routeJob(input);
        expect(decision?.region).toBe(input.placement?.region);
        expect(decision?.reason).toBe('sticky');
      }),
      RUNS,
    );
  });

  it('sends a job without placement home whenever home is active and not spilling', () => {
    // Home made active with metrics near its thresholds, so that most runs are not discarded.
    const calmHomeArb = fc.tuple(routedArb, calmMetricsArb).map(([input, metrics]) => {
      const regions = new Map(input.regions);
      regions.set(homeRegion(input.config, input.job), { status: 'active', metrics, spilling: new Set() });
      return { job: input.job, config: input.config, regions };
    });
    fc.assert(
      fc.property(calmHomeArb, (input) => {
        const decision = routeJob(input);
        if (!decision) throw new Error('expected a decision');
        fc.pre(decision.spilling.get(decision.home)?.size === 0);
        expect(decision.region).toBe(decision.home);
        expect(decision.reason).toBe('home');
      }),
      RUNS,
    );
  });

  it('returns a region its own trigger set exactly when the evaluation changed nothing', () => {
    fc.assert(
      fc.property(routedArb, (input) => {
        const decision = routeJob(input);
        for (const settings of input.config.regions) {
          const before = input.regions.get(settings.region)?.spilling ?? new Set<SpillMetric>();
          const after = decision?.spilling.get(settings.region) ?? new Set<SpillMetric>();
          const same = before.size === after.size && [...before].every((m) => after.has(m));
          if (input.regions.has(settings.region)) expect(after === before).toBe(same);
          else expect(after.size).toBe(0);
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Hysteresis: a series that stays between the thresholds never changes what is tripped.

const HOME = 'eu-central-1';
const OTHER = 'us-east-1';

const bandArb = thresholdsArb.chain((t) => {
  // Capacity 100 and 100 dispatches: the percentages and rates are whole hundredths, so exact.
  const stepArb: fc.Arbitrary<RegionMetrics> = fc
    .record({
      queueDepth: fc.integer({ min: t.recover.queueDepth, max: t.spillover.queueDepth }),
      inUse: fc.integer({ min: t.recover.concurrencyPercent, max: t.spillover.concurrencyPercent }),
      failed: fc.integer({
        min: Math.round(t.recover.errorRate * 100),
        max: Math.round(t.spillover.errorRate * 100),
      }),
    })
    .map(({ queueDepth, inUse, failed }) => ({
      queueDepth,
      inUse,
      capacity: 100,
      dispatched: 100 - failed,
      failed,
    }));
  return fc.record({
    thresholds: fc.constant(t),
    tripped: fc.subarray([...SPILL_METRICS]),
    series: fc.array(stepArb, { minLength: 1, maxLength: 30 }),
    minErrorSamples: fc.integer({ min: 1, max: 100 }),
  });
});

describe('spillover hysteresis properties', () => {
  it('never flaps while every metric stays between its recovery and spillover thresholds', () => {
    fc.assert(
      fc.property(bandArb, ({ thresholds, tripped, series, minErrorSamples }) => {
        const config = parseRunnerConfig({
          regions: [
            { region: HOME, priority: 1, capacity: 100, ...thresholds },
            { region: OTHER, priority: 2, capacity: 100 },
          ],
          runnerTypes: RUNNER_TYPES,
          minErrorSamples,
        });
        const quiet: RegionView = {
          status: 'active',
          metrics: { queueDepth: 0, inUse: 0, capacity: 100, dispatched: 0, failed: 0 },
          spilling: new Set(),
        };
        const first: ReadonlySet<SpillMetric> = new Set(tripped);
        let spilling = first;
        const reasons = new Set<string>();
        for (const metrics of series) {
          const regions = new Map([
            [HOME, { status: 'active' as const, metrics, spilling }],
            [OTHER, quiet],
          ]);
          const decision = routeJob({ job: routedJob, config, regions });
          spilling = decision?.spilling.get(HOME) ?? new Set();
          expect(spilling).toBe(first);
          reasons.add(`${decision?.region}:${decision?.reason}`);
        }
        expect(reasons.size).toBe(1);
      }),
      RUNS,
    );
  });

  it('never trips in the band from a clear state, and never clears in the band from a tripped one', () => {
    fc.assert(
      fc.property(bandArb, ({ thresholds, series, minErrorSamples }) => {
        const settings = { region: HOME, priority: 1, capacity: 100, ...thresholds };
        for (const metrics of series) {
          expect(nextSpilling(new Set(), metrics, settings, minErrorSamples).size).toBe(0);
          const all = new Set(SPILL_METRICS);
          expect(nextSpilling(all, metrics, settings, minErrorSamples)).toBe(all);
        }
      }),
      RUNS,
    );
  });
});
