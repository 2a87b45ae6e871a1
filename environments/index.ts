import { dev } from './dev';
import { validateEnvironments } from './load';
import { local } from './local';
import { prod } from './prod';
import type { EnvironmentConfig } from './schema';
import { shared } from './shared';

export * from './load';
export * from './schema';
export { LOCAL_ENDPOINT_VARIABLE } from './local';

/** Every environment as declared, before validation. */
export function declaredEnvironments(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  return { shared, dev, prod, local: local(env) };
}

/** Every environment, validated; throws one error listing every problem. */
export function loadEnvironments(env: NodeJS.ProcessEnv = process.env): Record<string, EnvironmentConfig> {
  return validateEnvironments(declaredEnvironments(env));
}
