import type { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { GlobalStack } from './global-stack';
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
      childEnvironments: environments.filter(
        (child) => child.workloads && child.dns.zoneName.endsWith(`.${environment.dns.zoneName}`),
      ),
    });
    servingShared(environment).forEach((shared) => global.addDependency(shared));
    const regional = environment.regions.map((region) => new RegionalStack(scope, { environment, region }));
    // Regions depend on the global stack only: `npm run rollout` takes them one at a time, primary first.
    regional.forEach((stack) => stack.addDependency(global));
    return [global, ...regional];
  });
  return [...[...sharedByEnvironment.values()].flat(), ...workloadStacks];
}

function sharedStacksOf(scope: Construct, environment: EnvironmentConfig): TerraformStack[] {
  if (!environment.sharedServices) return [];
  const stacks = environment.regions.map((region) => new SharedStack(scope, { environment, region }));
  const [build, ...replicas] = stacks;
  replicas.forEach((replica) => build?.addDependency(replica));
  return [...replicas, ...(build ? [build] : [])];
}
