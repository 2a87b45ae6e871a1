// Account-segmented rollout of one environment's own stacks: prints the order; with --apply, checks what would
// fail (a stack it deploys after never applied, Lambda concurrency, DNS delegation), then per stack
// `terraform init`, `terraform plan -out` and `terraform apply` of that plan, global stack first, then the
// regions primary first, stopping at the first failure. The shared account's stacks are an environment of
// their own: `npm run rollout -- shared --apply`. Terraform runs here with the ambient AWS credentials (GitHub
// OIDC or the operator's profile) and Terraform Cloud as the state backend. The whole rollout ends by
// ESTATE_ROLLOUT_DEADLINE_MIN (default 225 min: the deploy job's AWS session lasts 4 h), each command's time
// limit cut to what is left.
// Usage: npm run rollout -- <env> [--apply] [--only <stack>]
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { loadEnvironments } from '../environments';
import { REPO_ROOT } from '../modules/bundled-function/bundle';
import { failureText, summarizePlan } from './lib/plan-summary';
import {
  PreflightError,
  PUBLIC_RESOLVERS,
  checkDnsDelegation,
  checkLambdaConcurrency,
  delegationWriter,
  lambdaAccount,
  parseNameServers,
  provisionedConcurrencyAsks,
  publicDns,
} from './lib/preflight';
import { CommandFailedError, prefixLines } from './lib/process';
import {
  COMMAND_GRACE_MS,
  applyTimeoutMs,
  checkDependenciesApplied,
  commandTimeouts,
  environmentStacks,
  executeRollout,
  globalStackOf,
  parseRolloutArgs,
  rolloutDeadlineMs,
  rolloutOrder,
  selectStacks,
} from './lib/rollout';
import { synthesize, type SynthesizedStack } from './lib/synth';
import { prepareTerraform, terraform } from './lib/terraform';

const INIT_TIMEOUT_MS = 15 * 60_000;
/** `terraform output` and `terraform state list`: reads, quick. */
const READ_TIMEOUT_MS = 5 * 60_000;
const PLAN_FILE = 'rollout.tfplan';

async function main(): Promise<void> {
  const started = Date.now();
  const environments = loadEnvironments();
  const args = parseRolloutArgs(process.argv.slice(2), Object.keys(environments));
  // Read first, so a bad value fails before anything runs.
  const deadline = started + rolloutDeadlineMs(process.env);
  const timeoutMs = applyTimeoutMs(process.env);
  const environment = environments[args.environment];
  if (!environment) throw new Error(`unreachable: ${args.environment} was validated`);
  // The deployed environments are synthesized together, as for pull-request plans; local on its own.
  const synthesized = environment.emulator
    ? [environment]
    : Object.values(environments).filter((e) => !e.emulator);
  const outdir = join(REPO_ROOT, '.build', 'rollout', environment.name);
  const all = synthesize(synthesized, outdir);
  const ordered = rolloutOrder(environmentStacks(all, environment), environment);
  const stacks = selectStacks(ordered, environment, args.only);

  console.log(`Rollout of ${environment.name}, in order:`);
  stacks.forEach((stack, index) =>
    console.log(
      `  ${String(index + 1).padStart(2)}. ${stack.name}${stack.dependsOn.length ? `  (after ${stack.dependsOn.join(', ')})` : ''}`,
    ),
  );
  if (!args.apply) {
    console.log('\nDry run: add --apply to check, plan and apply each stack in this order.');
    return;
  }

  const cli = prepareTerraform();
  // Every command ends, its grace period included, by the rollout's deadline.
  const timeLeft = commandTimeouts(deadline, COMMAND_GRACE_MS);
  // Output streams as it comes; a failure then says how the command ended and its errors, in short.
  const tf = (stack: SynthesizedStack, tfArgs: string[], okCodes: number[], limit: number) =>
    terraform(cli, stack.dir, tfArgs, {
      okCodes,
      timeoutMs: timeLeft(limit, `terraform ${tfArgs[0]} of ${stack.name}`),
      graceMs: COMMAND_GRACE_MS,
      onLine: prefixLines(`[${stack.name}] `),
    }).catch((error: unknown) => {
      if (!(error instanceof CommandFailedError)) throw error;
      const [how] = error.message.split('\n');
      throw new Error(`${how}\n${failureText(`${error.result.stdout}\n${error.result.stderr}`)}`);
    });
  const initialized = new Set<string>();
  const initOnce = async (stack: SynthesizedStack) => {
    if (initialized.has(stack.name)) return;
    await tf(stack, ['init', '-input=false'], [0], INIT_TIMEOUT_MS);
    initialized.add(stack.name);
  };
  const onEmulator = 'skipped: local runs on the AWS emulator';

  await executeRollout(environment, stacks, {
    log: (line) => console.log(line),
    // A stack deployed after another environment's (dev-global after shared's) waits for no other job, but
    // the rollout stops here, before anything is applied, when that one was never applied.
    dependencies: () =>
      checkDependenciesApplied({
        environment,
        stacks,
        all,
        environments: Object.keys(environments),
        stateList: async (dependency) => {
          await initOnce(dependency);
          return (await tf(dependency, ['state', 'list'], [0], READ_TIMEOUT_MS)).stdout;
        },
      }),
    beforeAll: async () => {
      if (environment.emulator) return [`Lambda concurrency ${onEmulator}, which has no account settings`];
      const asks = stacks.flatMap((stack) =>
        provisionedConcurrencyAsks(
          stack.name,
          JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')),
        ),
      );
      return checkLambdaConcurrency(
        asks,
        lambdaAccount((region) => new LambdaClient({ region })),
        environment.name,
      );
    },
    beforeFirstRegion: async () => {
      if (environment.emulator) return [`DNS delegation ${onEmulator}, outside public DNS`];
      if (!environment.dns.customDomain) {
        return [
          `DNS delegation: skipped, ${environment.name} has no custom domain (dns.customDomain is false)`,
        ];
      }
      const global = globalStackOf(ordered, environment);
      if (!global) throw new PreflightError(`${environment.name} has no global stack holding its zone`);
      await initOnce(global);
      const output = await terraform(cli, global.dir, ['output', '-json', 'name_servers'], {
        okCodes: [0, 1],
        timeoutMs: timeLeft(READ_TIMEOUT_MS, `terraform output of ${global.name}`),
        graceMs: COMMAND_GRACE_MS,
      });
      if (output.code !== 0) {
        throw new PreflightError(
          `could not read the name_servers output of ${global.name} (has it been applied?): ${failureText(output.stderr)}`,
        );
      }
      const servers = process.env.ESTATE_DNS_RESOLVERS?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const resolvers = servers?.length ? servers : PUBLIC_RESOLVERS;
      const line = await checkDnsDelegation({
        zoneName: environment.dns.zoneName,
        expected: parseNameServers(output.stdout, global.name),
        writer: delegationWriter(environment, Object.values(environments)),
        dns: publicDns(resolvers),
        resolvers,
      });
      return [line];
    },
    init: initOnce,
    plan: async (stack) => {
      const result = await tf(
        stack,
        ['plan', '-input=false', '-detailed-exitcode', `-out=${PLAN_FILE}`],
        [0, 2],
        timeoutMs,
      );
      return {
        changes: result.code === 2,
        summary: summarizePlan({ exitCode: result.code, output: result.stdout }),
      };
    },
    apply: async (stack) => {
      await tf(stack, ['apply', '-input=false', PLAN_FILE], [0], timeoutMs);
    },
    // The plan file holds the configuration's values, sensitive ones included: it goes once used.
    discardPlan: (stack) => rmSync(join(stack.dir, PLAN_FILE), { force: true }),
  });
  console.log(`\nRollout of ${environment.name} complete: ${stacks.map((s) => s.name).join(', ')}.`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
