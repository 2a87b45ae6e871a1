import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { AwsRegion, EnvironmentConfig } from '../../environments';
import { emulatorEnv, loadHandlerFromArchive, withEnv } from './load-bundle';
import { defaultOutdir, deploymentWaves, localEnvironment, synthesize, type SynthesizedStack } from './synth';
import { regionalStackName } from '../../stacks/names';
import { apply, init, terraform, type TerraformCli } from './terraform';

/** A stack applied onto the emulator. */
export interface DeployedStack extends SynthesizedStack {
  readonly resourceCount: number;
  readonly outputs: Readonly<Record<string, unknown>>;
}

export interface LocalEstate {
  readonly environment: EnvironmentConfig;
  readonly stacks: readonly DeployedStack[];
}

/** Synthesizes the `local` environment against the emulator at `endpoint` and applies every stack onto it. */
export async function deployLocalEstate(
  cli: TerraformCli,
  endpoint: string,
  options: { outdir?: string; log?: (line: string) => void; regions?: readonly AwsRegion[] } = {},
): Promise<LocalEstate> {
  const log = options.log ?? (() => undefined);
  const environment = localEnvironment(endpoint, options.regions);
  const synthesized = synthesize([environment], options.outdir ?? defaultOutdir('local'));
  log(`synthesized ${synthesized.map((s) => s.name).join(', ')}`);
  // Wave by wave in dependency order; within a wave side by side (Terraform mostly waits on the emulator).
  const stacks: DeployedStack[] = [];
  for (const wave of deploymentWaves(synthesized)) {
    const deployed = await Promise.all(
      wave.map(async (stack) => {
        const started = Date.now();
        await init(cli, stack.dir);
        await apply(cli, stack.dir);
        const result = await describeDeployed(cli, stack);
        log(
          `applied ${stack.name}: ${result.resourceCount} resources in ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
        return result;
      }),
    );
    stacks.push(...deployed);
  }
  return { environment, stacks };
}

async function describeDeployed(cli: TerraformCli, stack: SynthesizedStack): Promise<DeployedStack> {
  const state = await terraform(cli, stack.dir, ['state', 'list']);
  const outputs = JSON.parse((await terraform(cli, stack.dir, ['output', '-json'])).stdout) as Record<
    string,
    { value: unknown }
  >;
  return {
    ...stack,
    resourceCount: state.stdout.split('\n').filter((line) => line.trim() && !line.startsWith('data.')).length,
    outputs: Object.fromEntries(Object.entries(outputs).map(([key, output]) => [key, output.value])),
  };
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
  const sha = createHash('sha256').update(readFileSync(archive)).digest('base64');
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
