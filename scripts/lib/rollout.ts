import type { EnvironmentConfig } from '../../environments';
import { deploymentWaves, type SynthesizedStack } from './synth';

/**
 * The order a rollout applies an environment's stacks in: every stack after the stacks it depends on
 * (shared services, then the environment's global stack, then its regions); among stacks free to go,
 * shared services first, then global, then regions in the environment's order, so the primary region
 * goes first and a bad change stops there.
 */
export function rolloutOrder<T extends SynthesizedStack>(
  stacks: readonly T[],
  environment: EnvironmentConfig,
): T[] {
  const rank = (stack: T): number => {
    const regionIndex = environment.regions.findIndex((region) => stack.name.endsWith(`-${region}`));
    const shared = /(^|-)shared-/.test(stack.name) ? 0 : 1;
    const global = stack.name.endsWith('-global') ? 0 : 1;
    return shared * 10_000 + global * 1_000 + (regionIndex < 0 ? 999 : regionIndex);
  };
  return deploymentWaves(stacks).flatMap((wave) => [...wave].sort((a, b) => rank(a) - rank(b)));
}

/** The environments whose stacks a rollout of `environment` covers: the shared services it uses, then itself. */
export function rolloutEnvironments(
  environment: EnvironmentConfig,
  all: readonly EnvironmentConfig[],
): EnvironmentConfig[] {
  const hosts = all.filter(
    (host) => host !== environment && host.sharedServices?.consumerAccountIds.includes(environment.accountId),
  );
  return [...hosts, environment];
}
