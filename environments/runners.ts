import { parseRunnerConfig, type RunnerConfig } from '../runtime/runners/config';
import type { EnvironmentConfig } from './schema';

/**
 * Runner types every environment starts with: Fargate Spot for ordinary jobs (interruptible, cheap),
 * on-demand Fargate for jobs that ask for it, and EC2 for jobs that build or run containers (Fargate cannot
 * run Docker). A job takes the first type whose labels include all of its `runs-on` labels.
 */
export const DEFAULT_RUNNER_TYPES = [
  { name: 'standard', labels: ['self-hosted', 'linux', 'x64'], launch: 'fargate-spot' },
  { name: 'on-demand', labels: ['self-hosted', 'linux', 'x64', 'on-demand'], launch: 'fargate' },
  {
    name: 'docker',
    labels: ['self-hosted', 'linux', 'x64', 'docker'],
    launch: 'ec2',
    cpu: 2048,
    memoryMiB: 4096,
    // Create it in each organisation, restricted to the repositories trusted with a Docker host.
    runnerGroup: 'docker-trusted',
  },
] as const;

/**
 * The control plane's document for an environment: its `runners.document`, with `regions` (when it names
 * none) the environment's regions in order of priority, each running `capacityPerRegion` runners at once,
 * and the default runner types when it names none.
 */
export function runnerDocumentOf(
  env: Pick<EnvironmentConfig, 'regions' | 'runners'>,
): Record<string, unknown> {
  const { document, capacityPerRegion } = env.runners;
  return {
    regions: env.regions.map((region, index) => ({
      region,
      priority: index + 1,
      capacity: capacityPerRegion,
    })),
    runnerTypes: DEFAULT_RUNNER_TYPES,
    ...document,
  };
}

/** The environment's runner configuration, validated and normalised as its functions read it. */
export function runnerConfigOf(env: Pick<EnvironmentConfig, 'regions' | 'runners'>): RunnerConfig {
  return parseRunnerConfig(runnerDocumentOf(env), 'runners.document');
}
