import type { EnvironmentConfig } from '../../environments';
import type { SynthesizedStack } from './synth';

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
  const ordered: T[] = [];
  const placed = new Set<string>();
  const known = new Set(stacks.map((s) => s.name));
  let pending = [...stacks];
  while (pending.length > 0) {
    const ready = pending
      .filter((stack) => stack.dependsOn.every((name) => placed.has(name) || !known.has(name)))
      .sort((a, b) => rank(a) - rank(b));
    const next = ready[0];
    if (!next) throw new Error(`dependency cycle among ${pending.map((s) => s.name).join(', ')}`);
    ordered.push(next);
    placed.add(next.name);
    pending = pending.filter((stack) => stack !== next);
  }
  return ordered;
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
