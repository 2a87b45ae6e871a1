import type { AwsRegion, EnvironmentConfig } from '../environments';

/** `<env>-<region>`: everything regional of an environment. */
export const regionalStackName = (env: EnvironmentConfig, region: AwsRegion): string =>
  `${env.name}-${region}`;
/** `<env>-global`: what spans the environment's regions. */
export const globalStackName = (env: EnvironmentConfig): string => `${env.name}-global`;
/** Name prefix of the environment's resources, e.g. `dev-health`. */
export const resourceName = (env: EnvironmentConfig, purpose: string): string => `${env.name}-${purpose}`;
