import type { EnvironmentConfig } from '../../environments';
import { deploymentWaves, type SynthesizedStack } from './synth';

/**
 * The order a rollout applies an environment's stacks in: every stack after the stacks it depends on
 * (shared services, then the environment's global stack, then its regions); among stacks free to go,
 * shared services first, then global, then regions in the environment's order, so the primary region
 * goes first and a bad change stops there. Dependencies outside `stacks` (another environment's) are taken
 * as done.
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
  /** Checks before anything is applied (Lambda concurrency); each line says what was found or why skipped. */
  readonly beforeAll: () => Promise<readonly string[]>;
  /** Checks before the first regional stack (DNS delegation). */
  readonly beforeFirstRegion: () => Promise<readonly string[]>;
  readonly init: (stack: T) => Promise<void>;
  /** `terraform plan -out=<file>`; resolves whether the plan holds changes, and its summary line. */
  readonly plan: (stack: T) => Promise<{ readonly changes: boolean; readonly summary: string }>;
  /** `terraform apply <file>` of the plan just made. */
  readonly apply: (stack: T) => Promise<void>;
  readonly log: (line: string) => void;
}

/** A rollout that stopped: where, at which step, what had been applied and what was not attempted. */
export class RolloutError extends Error {
  override readonly name = 'RolloutError';
}

/**
 * Applies the stacks in order: the preflights first, then per stack init, plan and apply of that plan (a plan
 * without changes is not applied), the DNS preflight before the first regional stack. Stops at the first
 * failure, saying where and what was applied before it.
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
      const plan = await steps.plan(stack);
      steps.log(`${stack.name}: ${plan.summary}`);
      if (plan.changes) {
        step = 'terraform apply';
        await steps.apply(stack);
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

/** ESTATE_APPLY_TIMEOUT_MIN (minutes, default 30) in milliseconds; refuses anything but a positive number. */
export function applyTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env.ESTATE_APPLY_TIMEOUT_MIN;
  if (raw === undefined || raw === '') return DEFAULT_APPLY_TIMEOUT_MIN * 60_000;
  const minutes = Number(raw);
  if (!Number.isFinite(minutes) || minutes <= 0) {
    throw new Error(`ESTATE_APPLY_TIMEOUT_MIN=${raw}: expected a positive number of minutes`);
  }
  return Math.round(minutes * 60_000);
}
