import * as z from 'zod/mini';
import { PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';

/**
 * The runner control plane's configuration, the same in every region (the environment's `runners` block,
 * passed to its functions as `RUNNERS_CONFIG` and validated at synth by this code):
 *
 * ```json
 * {
 *   "regions": [
 *     { "region": "eu-central-1", "priority": 1, "capacity": 50 },
 *     { "region": "us-east-1", "priority": 2, "capacity": 50,
 *       "spillover": { "queueDepth": 100, "concurrencyPercent": 80, "errorRate": 0.05 },
 *       "recover": { "queueDepth": 50, "concurrencyPercent": 60, "errorRate": 0.02 } }
 *   ],
 *   "organizations": { "acme": "eu-central-1" },
 *   "repositories": { "acme/mobile": "us-east-1" },
 *   "runnerTypes": [
 *     { "name": "standard", "labels": ["self-hosted", "linux", "x64"], "launch": "fargate-spot" },
 *     { "name": "docker", "labels": ["self-hosted", "linux", "x64", "docker"], "launch": "ec2" }
 *   ]
 * }
 * ```
 *
 * - `regions`: 1 to 10, each once, with a distinct `priority` (1 first): spillover goes to the next region
 *   by priority. `capacity` is how many runners the region runs at once. A region leaves (spills) when a
 *   metric goes over its `spillover` threshold and comes back once every tripped metric is under its
 *   `recover` one (defaults: the seed's 100 messages, 80 %, 5 %; recovery at half of each). A recovery
 *   threshold above its spillover threshold is refused, and so is 0 where the spillover threshold is not
 *   (nothing is below 0: the region would never come back).
 * - `organizations` / `repositories`: home regions by owner login and by `owner/name` (case-insensitive;
 *   a repository wins over its organisation). Anything else lives in `defaultRegion` (default: the first
 *   region by priority).
 * - `runnerTypes`: a job goes to the first type whose `labels` include every label of its `runs-on`
 *   (case-insensitive, as GitHub matches runners); a job no type matches is not this estate's. `launch`:
 *   `fargate`, `fargate-spot` (interruptible, for jobs that can be retried) or `ec2` (the only one that
 *   can run Docker: Fargate cannot).
 * - Durations are seconds; `maxBodyBytes` bounds a webhook's body (default 1 MiB).
 */

export const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d$/;
/** GitHub logins: 1-39 of letters, digits and single hyphens, not at either end (lower-cased here). */
export const LOGIN = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}$/;
/** A repository name: 1-100 of letters, digits, `.`, `-`, `_`. */
export const REPOSITORY = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}\/[a-z0-9._-]{1,100}$/;
const RUNNER_TYPE_NAME = /^[a-z][a-z0-9-]{0,30}$/;
/** A GitHub runner group's name. */
// eslint-disable-next-line no-control-regex -- control characters are what the rule refuses
const RUNNER_GROUP = /^[^\u0000-\u001f\u007f]{1,100}$/;
/** Every organisation's first runner group (id 1), open to all its repositories unless restricted. */
export const DEFAULT_RUNNER_GROUP = 'Default';
/** Labels GitHub accepts on a runner (lower-cased): 1-100 printable characters without commas. */
// eslint-disable-next-line no-control-regex -- control characters are what the rule refuses
const LABEL = /^[^\s,\u0000-\u001f]{1,100}$/;

export type Launch = 'fargate' | 'fargate-spot' | 'ec2';

export interface Thresholds {
  /** Messages waiting in the region's runner queues. */
  readonly queueDepth: number;
  /** Runners in use as a percentage of the region's capacity. */
  readonly concurrencyPercent: number;
  /** Failed dispatches over all dispatches in the recent window, 0 to 1. */
  readonly errorRate: number;
}

export interface RegionSettings {
  readonly region: string;
  readonly priority: number;
  readonly capacity: number;
  readonly spillover: Thresholds;
  readonly recover: Thresholds;
}

export interface RunnerType {
  readonly name: string;
  /** Lower-cased; a job's labels must all be among them. */
  readonly labels: readonly string[];
  readonly launch: Launch;
  /** Task size (Fargate's valid pairs are checked at synth by the construct). */
  readonly cpu: number;
  readonly memoryMiB: number;
  /**
   * The GitHub runner group (by name, in each organisation) its runners join. Labels do not restrict which
   * repositories' jobs a runner takes (GitHub gives a job to a runner holding all its labels); a runner group
   * restricted to selected repositories does. `Default` is every organisation's first group.
   */
  readonly runnerGroup: string;
}

export interface RunnerConfig {
  /** Sorted by priority, first first. */
  readonly regions: readonly RegionSettings[];
  readonly organizations: Readonly<Record<string, string>>;
  readonly repositories: Readonly<Record<string, string>>;
  readonly defaultRegion: string;
  readonly runnerTypes: readonly RunnerType[];
  /** How long a run stays where its first job went. */
  readonly stickyTtlSec: number;
  /** How long a delivery id is remembered (GitHub redelivers on request, up to 3 days after). */
  readonly deliveryTtlSec: number;
  /** How long a runner lease holds without a `completed` for its job. */
  readonly leaseTtlSec: number;
  /** A job still queued this long after its dispatch is dispatched once more. */
  readonly queuedTimeoutSec: number;
  /** A runner that has taken no job this long after it started is removed (registration and task). */
  readonly idleTimeoutSec: number;
  readonly maxBodyBytes: number;
  /** The window the error rate is computed over. */
  readonly errorWindowSec: number;
  /** Fewer dispatches than this in the window never trip the error rate. */
  readonly minErrorSamples: number;
  /**
   * The quota resource whose global limit per organisation caps its runners at once; each region's cap is
   * the quota sync's allocation of it. Absent: no per-organisation cap.
   */
  readonly concurrencyResource?: string;
  /** Per region, the other regions nearest first (artifact cache reads). Default: by priority. */
  readonly cacheDistance: Readonly<Record<string, readonly string[]>>;
}

/** Every problem of a runner configuration at once, each naming its field; no value is quoted. */
export class RunnerConfigError extends PermanentError {
  constructor(readonly issues: readonly string[]) {
    super('runners-config', boundedText(issues.join('; '), 400));
    this.name = 'RunnerConfigError';
    this.message = `Invalid runner configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`;
  }
}

const int = (what: string, min: number, max: number) =>
  z
    .number()
    .check(
      z.int(`expected ${what}, a whole number`),
      z.gte(min, `expected ${what} of at least ${min}`),
      z.lte(max, `expected ${what} of at most ${max}`),
    );

const thresholds = z.strictObject({
  queueDepth: int('a queue depth', 0, 1_000_000),
  concurrencyPercent: z
    .number()
    .check(
      z.gte(0, 'expected a percentage from 0 to 100'),
      z.lte(100, 'expected a percentage from 0 to 100'),
    ),
  errorRate: z
    .number()
    .check(z.gte(0, 'expected a rate from 0 to 1'), z.lte(1, 'expected a rate from 0 to 1')),
});

const regionName = z.string().check(z.regex(REGION_NAME, 'expected a region name such as eu-central-1'));

const SEED_THRESHOLDS: Thresholds = { queueDepth: 100, concurrencyPercent: 80, errorRate: 0.05 };

const document = z.strictObject({
  regions: z
    .array(
      z.strictObject({
        region: regionName,
        priority: int('a priority', 1, 100),
        capacity: int('a capacity in runners', 1, 100_000),
        spillover: z.optional(thresholds),
        recover: z.optional(thresholds),
      }),
    )
    .check(z.minLength(1, 'expected at least one region'), z.maxLength(10, 'expected at most 10 regions')),
  organizations: z._default(z.record(z.string(), regionName), {}),
  repositories: z._default(z.record(z.string(), regionName), {}),
  defaultRegion: z.optional(regionName),
  runnerTypes: z
    .array(
      z.strictObject({
        name: z
          .string()
          .check(z.regex(RUNNER_TYPE_NAME, 'expected 1-31 of a-z 0-9 -, starting with a letter')),
        labels: z
          .array(z.string())
          .check(
            z.minLength(1, 'expected at least one label'),
            z.maxLength(20, 'expected at most 20 labels'),
          ),
        launch: z._default(z.enum(['fargate', 'fargate-spot', 'ec2']), 'fargate'),
        cpu: z._default(int('task CPU units', 256, 16_384), 1024),
        memoryMiB: z._default(int('task memory in MiB', 512, 122_880), 2048),
        runnerGroup: z._default(
          z.string().check(z.regex(RUNNER_GROUP, 'expected a runner group name: 1-100 printable characters')),
          DEFAULT_RUNNER_GROUP,
        ),
      }),
    )
    .check(
      z.minLength(1, 'expected at least one runner type'),
      z.maxLength(20, 'expected at most 20 runner types'),
    ),
  stickyTtlSec: z._default(int('a sticky time-to-live in seconds', 60, 30 * 86_400), 86_400),
  deliveryTtlSec: z._default(int('a delivery time-to-live in seconds', 3_600, 30 * 86_400), 4 * 86_400),
  leaseTtlSec: z._default(int('a lease time-to-live in seconds', 60, 5 * 86_400), 6 * 3_600),
  queuedTimeoutSec: z._default(int('a queued timeout in seconds (SQS delays at most 900)', 60, 900), 600),
  idleTimeoutSec: z._default(int('an idle timeout in seconds', 300, 86_400), 900),
  maxBodyBytes: z._default(int('a body limit in bytes', 1_024, 10 * 1_048_576), 1_048_576),
  errorWindowSec: z._default(int('an error window in seconds', 60, 3_600), 300),
  minErrorSamples: z._default(int('a minimum of dispatches', 1, 10_000), 10),
  concurrencyResource: z.optional(
    z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected a quota resource name')),
  ),
  cacheDistance: z._default(z.record(regionName, z.array(regionName)), {}),
});

const pathOf = (path: readonly PropertyKey[]) => path.map(String).join('.') || '(document)';

/** Validates and normalises a configuration (lower-cased names, regions by priority, defaults filled). */
export function parseRunnerConfig(input: unknown, field = 'runners'): RunnerConfig {
  const parsed = document.safeParse(input);
  if (!parsed.success)
    throw new RunnerConfigError(
      parsed.error.issues.map((issue) =>
        issue.code === 'unrecognized_keys'
          ? `${field}.${pathOf(issue.path)}: expected no field named ${issue.keys.join(', ')}`
          : `${field}.${pathOf(issue.path)}: ${issue.message}`,
      ),
    );
  const raw = parsed.data;
  const issues: string[] = [];
  const at = (path: string, rule: string) => issues.push(`${field}.${path}: ${rule}`);

  const regions = [...raw.regions].sort((a, b) => a.priority - b.priority);
  const names = regions.map((r) => r.region);
  const known = new Set(names);
  if (known.size !== names.length) at('regions', 'expected each region once');
  if (new Set(regions.map((r) => r.priority)).size !== regions.length)
    at('regions', 'expected distinct priorities');
  const settled: RegionSettings[] = regions.map((r, index) => {
    const spillover = r.spillover ?? SEED_THRESHOLDS;
    const recover = r.recover ?? {
      queueDepth: spillover.queueDepth / 2,
      concurrencyPercent: spillover.concurrencyPercent / 2,
      errorRate: spillover.errorRate / 2,
    };
    for (const metric of ['queueDepth', 'concurrencyPercent', 'errorRate'] as const)
      if (recover[metric] > spillover[metric])
        at(
          `regions.${index}.recover.${metric}`,
          'expected at most the spillover threshold (hysteresis comes back lower)',
        );
      else if (recover[metric] === 0 && spillover[metric] > 0)
        at(
          `regions.${index}.recover.${metric}`,
          'expected above 0: a tripped metric clears only below its recover threshold',
        );
    return { region: r.region, priority: r.priority, capacity: r.capacity, spillover, recover };
  });

  // Read from the document itself: a parsed record leaves out a `__proto__` key, which must be refused.
  const given = (what: 'organizations' | 'repositories'): [string, string][] => {
    const source = (input as Record<string, unknown>)[what];
    return typeof source === 'object' && source !== null
      ? Object.entries(source as Record<string, string>)
      : Object.entries(raw[what]);
  };
  const homes = (what: 'organizations' | 'repositories', pattern: RegExp, rule: string) => {
    const out: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [name, region] of given(what)) {
      const key = name.toLowerCase();
      if (!pattern.test(key)) at(`${what}`, `expected keys that are ${rule}`);
      else if (key in out) at(`${what}`, 'expected each name once (names are case-insensitive)');
      else if (!known.has(region)) at(`${what}`, 'expected home regions among the configured regions');
      else out[key] = region;
    }
    return out;
  };
  const organizations = homes('organizations', LOGIN, 'GitHub logins');
  const repositories = homes('repositories', REPOSITORY, 'owner/name repository names');

  const defaultRegion = raw.defaultRegion ?? names[0] ?? '';
  if (!known.has(defaultRegion)) at('defaultRegion', 'expected one of the configured regions');

  const runnerTypes = raw.runnerTypes.map((type, index) => {
    const labels = type.labels.map((l) => l.toLowerCase());
    if (!labels.every((l) => LABEL.test(l)))
      at(`runnerTypes.${index}.labels`, 'expected 1-100 printable characters each, no comma or space');
    if (new Set(labels).size !== labels.length) at(`runnerTypes.${index}.labels`, 'expected each label once');
    if (type.launch === 'ec2' && type.runnerGroup.toLowerCase() === DEFAULT_RUNNER_GROUP.toLowerCase())
      at(
        `runnerTypes.${index}.runnerGroup`,
        'expected a runner group other than Default for an ec2 type: its jobs reach the host Docker daemon, so restrict the group to trusted repositories on GitHub',
      );
    return {
      name: type.name,
      labels,
      launch: type.launch,
      cpu: type.cpu,
      memoryMiB: type.memoryMiB,
      runnerGroup: type.runnerGroup,
    };
  });
  if (new Set(runnerTypes.map((t) => t.name)).size !== runnerTypes.length)
    at('runnerTypes', 'expected distinct names');

  const cacheDistance: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const region of names) {
    const given = raw.cacheDistance[region];
    const others = names.filter((n) => n !== region);
    if (given && (given.length !== others.length || !others.every((o) => given.includes(o))))
      at(`cacheDistance.${region}`, 'expected every other configured region exactly once, nearest first');
    cacheDistance[region] = given ?? others;
  }
  for (const region of Object.keys(raw.cacheDistance))
    if (!known.has(region)) at('cacheDistance', 'expected keys among the configured regions');
  if (raw.queuedTimeoutSec >= raw.leaseTtlSec) at('queuedTimeoutSec', 'expected less than leaseTtlSec');

  if (issues.length > 0) throw new RunnerConfigError(issues);
  return {
    regions: settled,
    organizations,
    repositories,
    defaultRegion,
    runnerTypes,
    stickyTtlSec: raw.stickyTtlSec,
    deliveryTtlSec: raw.deliveryTtlSec,
    leaseTtlSec: raw.leaseTtlSec,
    queuedTimeoutSec: raw.queuedTimeoutSec,
    idleTimeoutSec: raw.idleTimeoutSec,
    maxBodyBytes: raw.maxBodyBytes,
    errorWindowSec: raw.errorWindowSec,
    minErrorSamples: raw.minErrorSamples,
    ...(raw.concurrencyResource ? { concurrencyResource: raw.concurrencyResource } : {}),
    cacheDistance,
  };
}

/** The configuration from its JSON text (an environment variable): unreadable JSON is named as such. */
export function runnerConfigFromJson(text: string, field = 'RUNNERS_CONFIG'): RunnerConfig {
  let input: unknown;
  try {
    input = JSON.parse(text) as unknown;
  } catch {
    throw new RunnerConfigError([`${field}: expected the runner configuration as JSON`]);
  }
  return parseRunnerConfig(input, field);
}

/**
 * A function's runner configuration from its `RUNNERS_CONFIG` setting, which must name the region it runs
 * in: its problems are added to `problems` (named, value-free) and undefined is answered.
 */
export function functionRunnerConfig(
  json: string,
  region: string,
  problems: string[],
): RunnerConfig | undefined {
  let config: RunnerConfig;
  try {
    config = runnerConfigFromJson(json);
  } catch (error) {
    if (!(error instanceof RunnerConfigError)) throw error;
    problems.push(...error.issues);
    return undefined;
  }
  if (!regionSettings(config, region)) {
    problems.push('AWS_REGION: expected one of the regions of RUNNERS_CONFIG');
    return undefined;
  }
  return config;
}

/** The runner type a job's labels select: the first whose labels include all of them, else none. */
export function runnerTypeFor(config: RunnerConfig, labels: readonly string[]): RunnerType | undefined {
  // A job names at least one label (`runs-on` is required); one naming none is not this estate's to take.
  if (labels.length === 0) return undefined;
  return config.runnerTypes.find((type) => labels.every((label) => type.labels.includes(label)));
}

/** The region's settings, by name. */
export function regionSettings(config: RunnerConfig, region: string): RegionSettings | undefined {
  return config.regions.find((r) => r.region === region);
}
