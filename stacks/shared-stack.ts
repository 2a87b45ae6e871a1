import { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { AwsRegion, EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { KmsKey } from '../modules/kms-key';
import { regionalStackName, resourceName } from './names';

export interface SharedStackProps {
  readonly environment: EnvironmentConfig;
  readonly region: AwsRegion;
}

/** `shared-<region>`: the shared-services account's regional services (container registry, artifacts). */
export class SharedStack extends TerraformStack {
  readonly key: KmsKey;

  constructor(scope: Construct, props: SharedStackProps) {
    const { environment: env, region } = props;
    const name = regionalStackName(env, region);
    super(scope, name);
    configureBackend(this, env, name);
    regionProvider(this, 'aws', { environment: env, region, stackName: name });
    this.key = new KmsKey(this, 'Key', {
      aliasName: resourceName(env, 'artifacts'),
      accountId: env.accountId,
      region,
    });
  }
}
