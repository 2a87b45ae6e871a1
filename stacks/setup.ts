import type { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { BootstrapStack } from './bootstrap-stack';
import { bootstrapStackName } from './names';
import { TerraformCloudStack, type EstateWorkspace } from './terraform-cloud-stack';

/**
 * What is applied once by hand before any rollout: the Terraform Cloud organisation's projects, workspaces
 * and teams, then each account's bootstrap (GitHub OIDC and its plan and deploy roles). `estateStacks` are
 * the stacks the rollouts apply (their workspaces are made here), with the environments reading their outputs.
 */
export function buildAccountSetup(
  scope: Construct,
  environments: readonly EnvironmentConfig[],
  estateStacks: ReadonlyArray<{
    readonly name: string;
    readonly environment: EnvironmentConfig;
    readonly readBy: readonly EnvironmentConfig[];
  }>,
): TerraformStack[] {
  const deployed = environments.filter((env) => env.backend.type === 'terraform-cloud');
  if (deployed.length === 0) return [];
  const bootstraps = deployed.map((environment) => new BootstrapStack(scope, { environment }));
  const workspaces: EstateWorkspace[] = [
    ...deployed.map((environment) => ({ stack: bootstrapStackName(environment), environment })),
    ...estateStacks
      .filter((s) => s.environment.backend.type === 'terraform-cloud')
      .map((s) => ({ stack: s.name, environment: s.environment, readBy: s.readBy })),
  ];
  const cloud = new TerraformCloudStack(scope, { environments: deployed, workspaces });
  return [cloud, ...bootstraps];
}
