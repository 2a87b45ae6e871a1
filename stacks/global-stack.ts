import type { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { Route53Zone } from '@cdktf/provider-aws/lib/route53-zone';
import { TerraformOutput, TerraformStack } from 'cdktf';
import { AlarmTopic } from '../modules/alarm-topic';
import { CertificateValidationRecord } from '../modules/certificate-validation-record';
import { ZoneDelegation } from '../modules/zone-delegation';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend, remoteStateOf } from '../modules/backend';
import { DynamodbTable } from '../modules/dynamodb-table';
import { EstateDashboard } from '../modules/estate-dashboard';
import { KmsKey } from '../modules/kms-key';
import { PlatformSecrets } from '../modules/platform-secrets';
import {
  alarmRegions,
  alarmTopicName,
  GLOBAL_TABLES,
  globalKeyAlias,
  globalStackName,
  platformSecretNames,
  resourceName,
} from './names';

export interface GlobalStackProps {
  readonly environment: EnvironmentConfig;
  /**
   * Environments whose zones sit below this one's (e.g. dev.<zone> below prod's <zone>): this stack writes
   * their delegation, reading their name servers from their global stack's state. Default: none.
   */
  readonly childEnvironments?: readonly EnvironmentConfig[];
}

/**
 * `<env>-global`: what spans the environment's regions: the DNS zone (with the delegation of child
 * environments' zones and the one certificate-validation record of the API name), a key in every region,
 * the global tables (replicas in every region; one table per region where the config says so), the
 * platform secrets replicated to every region, the environment's alarm topic in every region alarms live
 * in, and its dashboard of every region's capabilities and alarms.
 */
export class GlobalStack extends TerraformStack {
  readonly zone: Route53Zone;
  readonly tables: readonly DynamodbTable[];

  constructor(scope: Construct, props: GlobalStackProps) {
    const env = props.environment;
    const name = globalStackName(env);
    super(scope, name);
    configureBackend(this, env, name);
    const [primary] = env.regions;
    if (!primary) throw new Error(`environment ${env.name} has no regions`);
    regionProvider(this, 'aws', { environment: env, region: primary, stackName: name });
    const keyRegions = alarmRegions(env);
    const providers = new Map<string, AwsProvider>(
      keyRegions
        .filter((region) => region !== primary)
        .map((region) => [
          region,
          regionProvider(this, `aws-${region}`, { environment: env, region, stackName: name, alias: region }),
        ]),
    );
    const preventDestroy = env.features.preventDestroy;

    this.zone = new Route53Zone(this, 'Zone', {
      name: env.dns.zoneName,
      comment: `${env.name} estate`,
      lifecycle: { preventDestroy },
    });

    const keysByRegion = new Map(
      keyRegions.map((region) => [
        region,
        new KmsKey(this, `Key-${region}`, {
          aliasName: globalKeyAlias(env),
          accountId: env.accountId,
          region,
          provider: providers.get(region),
          serviceUsers: ['cloudwatch.amazonaws.com'],
          preventDestroy,
        }),
      ]),
    );
    const keys = env.regions.map((region) => keysByRegion.get(region)!);
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
              preventDestroy,
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
                preventDestroy,
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

    for (const [region, key] of keysByRegion) {
      new AlarmTopic(this, `Alarms-${region}`, {
        name: alarmTopicName(env),
        kmsKey: key,
        subscriptions: env.alarms.subscriptions,
        provider: providers.get(region),
      });
    }

    new EstateDashboard(this, 'Dashboard', { environment: env });

    if (env.dns.customDomain) {
      new CertificateValidationRecord(this, 'ApiCertificateValidation', {
        domainName: `${env.dns.apiRecordName}.${env.dns.zoneName}`,
        zoneId: this.zone.zoneId,
      });
    }

    for (const child of props.childEnvironments ?? []) {
      const childStack = globalStackName(child);
      const state = remoteStateOf(this, `State-${childStack}`, child, childStack, { name_servers: [] });
      new ZoneDelegation(this, `Delegation-${child.name}`, {
        parentZoneId: this.zone.zoneId,
        parentZoneName: env.dns.zoneName,
        childZoneName: child.dns.zoneName,
        nameServers: state.getList('name_servers'),
      });
    }

    new TerraformOutput(this, 'zone_id', { value: this.zone.zoneId });
    new TerraformOutput(this, 'name_servers', { value: this.zone.nameServers });
  }
}
