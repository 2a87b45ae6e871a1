import { Route53Zone } from '@cdktf/provider-aws/lib/route53-zone';
import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { globalStackName } from './names';

export interface GlobalStackProps {
  readonly environment: EnvironmentConfig;
}

/** `<env>-global`: what spans the environment's regions, starting with its DNS zone. */
export class GlobalStack extends TerraformStack {
  readonly zone: Route53Zone;

  constructor(scope: Construct, props: GlobalStackProps) {
    const env = props.environment;
    const name = globalStackName(env);
    super(scope, name);
    configureBackend(this, env, name);
    const [primary] = env.regions;
    if (!primary) throw new Error(`environment ${env.name} has no regions`);
    regionProvider(this, 'aws', { environment: env, region: primary, stackName: name });

    this.zone = new Route53Zone(this, 'Zone', {
      name: env.dns.zoneName,
      comment: `${env.name} estate`,
      forceDestroy: false,
    });
    new TerraformOutput(this, 'zone_id', { value: this.zone.zoneId });
    new TerraformOutput(this, 'name_servers', { value: this.zone.nameServers });
  }
}
