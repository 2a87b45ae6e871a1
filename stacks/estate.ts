import type { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { GlobalStack } from './global-stack';
import { RegionalStack } from './regional-stack';
import { SharedStack } from './shared-stack';

/**
 * The whole estate: `shared-<region>` for the shared-services account; `<env>-global` and one
 * `<env>-<region>` per region for every workload environment (dev, prod, local).
 */
export function buildEstate(scope: Construct, environments: readonly EnvironmentConfig[]): TerraformStack[] {
  return environments.flatMap((environment): TerraformStack[] => {
    if (environment.name === 'shared') {
      return environment.regions.map((region) => new SharedStack(scope, { environment, region }));
    }
    return [
      new GlobalStack(scope, { environment }),
      ...environment.regions.map((region) => new RegionalStack(scope, { environment, region })),
    ];
  });
}
