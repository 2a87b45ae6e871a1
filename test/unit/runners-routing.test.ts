import { parseRunnerConfig, type RegionSettings, type RunnerConfig } from '../../runtime/runners/config';
import type {
  RegionMetrics,
  RegionStatus,
  RegionView,
  RouteDecision,
  RouteReason,
  SpillMetric,
  WorkflowJob,
} from '../../runtime/runners/model';
import { homeRegion, routeJob } from '../../runtime/runners/route';
import {
  concurrencyOf,
  errorRateOf,
  metricValue,
  nextSpilling,
  queueDepthOf,
} from '../../runtime/runners/spillover';

const EU = 'eu-central-1';
const US = 'us-east-1';
const AP = 'ap-southeast-2';
/** A region no configuration here names. */
const SA = 'sa-east-1';

/**
 * Regions listed out of priority order (the parser sorts them: EU, US, AP); names in mixed case (the parser
 * lower-cases them). Default thresholds: spill over 100 messages, 80 %, 5 %; recover under 50, 40 %, 2.5 %;
 * the error rate counts from 10 dispatches.
 */
const BASE_DOCUMENT: Readonly<Record<string, unknown>> = {
  regions: [
    { region: US, priority: 2, capacity: 50 },
    { region: AP, priority: 3, capacity: 50 },
    { region: EU, priority: 1, capacity: 50 },
  ],
  organizations: { Acme: US, constructor: AP },
  repositories: { 'ACME/Mobile': AP, 'solo/tool': US },
  runnerTypes: [
    { name: 'standard', labels: ['self-hosted', 'Linux', 'x64'] },
    {
      name: 'docker',
      labels: ['self-hosted', 'linux', 'x64', 'docker'],
      launch: 'ec2',
      runnerGroup: 'docker-trusted',
    },
    { name: 'arm', labels: ['self-hosted', 'linux', 'arm64'] },
  ],
};

const QUIET: RegionMetrics = { queueDepth: 0, inUse: 0, capacity: 50, dispatched: 0, failed: 0 };

const JOB: WorkflowJob = {
  action: 'queued',
  jobId: 1,
  runId: 10,
  runAttempt: 1,
  organization: 'nobody',
  repository: 'nobody/app',
  labels: ['self-hosted', 'linux', 'x64'],
};

interface ViewSpec {
  readonly status?: RegionStatus;
  readonly metrics?: Partial<RegionMetrics>;
  readonly spilling?: readonly SpillMetric[];
}

interface Expected {
  readonly region: string;
  readonly reason: RouteReason;
  readonly runnerType: string;
  readonly home?: string;
  /** Tripped triggers after the evaluation, for the regions named. */
  readonly spilling?: Readonly<Record<string, readonly SpillMetric[]>>;
}

interface Case {
  readonly name: string;
  /** Merged over BASE_DOCUMENT, key by key. */
  readonly document?: Readonly<Record<string, unknown>>;
  /** Copy the home maps into plain objects (with a prototype), as a hand-built config would hold them. */
  readonly plainMaps?: boolean;
  readonly job?: Partial<WorkflowJob>;
  /** Per region, over an active and quiet view; `missing` leaves the region out of the views. */
  readonly views?: Readonly<Record<string, ViewSpec | 'missing'>>;
  readonly placement?: string;
  readonly expected: Expected | 'not-ours';
}

function configOf(c: Pick<Case, 'document' | 'plainMaps'>): RunnerConfig {
  const config = parseRunnerConfig({ ...BASE_DOCUMENT, ...c.document });
  if (!c.plainMaps) return config;
  return { ...config, organizations: { ...config.organizations }, repositories: { ...config.repositories } };
}

function viewsOf(config: RunnerConfig, specs: Case['views'] = {}): Map<string, RegionView> {
  const names = [...config.regions.map((r) => r.region), ...Object.keys(specs)];
  const views = new Map<string, RegionView>();
  for (const name of new Set(names)) {
    const spec = specs[name] ?? {};
    if (spec === 'missing') continue;
    views.set(name, {
      status: spec.status ?? 'active',
      metrics: { ...QUIET, ...spec.metrics },
      spilling: new Set(spec.spilling ?? []),
    });
  }
  return views;
}

function route(c: Case): { config: RunnerConfig; decision: RouteDecision | undefined } {
  const config = configOf(c);
  const decision = routeJob({
    job: { ...JOB, ...c.job },
    config,
    regions: viewsOf(config, c.views),
    ...(c.placement ? { placement: { region: c.placement, placedAt: 1_700_000_000_000 } } : {}),
  });
  return { config, decision };
}

const loaded = (metrics: Partial<RegionMetrics>): ViewSpec => ({ metrics });
const DEEP_QUEUE = { queueDepth: 101 };
const ROUTED = { runnerType: 'standard' } as const;

const CASES: readonly Case[] = [
  // Homes.
  {
    name: 'an organisation goes to its home region',
    job: { organization: 'acme', repository: 'acme/web' },
    expected: { ...ROUTED, region: US, reason: 'home', home: US },
  },
  {
    name: 'a repository override wins over its organisation',
    job: { organization: 'acme', repository: 'acme/mobile' },
    expected: { ...ROUTED, region: AP, reason: 'home', home: AP },
  },
  {
    name: 'a repository override applies without its organisation configured',
    job: { organization: 'solo', repository: 'solo/tool' },
    expected: { ...ROUTED, region: US, reason: 'home', home: US },
  },
  {
    name: 'another repository of an organisation with an override lives at the organisation home',
    job: { organization: 'solo', repository: 'solo/other' },
    expected: { ...ROUTED, region: EU, reason: 'home', home: EU },
  },
  {
    name: 'an unconfigured organisation lives in the default region, the first by priority',
    expected: { ...ROUTED, region: EU, reason: 'home', home: EU },
  },
  {
    name: 'an explicit default region applies to unconfigured organisations',
    document: { defaultRegion: AP },
    expected: { ...ROUTED, region: AP, reason: 'home', home: AP },
  },
  {
    name: 'names configured in mixed case match the lower-cased names of a job',
    document: { organizations: { 'ACME-Corp': AP }, repositories: { 'Other/Repo.JS': US } },
    job: { organization: 'acme-corp', repository: 'acme-corp/web' },
    expected: { ...ROUTED, region: AP, reason: 'home', home: AP },
  },
  {
    name: 'a mixed-case repository override matches the lower-cased repository',
    document: { repositories: { 'Other/Repo.JS': US } },
    job: { organization: 'other', repository: 'other/repo.js' },
    expected: { ...ROUTED, region: US, reason: 'home', home: US },
  },
  // Outside names that are prototype members.
  {
    name: '__proto__ as organisation and repository reads no prototype member',
    plainMaps: true,
    job: { organization: '__proto__', repository: '__proto__' },
    expected: { ...ROUTED, region: EU, reason: 'home', home: EU },
  },
  {
    name: 'an unconfigured organisation named like a prototype member lives in the default region',
    plainMaps: true,
    document: { organizations: {} },
    job: { organization: 'constructor', repository: 'constructor/hasownproperty' },
    expected: { ...ROUTED, region: EU, reason: 'home', home: EU },
  },
  {
    name: 'an organisation configured as constructor goes to its own home',
    plainMaps: true,
    job: { organization: 'constructor', repository: 'constructor/app' },
    expected: { ...ROUTED, region: AP, reason: 'home', home: AP },
  },
  // Labels.
  {
    name: 'a subset of a type labels selects the type',
    job: { labels: ['self-hosted', 'linux'] },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'the first matching type wins when several match',
    job: { labels: ['x64', 'self-hosted', 'linux'] },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'a label only a later type has selects that type',
    job: { labels: ['self-hosted', 'docker'] },
    expected: { runnerType: 'docker', region: EU, reason: 'home' },
  },
  {
    name: 'labels configured in mixed case match lower-cased job labels',
    document: { runnerTypes: [{ name: 'gpu', labels: ['Self-Hosted', 'GPU'] }] },
    job: { labels: ['gpu'] },
    expected: { runnerType: 'gpu', region: EU, reason: 'home' },
  },
  {
    name: 'a label no type has is not this estate job',
    job: { labels: ['ubuntu-latest'] },
    expected: 'not-ours',
  },
  {
    name: 'labels split across two types select neither',
    job: { labels: ['self-hosted', 'x64', 'arm64'] },
    expected: 'not-ours',
  },
  {
    name: 'a job of an unroutable label is not routed even with a placement',
    job: { labels: ['windows'] },
    placement: US,
    expected: 'not-ours',
  },
  // Sticky runs.
  {
    name: 'a placed run stays in its region',
    placement: US,
    expected: { ...ROUTED, region: US, reason: 'sticky', home: EU },
  },
  {
    name: 'a run placed at home is sticky there',
    placement: EU,
    expected: { ...ROUTED, region: EU, reason: 'sticky' },
  },
  {
    name: 'a run placed in a spilling region stays (sticky beats spillover)',
    placement: US,
    views: { [US]: loaded({ queueDepth: 500, inUse: 50 }) },
    expected: { ...ROUTED, region: US, reason: 'sticky', spilling: { [US]: ['queue-depth', 'concurrency'] } },
  },
  {
    name: 'a run placed in a draining region moves home with reason drained',
    placement: US,
    views: { [US]: { status: 'draining' } },
    expected: { ...ROUTED, region: EU, reason: 'drained' },
  },
  {
    name: 'a run placed in an out region moves home with reason drained',
    placement: US,
    views: { [US]: { status: 'out' } },
    expected: { ...ROUTED, region: EU, reason: 'drained' },
  },
  {
    name: 'a run placed in a region missing from the views moves (it counts as out)',
    placement: US,
    views: { [US]: 'missing' },
    expected: { ...ROUTED, region: EU, reason: 'drained' },
  },
  {
    name: 'a run placed in a drained region, home spilling, moves on with reason drained',
    placement: US,
    views: { [US]: { status: 'draining' }, [EU]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: AP, reason: 'drained' },
  },
  {
    name: 'a placement naming an unconfigured region is ignored',
    placement: SA,
    views: { [SA]: { status: 'active' } },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'a placement naming an unconfigured region does not hold a job at a spilling home',
    placement: SA,
    views: { [SA]: { status: 'active' }, [EU]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: US, reason: 'spillover:queue-depth' },
  },
  // Spillover per metric.
  {
    name: 'a queue over its depth threshold spills to the next region by priority',
    views: { [EU]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: US, reason: 'spillover:queue-depth', spilling: { [EU]: ['queue-depth'] } },
  },
  {
    name: 'a queue exactly at its depth threshold does not spill',
    views: { [EU]: loaded({ queueDepth: 100 }) },
    expected: { ...ROUTED, region: EU, reason: 'home', spilling: { [EU]: [] } },
  },
  {
    name: 'concurrency over its threshold spills (41 of 50 is 82 %)',
    views: { [EU]: loaded({ inUse: 41 }) },
    expected: { ...ROUTED, region: US, reason: 'spillover:concurrency' },
  },
  {
    name: 'concurrency exactly at its threshold does not spill (40 of 50 is 80 %)',
    views: { [EU]: loaded({ inUse: 40 }) },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'an error rate over its threshold spills (10 of 100)',
    views: { [EU]: loaded({ dispatched: 90, failed: 10 }) },
    expected: { ...ROUTED, region: US, reason: 'spillover:error-rate' },
  },
  {
    name: 'an error rate exactly at its threshold does not spill (5 of 100)',
    views: { [EU]: loaded({ dispatched: 95, failed: 5 }) },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'failures under the minimum of samples never trip the error rate (9 of 9)',
    views: { [EU]: loaded({ dispatched: 0, failed: 9 }) },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'failures at the minimum of samples trip the error rate (10 of 10)',
    views: { [EU]: loaded({ dispatched: 0, failed: 10 }) },
    expected: { ...ROUTED, region: US, reason: 'spillover:error-rate' },
  },
  {
    name: 'a configured minimum of samples applies (10 of 19 is under 20)',
    document: { minErrorSamples: 20 },
    views: { [EU]: loaded({ dispatched: 9, failed: 10 }) },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'a configured threshold applies',
    document: {
      organizations: {},
      repositories: {},
      regions: [
        {
          region: EU,
          priority: 1,
          capacity: 50,
          spillover: { queueDepth: 10, concurrencyPercent: 80, errorRate: 0.05 },
        },
        { region: US, priority: 2, capacity: 50 },
      ],
    },
    views: { [EU]: loaded({ queueDepth: 11 }) },
    expected: { ...ROUTED, region: US, reason: 'spillover:queue-depth' },
  },
  {
    name: 'with several metrics tripped the reason names the first (concurrency before error rate)',
    views: { [EU]: loaded({ inUse: 50, dispatched: 0, failed: 10 }) },
    expected: {
      ...ROUTED,
      region: US,
      reason: 'spillover:concurrency',
      spilling: { [EU]: ['concurrency', 'error-rate'] },
    },
  },
  {
    name: 'spillover skips a draining region',
    views: { [EU]: loaded(DEEP_QUEUE), [US]: { status: 'draining' } },
    expected: { ...ROUTED, region: AP, reason: 'spillover:queue-depth' },
  },
  {
    name: 'spillover skips a region missing from the views',
    views: { [EU]: loaded(DEEP_QUEUE), [US]: 'missing' },
    expected: { ...ROUTED, region: AP, reason: 'spillover:queue-depth' },
  },
  {
    name: 'spillover skips a region that spills too',
    views: { [EU]: loaded(DEEP_QUEUE), [US]: loaded({ inUse: 45 }) },
    expected: { ...ROUTED, region: AP, reason: 'spillover:queue-depth' },
  },
  {
    name: 'a home other than the first region spills to the first by priority',
    job: { organization: 'acme', repository: 'acme/mobile' },
    views: { [AP]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: EU, reason: 'spillover:queue-depth', home: AP },
  },
  {
    name: 'a region still tripped from the last look spills while between its thresholds',
    views: { [EU]: { metrics: { queueDepth: 70 }, spilling: ['queue-depth'] } },
    expected: { ...ROUTED, region: US, reason: 'spillover:queue-depth' },
  },
  {
    name: 'a region tripped on the last look comes home below its recovery threshold',
    views: { [EU]: { metrics: { queueDepth: 49 }, spilling: ['queue-depth'] } },
    expected: { ...ROUTED, region: EU, reason: 'home', spilling: { [EU]: [] } },
  },
  // Drained and out homes.
  {
    name: 'a draining home sends a new run to the next region by priority',
    views: { [EU]: { status: 'draining' } },
    expected: { ...ROUTED, region: US, reason: 'drained' },
  },
  {
    name: 'a home missing from the views counts as out',
    views: { [EU]: 'missing' },
    expected: { ...ROUTED, region: US, reason: 'drained' },
  },
  {
    name: 'a drained home skips a spilling next region',
    views: { [EU]: { status: 'out' }, [US]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: AP, reason: 'drained' },
  },
  {
    name: 'a status the source misspelt counts as not active',
    views: { [EU]: { status: 'ACTIVE' as RegionStatus } },
    expected: { ...ROUTED, region: US, reason: 'drained' },
  },
  // Everything spilling, nothing eligible.
  {
    name: 'with every region spilling a job stays at an active home',
    job: { organization: 'acme', repository: 'acme/web' },
    views: { [EU]: loaded(DEEP_QUEUE), [US]: loaded(DEEP_QUEUE), [AP]: loaded({ inUse: 50 }) },
    expected: { ...ROUTED, region: US, reason: 'home' },
  },
  {
    name: 'with every eligible region spilling and home drained the first eligible by priority takes it',
    job: { organization: 'acme', repository: 'acme/web' },
    views: { [US]: { status: 'draining' }, [EU]: loaded(DEEP_QUEUE), [AP]: loaded(DEEP_QUEUE) },
    expected: { ...ROUTED, region: EU, reason: 'drained', home: US },
  },
  {
    name: 'with no eligible region a job waits at home',
    job: { organization: 'acme', repository: 'acme/web' },
    views: { [EU]: { status: 'draining' }, [US]: { status: 'out' }, [AP]: 'missing' },
    expected: { ...ROUTED, region: US, reason: 'no-region-eligible' },
  },
  {
    name: 'with no eligible region a placed run waits at home too',
    placement: AP,
    views: { [EU]: { status: 'out' }, [US]: { status: 'out' }, [AP]: { status: 'draining' } },
    expected: { ...ROUTED, region: EU, reason: 'no-region-eligible' },
  },
  {
    name: 'the last region drained keeps its jobs waiting there',
    document: { regions: [{ region: US, priority: 1, capacity: 5 }], organizations: {}, repositories: {} },
    views: { [US]: { status: 'draining' } },
    expected: { ...ROUTED, region: US, reason: 'no-region-eligible', home: US },
  },
  {
    name: 'an active region that is not configured never takes a job',
    views: { [EU]: { status: 'out' }, [US]: { status: 'out' }, [AP]: { status: 'out' }, [SA]: {} },
    expected: { ...ROUTED, region: EU, reason: 'no-region-eligible' },
  },
  // Values a broken metrics source may send.
  {
    name: 'a NaN queue depth trips nothing new',
    views: { [EU]: loaded({ queueDepth: Number.NaN }) },
    expected: { ...ROUTED, region: EU, reason: 'home', spilling: { [EU]: [] } },
  },
  {
    name: 'a NaN queue depth keeps a tripped queue depth tripped',
    views: { [EU]: { metrics: { queueDepth: Number.NaN }, spilling: ['queue-depth'] } },
    expected: { ...ROUTED, region: US, reason: 'spillover:queue-depth', spilling: { [EU]: ['queue-depth'] } },
  },
  {
    name: 'a capacity of 0 (infinite concurrency) trips nothing new',
    views: { [EU]: loaded({ inUse: 5, capacity: 0 }) },
    expected: { ...ROUTED, region: EU, reason: 'home' },
  },
  {
    name: 'an infinite in-use count keeps a tripped concurrency tripped',
    views: { [EU]: { metrics: { inUse: Number.POSITIVE_INFINITY }, spilling: ['concurrency'] } },
    expected: { ...ROUTED, region: US, reason: 'spillover:concurrency' },
  },
  {
    name: 'a negative failure count neither trips nor clears the error rate',
    views: { [EU]: { metrics: { dispatched: 5, failed: -5 }, spilling: ['error-rate'] } },
    expected: { ...ROUTED, region: US, reason: 'spillover:error-rate', spilling: { [EU]: ['error-rate'] } },
  },
  {
    name: 'a bad queue depth does not hold a recovered concurrency tripped',
    views: { [EU]: { metrics: { queueDepth: -1, inUse: 10 }, spilling: ['concurrency'] } },
    expected: { ...ROUTED, region: EU, reason: 'home', spilling: { [EU]: [] } },
  },
];

describe('routeJob', () => {
  it('has a routing table of at least 30 distinct cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  test.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const { config, decision } = route(c);
    if (c.expected === 'not-ours') {
      expect(decision).toBeUndefined();
      return;
    }
    const { spilling, home, ...rest } = c.expected;
    expect(decision).toMatchObject(rest);
    if (home !== undefined) expect(decision?.home).toBe(home);
    expect([...(decision?.spilling.keys() ?? [])]).toEqual(config.regions.map((r) => r.region));
    for (const [region, tripped] of Object.entries(spilling ?? {}))
      expect([...(decision?.spilling.get(region) ?? ['(none)'])]).toEqual(tripped);
  });

  it('hands back each region own trigger set when an evaluation changed nothing', () => {
    const config = configOf({});
    const regions = viewsOf(config, {
      [EU]: { metrics: { queueDepth: 70 }, spilling: ['queue-depth'] },
      [US]: { status: 'draining' },
    });
    const decision = routeJob({ job: JOB, config, regions });
    for (const [region, view] of regions) expect(decision?.spilling.get(region)).toBe(view.spilling);
  });

  it('reads the home rules the same way homeRegion reports them', () => {
    const config = configOf({});
    expect(homeRegion(config, { ...JOB, organization: 'acme', repository: 'acme/mobile' })).toBe(AP);
    expect(homeRegion(config, { ...JOB, organization: 'acme', repository: 'acme/web' })).toBe(US);
    expect(homeRegion(config, JOB)).toBe(EU);
  });

  it('reads home rules from own properties only', () => {
    const config = configOf({});
    const inherited = Object.create({ acme: AP }) as Record<string, string>;
    const hand: RunnerConfig = { ...config, organizations: inherited, repositories: inherited };
    expect(homeRegion(hand, { ...JOB, organization: 'acme', repository: 'acme/web' })).toBe(EU);
  });

  it('lets a home that is not configured fall through to the default (hand-built configs)', () => {
    const config = configOf({});
    const broken: RunnerConfig = { ...config, organizations: { acme: SA }, defaultRegion: SA };
    expect(homeRegion(broken, { ...JOB, organization: 'acme' })).toBe(EU);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Hysteresis over a metric series: each look carries the last decision's triggers forward.

interface Step {
  /** EU (the job's home) metrics at this look. */
  readonly metrics: Partial<RegionMetrics>;
  readonly region: string;
  readonly reason: RouteReason;
}

interface Series {
  readonly name: string;
  readonly placement?: string;
  readonly steps: readonly Step[];
}

const home = (metrics: Partial<RegionMetrics>): Step => ({ metrics, region: EU, reason: 'home' });
const away = (metrics: Partial<RegionMetrics>, metric: SpillMetric): Step => ({
  metrics,
  region: US,
  reason: `spillover:${metric}`,
});

const SERIES: readonly Series[] = [
  {
    name: 'queue depth: leaves over 100, stays down to 50, returns under 50',
    steps: [
      home({ queueDepth: 0 }),
      home({ queueDepth: 100 }),
      away({ queueDepth: 101 }, 'queue-depth'),
      away({ queueDepth: 100 }, 'queue-depth'),
      away({ queueDepth: 75 }, 'queue-depth'),
      away({ queueDepth: 50 }, 'queue-depth'),
      home({ queueDepth: 49 }),
      home({ queueDepth: 75 }),
      home({ queueDepth: 100 }),
      away({ queueDepth: 250 }, 'queue-depth'),
      home({ queueDepth: 0 }),
    ],
  },
  {
    name: 'concurrency: leaves over 80 %, stays down to 40 %, returns under 40 %',
    steps: [
      home({ inUse: 40 }),
      away({ inUse: 41 }, 'concurrency'),
      away({ inUse: 30 }, 'concurrency'),
      away({ inUse: 20 }, 'concurrency'),
      home({ inUse: 19 }),
      home({ inUse: 40 }),
    ],
  },
  {
    name: 'error rate: leaves over 5 %, stays down to 2.5 %, returns under it or under the minimum of samples',
    steps: [
      home({ dispatched: 95, failed: 5 }),
      away({ dispatched: 94, failed: 6 }, 'error-rate'),
      away({ dispatched: 97, failed: 3 }, 'error-rate'),
      away({ dispatched: 195, failed: 5 }, 'error-rate'),
      home({ dispatched: 199, failed: 1 }),
      away({ dispatched: 0, failed: 10 }, 'error-rate'),
      home({ dispatched: 5, failed: 4 }),
    ],
  },
  {
    name: 'a broken source in the middle of a spill changes nothing until it reads again',
    steps: [
      away({ queueDepth: 150 }, 'queue-depth'),
      away({ queueDepth: Number.NaN }, 'queue-depth'),
      away({ queueDepth: -3 }, 'queue-depth'),
      home({ queueDepth: 10 }),
      home({ queueDepth: Number.POSITIVE_INFINITY }),
    ],
  },
  {
    name: 'the reason follows the first tripped metric as metrics trip and clear',
    steps: [
      away({ inUse: 45 }, 'concurrency'),
      away({ inUse: 45, queueDepth: 120 }, 'queue-depth'),
      away({ inUse: 10, queueDepth: 120 }, 'queue-depth'),
      away({ inUse: 10, queueDepth: 60, failed: 10 }, 'queue-depth'),
      away({ inUse: 10, queueDepth: 10, failed: 10 }, 'error-rate'),
      home({ failed: 0, dispatched: 100 }),
    ],
  },
  {
    name: 'a placed run stays sticky through a spill of its region',
    placement: EU,
    steps: [
      { metrics: { queueDepth: 0 }, region: EU, reason: 'sticky' },
      { metrics: { queueDepth: 500 }, region: EU, reason: 'sticky' },
      { metrics: { queueDepth: 60 }, region: EU, reason: 'sticky' },
    ],
  },
];

describe('routeJob over a metric series', () => {
  test.each(SERIES.map((s) => [s.name, s] as const))('%s', (_name, series) => {
    const config = configOf({});
    let spilling: ReadonlyMap<string, ReadonlySet<SpillMetric>> = new Map();
    const seen = series.steps.map((step) => {
      const regions = viewsOf(config, {});
      regions.set(EU, { status: 'active', metrics: { ...QUIET, ...step.metrics }, spilling: new Set() });
      for (const [region, view] of regions)
        regions.set(region, { ...view, spilling: spilling.get(region) ?? new Set() });
      const decision = routeJob({
        job: JOB,
        config,
        regions,
        ...(series.placement ? { placement: { region: series.placement, placedAt: 0 } } : {}),
      });
      spilling = decision?.spilling ?? new Map();
      return { region: decision?.region, reason: decision?.reason };
    });
    expect(seen).toEqual(series.steps.map(({ region, reason }) => ({ region, reason })));
  });
});

// ---------------------------------------------------------------------------------------------------------
// The hysteresis itself.

const SETTINGS: RegionSettings = {
  region: EU,
  priority: 1,
  capacity: 50,
  spillover: { queueDepth: 100, concurrencyPercent: 80, errorRate: 0.05 },
  recover: { queueDepth: 50, concurrencyPercent: 40, errorRate: 0.025 },
};
const metricsOf = (m: Partial<RegionMetrics>): RegionMetrics => ({ ...QUIET, ...m });
/** Metrics whose three values sit between their recovery and spillover thresholds. */
const BETWEEN = metricsOf({ queueDepth: 75, inUse: 30, dispatched: 96, failed: 4 });
const OVER = metricsOf({ queueDepth: 101, inUse: 41, dispatched: 94, failed: 6 });
const UNDER = metricsOf({ queueDepth: 49, inUse: 19, dispatched: 98, failed: 2 });
const ALL: readonly SpillMetric[] = ['queue-depth', 'concurrency', 'error-rate'];

describe('nextSpilling', () => {
  it('trips every metric over its spillover threshold, in the order of SPILL_METRICS', () => {
    expect([...nextSpilling(new Set(), OVER, SETTINGS, 10)]).toEqual(ALL);
  });

  it('trips nothing between the thresholds and clears everything under recovery', () => {
    expect(nextSpilling(new Set(), BETWEEN, SETTINGS, 10).size).toBe(0);
    expect(nextSpilling(new Set(ALL), UNDER, SETTINGS, 10).size).toBe(0);
  });

  it('keeps tripped metrics between the thresholds and returns the same set', () => {
    const previous = new Set(ALL);
    expect(nextSpilling(previous, BETWEEN, SETTINGS, 10)).toBe(previous);
    const none = new Set<SpillMetric>();
    expect(nextSpilling(none, BETWEEN, SETTINGS, 10)).toBe(none);
  });

  it('returns a new set when a metric changed, leaving the previous one as it was', () => {
    const previous = new Set<SpillMetric>(['error-rate', 'queue-depth']);
    const next = nextSpilling(previous, metricsOf({ queueDepth: 75, inUse: 45 }), SETTINGS, 10);
    expect(next).not.toBe(previous);
    expect([...next]).toEqual(['queue-depth', 'concurrency']);
    expect([...previous]).toEqual(['error-rate', 'queue-depth']);
  });

  it('returns a new set when the previous one held a name that is no metric', () => {
    const previous = new Set(['queue-depth', 'disk'] as SpillMetric[]);
    const next = nextSpilling(previous, BETWEEN, SETTINGS, 10);
    expect([...next]).toEqual(['queue-depth']);
  });

  it('with recovery equal to spillover, trips over the threshold and clears under it', () => {
    const flat: RegionSettings = { ...SETTINGS, recover: SETTINGS.spillover };
    const at = metricsOf({ queueDepth: 100 });
    expect(nextSpilling(new Set(), at, flat, 10).has('queue-depth')).toBe(false);
    expect(nextSpilling(new Set(['queue-depth']), at, flat, 10).has('queue-depth')).toBe(true);
    expect(nextSpilling(new Set(['queue-depth']), metricsOf({ queueDepth: 99 }), flat, 10).size).toBe(0);
  });

  const BAD = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1];
  const BREAKS: readonly [SpillMetric, keyof RegionMetrics, Partial<RegionMetrics>][] = [
    ['queue-depth', 'queueDepth', {}],
    ['concurrency', 'inUse', {}],
    ['concurrency', 'capacity', {}],
    ['error-rate', 'dispatched', { failed: 50 }],
    ['error-rate', 'failed', { dispatched: 50 }],
  ];
  const BAD_CASES = BREAKS.flatMap(([metric, field, rest]) =>
    BAD.map((bad) => [metric, field, bad, rest] as const),
  );

  test.each(BAD_CASES)('%s with %s %p trips nothing new and keeps a trip', (metric, field, bad, rest) => {
    const metrics = metricsOf({ ...UNDER, ...rest, [field]: bad });
    expect(nextSpilling(new Set(), metrics, SETTINGS, 10).has(metric)).toBe(false);
    expect(nextSpilling(new Set([metric]), metrics, SETTINGS, 10).has(metric)).toBe(true);
    expect(metricValue(metric, metrics, 10)).toBeNaN();
  });

  it('judges each metric on its own inputs', () => {
    const metrics = metricsOf({ ...UNDER, queueDepth: Number.NaN, failed: 20, dispatched: 0 });
    const next = nextSpilling(new Set(['queue-depth', 'concurrency']), metrics, SETTINGS, 10);
    expect([...next]).toEqual(['queue-depth', 'error-rate']);
  });
});

describe('spillover metric values', () => {
  it('reads the queue depth as given', () => {
    expect(queueDepthOf(metricsOf({ queueDepth: 42 }))).toBe(42);
  });

  it('reads concurrency as a percentage of capacity', () => {
    expect(concurrencyOf(metricsOf({ inUse: 41, capacity: 50 }))).toBe(82);
    expect(concurrencyOf(metricsOf({ inUse: 7, capacity: 100 }))).toBe(7);
    expect(concurrencyOf(metricsOf({ inUse: 60, capacity: 50 }))).toBe(120);
    expect(concurrencyOf(metricsOf({ inUse: 0, capacity: 0 }))).toBeNaN();
  });

  it('reads the error rate, 0 under the minimum of samples', () => {
    expect(errorRateOf(metricsOf({ dispatched: 90, failed: 10 }), 10)).toBe(0.1);
    expect(errorRateOf(metricsOf({ dispatched: 0, failed: 9 }), 10)).toBe(0);
    expect(errorRateOf(metricsOf({ dispatched: 0, failed: 10 }), 10)).toBe(1);
    expect(errorRateOf(metricsOf({ dispatched: 0, failed: 0 }), 0)).toBe(0);
  });
});
