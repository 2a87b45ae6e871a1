// The pull-request plan of one deployed stack: synthesizes shared, dev and prod, inits the stack and runs
// `terraform plan -detailed-exitcode` here (Terraform Cloud holds the state only), streaming its output, then
// writes a one-line markdown summary for the pull request. Exits non-zero when the plan failed, after writing
// the summary; a stack whose dependencies have no state yet is skipped, with the reason.
// Usage: npm run plan -- <stack> [--summary <file>]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEnvironments } from '../environments';
import {
  failedSummary,
  failureText,
  isFailedSummary,
  looksThingsUp,
  skippedSummary,
  summarizePlan,
  unappliedDependencyReason,
} from './lib/plan-summary';
import { planOutdir } from './lib/outdirs';
import { CommandFailedError, formatDuration, prefixLines } from './lib/process';
import { applyTimeoutMs, COMMAND_GRACE_MS } from './lib/rollout';
import { synthesize, type SynthesizedStack } from './lib/synth';
import { prepareTerraform, terraform, type TerraformCli } from './lib/terraform';

const USAGE = 'usage: npm run plan -- <stack> [--summary <file>]';
const INIT_TIMEOUT_MS = 15 * 60_000;

function parseArgs(argv: readonly string[]): { stack: string; summaryFile?: string } {
  const summaryAt = argv.indexOf('--summary');
  const summaryFile = summaryAt >= 0 ? argv[summaryAt + 1] : undefined;
  if (summaryAt >= 0 && (!summaryFile || summaryFile.startsWith('--')))
    throw new Error(`--summary needs a file; ${USAGE}`);
  const rest = argv.filter((_, i) => summaryAt < 0 || (i !== summaryAt && i !== summaryAt + 1));
  const [stack, ...extra] = rest;
  if (!stack || stack.startsWith('--') || extra.length > 0) throw new Error(USAGE);
  return { stack, ...(summaryFile ? { summaryFile } : {}) };
}

const streamed = (stack: SynthesizedStack, okCodes: number[], timeoutMs: number) => ({
  okCodes,
  timeoutMs,
  graceMs: COMMAND_GRACE_MS,
  onLine: prefixLines(`[${stack.name}] `),
});

/** Plans one stack and says how it went in one line. */
async function planStack(name: string): Promise<string> {
  const environments = loadEnvironments();
  const deployed = Object.values(environments).filter((environment) => !environment.emulator);
  // Its own directory: plans of other stacks running at the same time synthesize into theirs.
  const stacks = synthesize(deployed, planOutdir(name));
  const stack = stacks.find((s) => s.name === name);
  if (!stack) {
    return failedSummary(`no stack ${name}; the deployed stacks are ${stacks.map((s) => s.name).join(', ')}`);
  }
  const cli = prepareTerraform();
  const config: unknown = JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8'));
  // Only a stack that looks things up needs the stacks it deploys after to exist.
  const dependencies = looksThingsUp(config) ? stacks.filter((s) => stack.dependsOn.includes(s.name)) : [];
  const states = [];
  for (const dependency of dependencies) {
    const stateList = await inStack(`reading the state of ${dependency.name}`, async () => {
      await terraform(
        cli,
        dependency.dir,
        ['init', '-input=false'],
        streamed(dependency, [0], INIT_TIMEOUT_MS),
      );
      return (await terraform(cli, dependency.dir, ['state', 'list'])).stdout;
    });
    states.push({ name: dependency.name, stateList });
  }
  const skip = unappliedDependencyReason({ name: stack.name, config }, states);
  if (skip) return skippedSummary(skip);
  return plan(cli, stack);
}

async function plan(cli: TerraformCli, stack: SynthesizedStack): Promise<string> {
  await inStack(`initializing ${stack.name}`, () =>
    terraform(cli, stack.dir, ['init', '-input=false'], streamed(stack, [0], INIT_TIMEOUT_MS)),
  );
  const timeoutMs = applyTimeoutMs(process.env);
  try {
    // -lock=false: a speculative plan writes no state, so it neither waits for a rollout nor blocks one.
    const result = await terraform(
      cli,
      stack.dir,
      ['plan', '-input=false', '-detailed-exitcode', '-lock=false'],
      streamed(stack, [0, 2], timeoutMs),
    );
    return summarizePlan({ exitCode: result.code, output: `${result.stdout}\n${result.stderr}` });
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    const { code, signal, stdout, stderr } = error.result;
    const stopped = `timed out after ${formatDuration(timeoutMs)}, ${error.killed ? 'killed' : 'stopped by SIGINT'}`;
    return summarizePlan({
      exitCode: signal ? undefined : code,
      output: `${stdout}\n${stderr}`,
      ...(error.timedOut ? { stoppedBecause: stopped } : {}),
    });
  }
}

/** Runs a step, turning a failed command into an error saying which step and Terraform's errors, in short. */
async function inStack<T>(doing: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    // The first line says which command and how it ended; the directory is left out of the summary.
    const how = (error.message.split('\n')[0] ?? '').replace(/ \(in [^)]*\)/, '').replace(/:$/, '');
    throw new Error(`${doing}: ${how}: ${failureText(`${error.result.stdout}\n${error.result.stderr}`)}`);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const summary = await planStack(args.stack).catch((error: unknown) =>
    failedSummary(error instanceof Error ? error.message : String(error)),
  );
  if (args.summaryFile) writeFileSync(args.summaryFile, `${summary}\n`);
  console.log(`\n${args.stack}: ${summary}`);
  if (isFailedSummary(summary)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
