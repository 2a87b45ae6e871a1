import { EcsCluster } from '@cdktf/provider-aws/lib/ecs-cluster';
import { EcsClusterCapacityProviders } from '@cdktf/provider-aws/lib/ecs-cluster-capacity-providers';
import { Construct } from 'constructs';
import { requireIntInRange, requireMatch } from './lib/validate';

export interface RunnerClusterProps {
  /** Cluster name, e.g. `dev-runners`. */
  readonly clusterName: string;
  /** Tasks always placed on on-demand Fargate before the spot split applies. Default: 1. */
  readonly onDemandBase?: number;
  /** Spot tasks per on-demand task beyond the base. Default: 3. */
  readonly spotWeight?: number;
}

/** The ECS cluster self-hosted runners run on: Fargate and Fargate Spot, container insights on. */
export class RunnerCluster extends Construct {
  readonly cluster: EcsCluster;

  constructor(scope: Construct, id: string, props: RunnerClusterProps) {
    super(scope, id);
    requireMatch(
      'RunnerCluster',
      'clusterName',
      props.clusterName,
      /^[a-zA-Z0-9_-]{1,255}$/,
      '1-255 letters, digits, - or _',
    );
    const base = requireIntInRange('RunnerCluster', 'onDemandBase', props.onDemandBase ?? 1, 0, 100000);
    const spotWeight = requireIntInRange('RunnerCluster', 'spotWeight', props.spotWeight ?? 3, 0, 1000);
    this.cluster = new EcsCluster(this, 'Cluster', {
      name: props.clusterName,
      setting: [{ name: 'containerInsights', value: 'enabled' }],
    });
    new EcsClusterCapacityProviders(this, 'CapacityProviders', {
      clusterName: this.cluster.name,
      capacityProviders: ['FARGATE', 'FARGATE_SPOT'],
      defaultCapacityProviderStrategy: [
        { capacityProvider: 'FARGATE', base, weight: 1 },
        { capacityProvider: 'FARGATE_SPOT', weight: spotWeight },
      ],
    });
  }
}
