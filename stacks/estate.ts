import type { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { GlobalStack } from './global-stack';
import { globalStackName } from './names';
import { RegionalStack } from './regional-stack';
import { SharedStack } from './shared-stack';

/**
 * The whole estate, with the order `cdktf deploy` follows: shared services first (the build region last,
 * as it replicates into the others), then each environment's global stack, then its regions.
 */
export function buildEstate(scope: Construct, environments: readonly EnvironmentConfig[]): TerraformStack[] {
  const sharedByEnvironment = new Map(
    environments.map((environment) => [environment, sharedStacksOf(scope, environment)]),
  );
  const servingShared = (consumer: EnvironmentConfig) =>
    environments
      .filter(
        (host) => host === consumer || host.sharedServices?.consumerAccountIds.includes(consumer.accountId),
      )
      .flatMap((host) => sharedByEnvironment.get(host) ?? []);
  const workloadStacks = environments.flatMap((environment) => {
    if (!environment.workloads) return [];
    const global = new GlobalStack(scope, {
      environment,
      childEnvironments: childEnvironmentsOf(environment, environments),
    });
    servingShared(environment).forEach((shared) => global.addDependency(shared));
    const regional = environment.regions.map((region) => new RegionalStack(scope, { environment, region }));
    // Regions depend on the global stack only: `npm run rollout` takes them one at a time, primary first.
    regional.forEach((stack) => stack.addDependency(global));
    return [global, ...regional];
  });
  return [...[...sharedByEnvironment.values()].flat(), ...workloadStacks];
}

/** Environments whose zone sits below `parent`'s: its global stack delegates them. */
export function childEnvironmentsOf(
  parent: EnvironmentConfig,
  environments: readonly EnvironmentConfig[],
): EnvironmentConfig[] {
  return environments.filter(
    (child) => child !== parent && child.workloads && child.dns.zoneName.endsWith(`.${parent.dns.zoneName}`),
  );
}

/** Each stack of the estate with its environment and the environments whose stacks read its outputs. */
export function estateStackOwners(
  stacks: readonly TerraformStack[],
  environments: readonly EnvironmentConfig[],
): Array<{ name: string; environment: EnvironmentConfig; readBy: EnvironmentConfig[] }> {
  return stacks.map((stack) => {
    const name = stack.node.id;
    const environment = environments.find((env) => name.startsWith(`${env.name}-`));
    if (!environment) throw new Error(`unreachable: stack ${name} belongs to no environment`);
    // Parents read a global stack's name servers; consumers' rollouts check that the shared stacks
    // they deploy after were applied.
    const readBy =
      name === globalStackName(environment)
        ? environments.filter((parent) => childEnvironmentsOf(parent, environments).includes(environment))
        : environments.filter(
            (consumer) =>
              consumer !== environment &&
              environment.sharedServices?.consumerAccountIds.includes(consumer.accountId),
          );
    return { name, environment, readBy };
  });
}

function sharedStacksOf(scope: Construct, environment: EnvironmentConfig): TerraformStack[] {
  if (!environment.sharedServices) return [];
  const stacks = environment.regions.map((region) => new SharedStack(scope, { environment, region }));
  const [build, ...replicas] = stacks;
  replicas.forEach((replica) => build?.addDependency(replica));
  return [...replicas, ...(build ? [build] : [])];
}
