import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { AwsRegion, EnvironmentConfig } from '../../environments';
import { emulatorEnv, loadHandlerFromArchive, withEnv } from './load-bundle';
import { archiveSha256 } from './local-runtime/function-pool';
import { emptyTally, foldApplyLine, slowest, type ApplyTally } from './apply-events';
import { stackNeeds, unmetNeeds } from './stack-gates';
import { defaultOutdir, localEnvironment, synthesize, type SynthesizedStack } from './synth';
import { regionalStackName } from '../../stacks/names';
import { init, terraform, type TerraformCli } from './terraform';

/** A stack applied onto the emulator. */
export interface DeployedStack extends SynthesizedStack {
  readonly resourceCount: number;
  readonly outputs: Readonly<Record<string, unknown>>;
  /** Seconds from the start of the deployment to this stack's apply starting, and its apply's length. */
  readonly startedAfterSeconds: number;
  readonly applySeconds: number;
  /** Its slowest resource changes (the provider's waits), slowest first. */
  readonly slowest: ReadonlyArray<{ address: string; seconds: number }>;
}

export interface LocalEstate {
  readonly environment: EnvironmentConfig;
  readonly stacks: readonly DeployedStack[];
}

/** Where one stack of a deployment is. */
export interface StackProgress {
  readonly name: string;
  readonly phase: 'init' | 'waiting' | 'applying' | 'applied' | 'failed';
  /** What it waits for, while waiting. */
  readonly waitingFor: readonly string[];
  readonly tally: ApplyTally;
  /** Milliseconds since the epoch at which its apply started and ended. */
  readonly startedAt?: number;
  readonly endedAt?: number;
}

export interface DeployOptions {
  readonly outdir?: string;
  readonly log?: (line: string) => void;
  readonly regions?: readonly AwsRegion[];
  /** Called whenever a stack's progress changes, with every stack's. */
  readonly onProgress?: (stacks: readonly StackProgress[]) => void;
  /** Terraform's `-parallelism` per stack. Default: DEFAULT_PARALLELISM. */
  readonly parallelism?: number;
}

/**
 * Terraform's concurrent operations per apply. Most of an apply onto the emulator is the provider waiting for
 * eventual consistency (~25 s per queue, ~15 s per DNS change), so more of them at once costs little.
 */
export const DEFAULT_PARALLELISM = 32;

/**
 * Synthesizes the `local` environment against the emulator at `endpoint` and applies every stack onto it, all
 * stacks side by side: a stack starts once what it reads of the stacks it depends on exists (see stackNeeds).
 */
export async function deployLocalEstate(
  cli: TerraformCli,
  endpoint: string,
  options: DeployOptions = {},
): Promise<LocalEstate> {
  const log = options.log ?? (() => undefined);
  const began = Date.now();
  const environment = localEnvironment(endpoint, options.regions);
  const synthesized = synthesize([environment], options.outdir ?? defaultOutdir('local'));
  log(`synthesized ${synthesized.map((s) => s.name).join(', ')} in ${seconds(Date.now() - began)} s`);
  const needs = stackNeeds(
    synthesized.map((stack) => ({
      ...stack,
      config: JSON.parse(readFileSync(stackConfigPath(stack.dir), 'utf8')),
    })),
  );
  // A stack that waits for nothing and that nothing waits for (the shared stacks here) holds nothing up, so
  // its plan, which is mostly CPU, yields to those that do (the global stack, whose DNS zone the regions
  // wait for, then the regions).
  const needed = new Set([...needs.values()].flat().map((need) => need.stack));
  const offCriticalPath = new Set(
    synthesized
      .filter((stack) => !needed.has(stack.name) && (needs.get(stack.name) ?? []).length === 0)
      .map((stack) => stack.name),
  );
  const progress = new Map<string, StackProgress>(
    synthesized.map((stack) => [
      stack.name,
      { name: stack.name, phase: 'init', waitingFor: [], tally: emptyTally() },
    ]),
  );
  const changed = new Signal();
  // What shows progress must never stop the deployment, nor keep waiting stacks from being woken.
  const report = () => {
    try {
      options.onProgress?.([...progress.values()]);
    } catch {
      // ignored: the deployment goes on without that view
    }
  };
  const update = (name: string, change: Partial<StackProgress>) => {
    progress.set(name, { ...(progress.get(name) as StackProgress), ...change });
    try {
      report();
    } finally {
      changed.notify();
    }
  };
  const phaseOf = (name: string) => progress.get(name)?.phase;
  const failedDependency = (stack: SynthesizedStack) =>
    stack.dependsOn.find((name) => phaseOf(name) === 'failed');

  const deployOne = async (stack: SynthesizedStack): Promise<DeployedStack> => {
    try {
      await init(cli, stack.dir);
      const stackNeeds = needs.get(stack.name) ?? [];
      const unmet = () =>
        unmetNeeds(
          stackNeeds,
          (name) => progress.get(name)?.tally.completed ?? new Set(),
          (name) => phaseOf(name) === 'applied',
        );
      update(stack.name, { phase: 'waiting', waitingFor: unmet() });
      await changed.until(() => {
        if (failedDependency(stack)) return true;
        const waitingFor = unmet();
        if (waitingFor.join() !== progress.get(stack.name)?.waitingFor.join()) {
          progress.set(stack.name, { ...(progress.get(stack.name) as StackProgress), waitingFor });
          report();
        }
        return waitingFor.length === 0;
      });
      const failed = failedDependency(stack);
      if (failed) throw new Error(`not applied: ${failed}, which it depends on, failed`);
      const startedAt = Date.now();
      rmSync(applyLogOf(stack.dir), { force: true });
      update(stack.name, { phase: 'applying', waitingFor: [], startedAt });
      let tally = emptyTally();
      try {
        await terraform(
          cli,
          stack.dir,
          [
            'apply',
            '-json',
            '-auto-approve',
            '-input=false',
            `-parallelism=${options.parallelism ?? DEFAULT_PARALLELISM}`,
          ],
          {
            niceness: offCriticalPath.has(stack.name) ? 10 : undefined,
            onLine: (line, stream) => {
              if (stream !== 'stdout') return;
              const next = foldApplyLine(tally, line);
              if (next !== tally) update(stack.name, { tally: (tally = next) });
              try {
                appendFileSync(applyLogOf(stack.dir), `${line}\n`);
              } catch {
                // the log is for a look afterwards; the apply goes on without it
              }
            },
          },
        );
      } catch (error) {
        if (tally.errors.length === 0) throw error;
        throw new Error(`terraform apply of ${stack.name} failed:\n  ${tally.errors.join('\n  ')}`);
      }
      const endedAt = Date.now();
      update(stack.name, { phase: 'applied', endedAt });
      log(`applied ${stack.name}: ${tally.completed.size} changes in ${seconds(endedAt - startedAt)} s`);
      return {
        ...stack,
        resourceCount: managedResourceCount(stack.dir, stack.name) ?? tally.completed.size,
        outputs: tally.outputs ?? {},
        startedAfterSeconds: (startedAt - began) / 1000,
        applySeconds: (endedAt - startedAt) / 1000,
        slowest: slowest(tally, 5),
      };
    } catch (error) {
      update(stack.name, { phase: 'failed', endedAt: Date.now() });
      throw error;
    }
  };
  const results = await Promise.allSettled(synthesized.map(deployOne));
  const failures = results.flatMap((result, i) =>
    result.status === 'rejected' ? [`${synthesized[i]?.name}: ${(result.reason as Error).message}`] : [],
  );
  if (failures.length > 0) throw new Error(`the local estate did not deploy:\n${failures.join('\n')}`);
  return {
    environment,
    stacks: results.map((result) => (result as PromiseFulfilledResult<DeployedStack>).value),
  };
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const stackConfigPath = (dir: string) => join(dir, 'cdk.tf.json');
/** Where the apply's JSON lines are kept: each resource's start, end and wait, for a look at where time went. */
export const applyLogOf = (dir: string) => join(dir, 'apply.jsonl');

/** Managed resource instances in a stack's local state (its backend is a local file in the stack's directory). */
function managedResourceCount(dir: string, name: string): number | undefined {
  let state: { resources?: Array<{ mode?: string; instances?: unknown[] }> };
  try {
    state = JSON.parse(readFileSync(join(dir, `terraform.${name}.tfstate`), 'utf8')) as typeof state;
  } catch {
    return undefined;
  }
  return (state.resources ?? [])
    .filter((resource) => resource.mode === 'managed')
    .reduce((sum, resource) => sum + (resource.instances?.length ?? 0), 0);
}

/** Wakes waiters whenever something changed, so each re-checks its condition. */
class Signal {
  private readonly waiters = new Set<() => void>();
  notify(): void {
    for (const wake of [...this.waiters]) {
      try {
        wake();
      } catch {
        // a waiter's condition failed: the others are still woken
      }
    }
  }
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolveWait) => {
      const check = () => {
        if (!condition()) return;
        this.waiters.delete(check);
        resolveWait();
      };
      this.waiters.add(check);
    });
  }
}

/** The regional stack a deployed estate runs in `region`. */
export function regionalStackOf(estate: LocalEstate, region: AwsRegion): DeployedStack {
  const stack = estate.stacks.find((s) => s.name === regionalStackName(estate.environment, region));
  if (!stack) throw new Error(`no stack deployed for ${region}`);
  return stack;
}

interface SynthesizedFunction {
  readonly function_name: string;
  readonly filename: string;
}

/** The deployment archive Terraform uploaded for a function of a synthesized stack. */
export function deployedArchive(stackDir: string, functionName: string): string {
  const config = JSON.parse(readFileSync(join(stackDir, 'cdk.tf.json'), 'utf8')) as {
    resource?: { aws_lambda_function?: Record<string, SynthesizedFunction> };
  };
  const fn = Object.values(config.resource?.aws_lambda_function ?? {}).find(
    (f) => f.function_name === functionName,
  );
  if (!fn) throw new Error(`${stackDir} deploys no function named ${functionName}`);
  return join(stackDir, fn.filename);
}

/** What a function answered when invoked in-process from its deployed archive. */
export interface Invocation {
  readonly response: unknown;
  /** The function's environment as the emulator stores it. */
  readonly environment: Readonly<Record<string, string>>;
}

/**
 * Invokes a deployed function the way Lambda would, in-process: the emulator cannot run Lambda code, so
 * its deployed archive (checked against the emulator's CodeSha256) is loaded fresh and called with the
 * environment the emulator holds for the function.
 */
export async function invokeDeployed(
  endpoint: string,
  region: string,
  stackDir: string,
  functionName: string,
  event: unknown,
  /** Settings over the deployed ones: stand-ins for what the emulator cannot be (ECS RunTask, GitHub). */
  overrides: Readonly<Record<string, string>> = {},
): Promise<Invocation> {
  const lambda = new LambdaClient({
    region,
    endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const deployed = await lambda.send(new GetFunctionCommand({ FunctionName: functionName }));
  const archive = deployedArchive(stackDir, functionName);
  const sha = archiveSha256(readFileSync(archive));
  if (deployed.Configuration?.CodeSha256 !== sha) {
    throw new Error(
      `${archive} (sha ${sha}) is not what ${functionName} runs (${deployed.Configuration?.CodeSha256})`,
    );
  }
  const environment = deployed.Configuration?.Environment?.Variables ?? {};
  const handler = loadHandlerFromArchive(archive);
  const response = await withEnv({ ...environment, ...emulatorEnv(endpoint, region), ...overrides }, () =>
    handler(event, {}),
  );
  return { response, environment };
}
