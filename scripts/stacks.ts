// What the GitHub workflows run on, computed from the environments and their synthesized stacks (never a
// hand-kept list). Each prints one line of JSON, for $GITHUB_OUTPUT:
//   npm run --silent stacks -- --matrix             the pull-request plan matrix: { include: [PlanTarget] }
//   npm run --silent stacks -- --environment <env>  what the apply job of <env> assumes: DeployTarget
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments, type EnvironmentConfig } from '../environments';
import { deployTarget, deployedEnvironments, planMatrix, type MatrixStack } from './lib/stack-matrix';
import { synthesize } from './lib/synth';

/** The Terraform Cloud host a synthesized stack's `cloud` block names, if it has one. */
function backendHostname(dir: string): string | undefined {
  const config = JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')) as {
    terraform?: { cloud?: { hostname?: unknown } };
  };
  const hostname = config.terraform?.cloud?.hostname;
  return typeof hostname === 'string' ? hostname : undefined;
}

/** Synthesizes each deployed environment on its own (its stacks are exactly what it builds) into a temp dir. */
export function currentPlanMatrix(
  environments: readonly EnvironmentConfig[] = Object.values(loadEnvironments({})),
): ReturnType<typeof planMatrix> {
  const outdir = mkdtempSync(join(tmpdir(), 'estate-stacks-'));
  try {
    return planMatrix(
      deployedEnvironments(environments).map((environment) => ({
        environment,
        stacks: synthesize([environment], join(outdir, environment.name)).map((stack): MatrixStack => ({
          name: stack.name,
          backendHostname: backendHostname(stack.dir),
        })),
      })),
    );
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

function main(args: readonly string[]): void {
  const environments = Object.values(loadEnvironments({}));
  const deployed = deployedEnvironments(environments);
  const usage = `usage: npm run --silent stacks -- --matrix | --environment <${deployed.map((e) => e.name).join('|')}>`;
  const [flag, value, ...rest] = args;
  if (flag === '--matrix' && value === undefined) {
    console.log(JSON.stringify(currentPlanMatrix(environments)));
  } else if (flag === '--environment' && value !== undefined && rest.length === 0) {
    const environment = deployed.find((candidate) => candidate.name === value);
    if (!environment) {
      throw new Error(`${JSON.stringify(value)} is not a deployed environment; ${usage}`);
    }
    console.log(JSON.stringify(deployTarget(environment)));
  } else {
    throw new Error(usage);
  }
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error: unknown) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  }
}
