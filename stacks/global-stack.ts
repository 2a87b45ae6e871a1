import type { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { Route53Zone } from '@cdktf/provider-aws/lib/route53-zone';
import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { DynamodbTable } from '../modules/dynamodb-table';
import { KmsKey } from '../modules/kms-key';
import { PlatformSecrets } from '../modules/platform-secrets';
import { GLOBAL_TABLES, globalKeyAlias, globalStackName, platformSecretNames, resourceName } from './names';

export interface GlobalStackProps {
  readonly environment: EnvironmentConfig;
}

/**
 * `<env>-global`: what spans the environment's regions: the DNS zone, a key in every region, the global
 * tables (replicas in every region; one table per region where the config says so), the platform secrets
 * replicated to every region.
 */
export class GlobalStack extends TerraformStack {
  readonly zone: Route53Zone;
  readonly tables: readonly DynamodbTable[];

  constructor(scope: Construct, props: GlobalStackProps) {
    const env = props.environment;
    const name = globalStackName(env);
    super(scope, name);
    configureBackend(this, env, name);
    const [primary, ...others] = env.regions;
    if (!primary) throw new Error(`environment ${env.name} has no regions`);
    regionProvider(this, 'aws', { environment: env, region: primary, stackName: name });
    const providers = new Map<string, AwsProvider>(
      others.map((region) => [
        region,
        regionProvider(this, `aws-${region}`, { environment: env, region, stackName: name, alias: region }),
      ]),
    );

    this.zone = new Route53Zone(this, 'Zone', { name: env.dns.zoneName, comment: `${env.name} estate` });

    const keys = env.regions.map(
      (region) =>
        new KmsKey(this, `Key-${region}`, {
          aliasName: globalKeyAlias(env),
          accountId: env.accountId,
          region,
          provider: providers.get(region),
        }),
    );
    const [primaryKey, ...replicaKeys] = keys;
    if (!primaryKey) throw new Error('unreachable: no primary key');

    const deletionProtection = env.dynamodb.deletionProtection;
    this.tables = GLOBAL_TABLES.flatMap(({ purpose, partitionKey }) =>
      env.dynamodb.replication === 'global-tables'
        ? [
            new DynamodbTable(this, `Table-${purpose}`, {
              tableName: resourceName(env, purpose),
              partitionKey,
              kmsKey: primaryKey,
              replicaKeys,
              deletionProtection,
            }),
          ]
        : keys.map(
            (key) =>
              new DynamodbTable(this, `Table-${purpose}-${key.region}`, {
                tableName: resourceName(env, purpose),
                partitionKey,
                kmsKey: key,
                streamViewType: 'NEW_AND_OLD_IMAGES',
                deletionProtection,
                provider: providers.get(key.region),
              }),
          ),
    );

    new PlatformSecrets(this, 'Secrets', {
      names: platformSecretNames(env),
      primaryKey,
      replicaKeys,
      replicaCmk: env.features.secretReplicaCmk,
    });

    new TerraformOutput(this, 'zone_id', { value: this.zone.zoneId });
    new TerraformOutput(this, 'name_servers', { value: this.zone.nameServers });
  }
}
