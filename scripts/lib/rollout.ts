import type { EnvironmentConfig } from '../../environments';
import { formatDuration } from './process';
import { namesHave, unappliedDependencies } from './plan-summary';
import { deploymentWaves, type SynthesizedStack } from './synth';

/**
 * The order a rollout applies an environment's stacks in: every stack after the stacks it depends on
 * (shared services, then the environment's global stack, then its regions); among stacks free to go,
 * shared services first, then global, then regions in the environment's order, so the primary region
 * goes first and a bad change stops there. Dependencies outside `stacks` (another environment's) are taken
 * as done here: checkDependenciesApplied makes sure they were applied once.
 */
export function rolloutOrder<T extends SynthesizedStack>(
  stacks: readonly T[],
  environment: EnvironmentConfig,
): T[] {
  const rank = (stack: T): number => {
    const regionIndex = environment.regions.findIndex((region) => stack.name.endsWith(`-${region}`));
    const shared = /(^|-)shared-/.test(stack.name) ? 0 : 1;
    const global = stack.name.endsWith('-global') ? 0 : 1;
    return shared * 10_000 + global * 1_000 + (regionIndex < 0 ? 999 : regionIndex);
  };
  return deploymentWaves(stacks).flatMap((wave) => [...wave].sort((a, b) => rank(a) - rank(b)));
}

/**
 * The environment's own stacks (`<env>-...`): a rollout covers no other environment's, not even the shared
 * services it uses (`npm run rollout -- shared --apply` rolls those out).
 */
export function environmentStacks<T extends SynthesizedStack>(
  stacks: readonly T[],
  environment: EnvironmentConfig,
): T[] {
  return stacks.filter((stack) => stack.name.startsWith(`${environment.name}-`));
}

/** Whether a stack is one of the environment's regional workload stacks (`<env>-<region>`). */
export function isRegionalStack(stack: SynthesizedStack, environment: EnvironmentConfig): boolean {
  return (
    environment.workloads &&
    environment.regions.some((region) => stack.name === `${environment.name}-${region}`)
  );
}

/** `<env>-global` among the stacks, if the environment has one. */
export function globalStackOf<T extends SynthesizedStack>(
  stacks: readonly T[],
  environment: EnvironmentConfig,
): T | undefined {
  return stacks.find((stack) => stack.name === `${environment.name}-global`);
}

export interface RolloutArgs {
  readonly environment: string;
  readonly apply: boolean;
  /** Roll out this one stack of the environment only. */
  readonly only?: string;
}

export const ROLLOUT_USAGE = 'usage: npm run rollout -- <env> [--apply] [--only <stack>]';

/** `<env> [--apply] [--only <stack>]`, refusing anything else with the usage. */
export function parseRolloutArgs(argv: readonly string[], environments: readonly string[]): RolloutArgs {
  const positional: string[] = [];
  let apply = false;
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--apply') apply = true;
    else if (arg === '--only') {
      only = argv[++i];
      if (!only || only.startsWith('--')) throw new Error(`--only needs a stack name; ${ROLLOUT_USAGE}`);
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}; ${ROLLOUT_USAGE}`);
    else positional.push(arg);
  }
  const [environment, ...extra] = positional;
  if (!environment || extra.length > 0 || !environments.includes(environment)) {
    throw new Error(`${ROLLOUT_USAGE}; <env> is one of ${environments.join(', ')}`);
  }
  return { environment, apply, ...(only ? { only } : {}) };
}

/** The stacks to roll out, in order: all of the environment's, or the one `--only` names. */
export function selectStacks<T extends SynthesizedStack>(
  ordered: readonly T[],
  environment: EnvironmentConfig,
  only?: string,
): T[] {
  if (only === undefined) return [...ordered];
  const stack = ordered.find((s) => s.name === only);
  if (!stack) {
    throw new Error(
      `--only ${only}: ${environment.name} has no such stack; its stacks are ${ordered.map((s) => s.name).join(', ')}`,
    );
  }
  return [stack];
}

/** What a rollout does with each stack, and the checks it makes; injected so the sequence is tested alone. */
export interface RolloutSteps<T extends SynthesizedStack> {
  /** First of all: the stacks deployed before this rollout's were applied (see checkDependenciesApplied). */
  readonly dependencies: () => Promise<readonly string[]>;
  /** Checks before anything is applied (Lambda concurrency); each line says what was found or why skipped. */
  readonly beforeAll: () => Promise<readonly string[]>;
  /** Checks before the first regional stack (DNS delegation). */
  readonly beforeFirstRegion: () => Promise<readonly string[]>;
  readonly init: (stack: T) => Promise<void>;
  /** `terraform plan -out=<file>`; resolves whether the plan holds changes, and its summary line. */
  readonly plan: (stack: T) => Promise<{ readonly changes: boolean; readonly summary: string }>;
  /** `terraform apply <file>` of the plan just made. */
  readonly apply: (stack: T) => Promise<void>;
  /** Removes the plan file (it holds the configuration's values): after its apply or failure, or unapplied. */
  readonly discardPlan: (stack: T) => void;
  readonly log: (line: string) => void;
}

/** A rollout that stopped: where, at which step, what had been applied and what was not attempted. */
export class RolloutError extends Error {
  override readonly name = 'RolloutError';
}

/**
 * Applies the stacks in order: the preflights first (dependencies applied, then the others), then per stack init, plan and apply of that plan (a plan
 * without changes is not applied; the plan file is removed either way), the DNS preflight before the first
 * regional stack. Stops at the first failure, saying where and what was applied before it.
 */
export async function executeRollout<T extends SynthesizedStack>(
  environment: EnvironmentConfig,
  stacks: readonly T[],
  steps: RolloutSteps<T>,
): Promise<void> {
  const done: string[] = [];
  let step = 'preflight';
  let index = -1;
  try {
    (await steps.dependencies()).forEach((line) => steps.log(`preflight: ${line}`));
    (await steps.beforeAll()).forEach((line) => steps.log(`preflight: ${line}`));
    let regionsChecked = false;
    for (const [i, stack] of stacks.entries()) {
      index = i;
      if (!regionsChecked && isRegionalStack(stack, environment)) {
        step = 'preflight';
        (await steps.beforeFirstRegion()).forEach((line) => steps.log(`preflight: ${line}`));
        regionsChecked = true;
      }
      steps.log(`==> ${stack.name}`);
      step = 'terraform init';
      await steps.init(stack);
      step = 'terraform plan';
      try {
        const plan = await steps.plan(stack);
        steps.log(`${stack.name}: ${plan.summary}`);
        if (plan.changes) {
          step = 'terraform apply';
          await steps.apply(stack);
        }
      } finally {
        steps.discardPlan(stack);
      }
      done.push(stack.name);
    }
  } catch (error) {
    const failed = stacks[index];
    const beforeIt = step === 'preflight';
    const where = !failed ? 'before any stack' : `${beforeIt ? 'before' : 'at'} ${failed.name}`;
    const notAttempted = stacks.slice(beforeIt ? Math.max(index, 0) : index + 1).map((s) => s.name);
    const list = (names: readonly string[]) => (names.length ? names.join(', ') : 'none');
    throw new RolloutError(
      `rollout of ${environment.name} stopped ${where} (${step}):\n` +
        `${error instanceof Error ? error.message : String(error)}\n` +
        `rolled out before it: ${list(done)}; not attempted: ${list(notAttempted)}`,
    );
  }
}

/** Default limit of one `terraform plan` or `terraform apply` in a rollout. */
export const DEFAULT_APPLY_TIMEOUT_MIN = 30;

/** A positive number of minutes from `env[name]` (default when unset or empty), in milliseconds. */
function minutesFrom(env: NodeJS.ProcessEnv, name: string, defaultMin: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return defaultMin * 60_000;
  const minutes = Number(raw);
  if (!Number.isFinite(minutes) || minutes <= 0) {
    throw new Error(`${name}=${raw}: expected a positive number of minutes`);
  }
  return Math.round(minutes * 60_000);
}

/** ESTATE_APPLY_TIMEOUT_MIN (minutes, default 30) in milliseconds; refuses anything but a positive number. */
export const applyTimeoutMs = (env: NodeJS.ProcessEnv): number =>
  minutesFrom(env, 'ESTATE_APPLY_TIMEOUT_MIN', DEFAULT_APPLY_TIMEOUT_MIN);

/** Default of ESTATE_ROLLOUT_DEADLINE_MIN: a rollout fits in the deploy job's 4-hour AWS session. */
export const DEFAULT_ROLLOUT_DEADLINE_MIN = 225;

/**
 * After a plan or apply times out and gets SIGINT, how long Terraform has to stop and release its lock before
 * SIGKILL.
 */
export const COMMAND_GRACE_MS = 2 * 60_000;

/** The shortest time worth starting a Terraform command with: less, and it would be stopped as it starts. */
const MIN_COMMAND_MS = 60_000;

/** ESTATE_ROLLOUT_DEADLINE_MIN (minutes, default 225) in milliseconds; refuses anything but a positive number. */
export const rolloutDeadlineMs = (env: NodeJS.ProcessEnv): number =>
  minutesFrom(env, 'ESTATE_ROLLOUT_DEADLINE_MIN', DEFAULT_ROLLOUT_DEADLINE_MIN);

/**
 * The time limit of each command of a rollout that must end by `deadline` (ms since the epoch), grace period
 * included: its own limit, cut to what is left of the rollout minus `graceMs`, so no command, even one stopped
 * by SIGINT at its limit and given its grace period, outlives the deadline (and the AWS session behind it).
 * Refuses to start a command with less than MIN_COMMAND_MS left.
 */
export function commandTimeouts(
  deadline: number,
  graceMs: number = COMMAND_GRACE_MS,
  now: () => number = Date.now,
): (limitMs: number, what: string) => number {
  return (limitMs, what) => {
    const left = deadline - now() - graceMs;
    if (left < MIN_COMMAND_MS) {
      throw new Error(
        `not starting ${what}: the rollout's deadline (ESTATE_ROLLOUT_DEADLINE_MIN, default ` +
          `${DEFAULT_ROLLOUT_DEADLINE_MIN} min) leaves ${formatDuration(Math.max(0, left + graceMs))}, less ` +
          `than ${formatDuration(MIN_COMMAND_MS + graceMs)} with its grace period; run the rollout again ` +
          'with fresh credentials to go on',
      );
    }
    return Math.min(limitMs, left);
  };
}

/** The environment a stack belongs to (`<env>-...`), the longest name first. */
function ownerOf(stack: string, environments: readonly string[]): string | undefined {
  return [...environments]
    .sort((a, b) => b.length - a.length)
    .find((environment) => stack.startsWith(`${environment}-`));
}

/** What a dependency check reads: the `terraform state list` of a stack, or why it could not. */
type StateReader<T extends SynthesizedStack> = (stack: T) => Promise<string>;

/**
 * Fails, before anything is applied, when a stack this rollout applies deploys after one it does not (another
 * environment's, such as the shared account's; or the environment's own, with --only) that was never
 * applied (`terraform state list` prints nothing), naming it and the command that applies it. A state it
 * cannot read (this environment's Terraform Cloud token may not read another project's) is reported, not
 * taken as missing. Returns lines saying what it found.
 */
export async function checkDependenciesApplied<T extends SynthesizedStack>(input: {
  readonly environment: EnvironmentConfig;
  /** The stacks this rollout applies. */
  readonly stacks: readonly T[];
  /** Every synthesized stack, dependencies included. */
  readonly all: readonly T[];
  /** The names of every environment, to say which one applies a dependency. */
  readonly environments: readonly string[];
  readonly stateList: StateReader<T>;
}): Promise<string[]> {
  const applying = new Set(input.stacks.map((s) => s.name));
  const names = [...new Set(input.stacks.flatMap((s) => s.dependsOn))].filter((n) => !applying.has(n));
  if (names.length === 0) return ['dependencies: none outside this rollout'];
  const states: Array<{ name: string; stateList: string }> = [];
  const unreadable: string[] = [];
  for (const name of names) {
    const dependency = input.all.find((s) => s.name === name);
    if (!dependency) throw new Error(`unreachable: ${name} is a dependency but was not synthesized`);
    try {
      states.push({ name, stateList: await input.stateList(dependency) });
    } catch (error) {
      const why = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
      unreadable.push(`${name} (${why.length > 300 ? `${why.slice(0, 297)}...` : why})`);
    }
  }
  const unapplied = unappliedDependencies(states);
  if (unapplied.length > 0) {
    const dependents = input.stacks
      .filter((s) => s.dependsOn.some((d) => unapplied.includes(d)))
      .map((s) => s.name);
    const commands = [...new Set(unapplied.map((name) => ownerOf(name, input.environments)))].map((owner) =>
      owner === input.environment.name
        ? unapplied
            .filter((name) => ownerOf(name, input.environments) === owner)
            .map((name) => `npm run rollout -- ${owner} --apply --only ${name}`)
            .join(', then ')
        : `npm run rollout -- ${owner ?? '<its environment>'} --apply`,
    );
    throw new Error(
      `${namesHave(unapplied)} never been applied (no state), and ${dependents.join(', ')} ` +
        `${dependents.length > 1 ? 'deploy' : 'deploys'} after ${unapplied.length > 1 ? 'them' : 'it'}: ` +
        `apply ${unapplied.length > 1 ? 'them' : 'it'} first (${commands.join('; ')}), then run this rollout again`,
    );
  }
  const lines = states.length ? [`dependencies: ok, ${states.map((s) => s.name).join(', ')} applied`] : [];
  if (unreadable.length > 0) {
    lines.push(
      `dependencies: not checked, could not read the state of ${unreadable.join('; ')}; ` +
        "if it is access, the check needs this environment's Terraform Cloud token to read those workspaces",
    );
  }
  return lines;
}
