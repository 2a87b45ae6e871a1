import { DataAwsRoute53Zone } from '@cdktf/provider-aws/lib/data-aws-route53-zone';
import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { AwsRegion, EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { BundledFunction } from '../modules/bundled-function';
import { DynamodbTable } from '../modules/dynamodb-table';
import { RegionalFailoverRecord } from '../modules/failover-record';
import { RegionalHttpApi } from '../modules/http-api';
import { KmsKey } from '../modules/kms-key';
import { ReplicaRegistry } from '../modules/replica-registry';
import { RunnerCluster } from '../modules/runner-cluster';
import { RunnerNetwork } from '../modules/runner-network';
import { Schedule } from '../modules/schedule';
import { SecureBucket } from '../modules/secure-bucket';
import { SyncBus } from '../modules/sync-bus';
import { SyncService } from '../modules/sync-service';
import { QuotaService } from '../modules/quota-service';
import { SecretsReplicator } from '../modules/secrets-replicator';
import { RunnerControlPlane } from '../modules/runner-control-plane';
import { runnerConfigOf, runnerDocumentOf } from '../environments/runners';
import { allocationConfigOf } from '../environments/quota';
import { AlarmTopic } from '../modules/alarm-topic';
import { healthItemKey } from '../runtime/health/probe-item';
import {
  alarmTopicName,
  apiRecordName,
  bucketName,
  globalKeyAlias,
  healthFunctionName,
  quotaName,
  regionalKeyAlias,
  regionalStackName,
  resourceName,
  runnerSecretNames,
  runnersName,
  ROUTE53_METRICS_REGION,
  secretsReplicatorName,
  syncName,
  vpcCidr,
} from './names';

export interface RegionalStackProps {
  readonly environment: EnvironmentConfig;
  readonly region: AwsRegion;
}

/** Steady requests per second `GET /health` may take: as much as the API default, in a budget of its own. */
const HEALTH_ROUTE_RATE_PER_SEC = 100;
/** Days the artifact cache keeps an object. */
const ARTIFACT_CACHE_DAYS = 30;
/** Seconds the sync inbox's event-source mapping gathers a batch. */
const SYNC_INBOX_BATCHING_WINDOW_SEC = 1;

/**
 * `<env>-<region>`: everything regional. Every region deploys the same stack: its key, state table and
 * buckets, the health function behind the regional HTTP API and its latency record with health check, the
 * region's end of the sync bus, the schedule, the quota sync, the secrets replicator, and the runners'
 * network and cluster.
 */
export class RegionalStack extends TerraformStack {
  readonly health: BundledFunction;
  readonly stateTable: DynamodbTable;
  readonly api: RegionalHttpApi;
  readonly bus: SyncBus;
  readonly sync: SyncService;
  readonly quota: QuotaService;
  /** The secrets replicator, where the environment configures one for this region. */
  readonly secrets?: SecretsReplicator;
  readonly runners: RunnerControlPlane;

  constructor(scope: Construct, props: RegionalStackProps) {
    const { environment: env, region } = props;
    const name = regionalStackName(env, region);
    super(scope, name);
    configureBackend(this, env, name);
    regionProvider(this, 'aws', { environment: env, region, stackName: name });
    const metricsProvider = regionProvider(this, 'metrics', {
      environment: env,
      region: ROUTE53_METRICS_REGION,
      stackName: name,
      alias: 'route53-metrics',
    });
    const account = env.accountId;
    // The global stack's alarm topics: the region's own, and the one beside Route 53's metrics.
    const alarmTopicArn = AlarmTopic.arn(region, account, alarmTopicName(env));

    const key = new KmsKey(this, 'Key', {
      aliasName: regionalKeyAlias(env),
      accountId: account,
      region,
      serviceUsers: ['sns.amazonaws.com', 'events.amazonaws.com'],
      preventDestroy: env.features.preventDestroy,
    });
    this.stateTable = new DynamodbTable(this, 'StateTable', {
      tableName: resourceName(env, 'region-state'),
      partitionKey: { name: 'pk', type: 'S' },
      sortKey: { name: 'sk', type: 'S' },
      kmsKey: key,
      deletionProtection: env.dynamodb.deletionProtection,
      preventDestroy: env.features.preventDestroy,
      globalSecondaryIndexes: [SyncService.DOCUMENTS_INDEX],
    });
    const regionStatusTable = resourceName(env, 'region-status');

    this.health = new BundledFunction(this, 'Health', {
      entry: 'runtime/health/handler.ts',
      functionName: healthFunctionName(env),
      region,
      kmsKey: key,
      statements: [
        {
          sid: 'ProbeStateTableItsOwnItem',
          actions: ['dynamodb:UpdateItem', 'dynamodb:GetItem'],
          resources: [this.stateTable.arn],
          conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [healthItemKey(region).pk] } },
        },
        {
          sid: 'RecordRegionStatus',
          actions: ['dynamodb:PutItem'],
          resources: [`arn:aws:dynamodb:${region}:${account}:table/${regionStatusTable}`],
        },
        {
          // The region-status table is the global stack's, encrypted with its key in this region.
          sid: 'UseGlobalKeyForRegionStatus',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [`arn:aws:kms:${region}:${account}:key/*`],
          conditions: {
            'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [`alias/${globalKeyAlias(env)}`] },
            StringEquals: { 'kms:ViaService': `dynamodb.${region}.amazonaws.com` },
          },
        },
      ],
      environment: { STATE_TABLE_NAME: this.stateTable.name, REGION_STATUS_TABLE_NAME: regionStatusTable },
      memoryMiB: env.lambda.memoryMiB,
      timeoutSec: env.lambda.timeoutSec,
      provisionedConcurrency: env.lambda.provisionedConcurrency,
      logRetentionDays: env.lambda.logRetentionDays,
      encryptEnvironment: env.lambda.environmentCmk,
      alarmTopicArn,
    });
    new Schedule(this, 'HealthReport', {
      ruleName: resourceName(env, 'health-report'),
      expression: 'rate(1 minute)',
      target: this.health,
    });

    // The inbox consumer's timeout and batching window: the bus's visibility timeout is derived from them.
    const syncInbox = {
      timeoutSec: env.sync.inboxTimeoutSec,
      batchingWindowSec: SYNC_INBOX_BATCHING_WINDOW_SEC,
    };
    this.bus = new SyncBus(this, 'SyncBus', {
      name: syncName(env),
      region,
      peerRegions: env.regions.filter((r) => r !== region),
      accountId: account,
      kmsKey: key,
      visibilityTimeoutSec: SyncService.inboxVisibilityTimeoutSec(
        syncInbox.timeoutSec,
        syncInbox.batchingWindowSec,
      ),
      ignoreRedrivePolicyDrift: !env.features.redrivePolicyDrift,
    });

    this.sync = new SyncService(this, 'Sync', {
      name: syncName(env),
      region,
      peerRegions: env.regions.filter((r) => r !== region),
      bus: this.bus,
      stateTable: this.stateTable,
      kmsKey: key,
      // Full states too large for a message travel through the quota service's snapshot buckets, under sync/.
      stateBucketOf: (r) => bucketName(env, 'snapshots', r as AwsRegion),
      maxClockSkewSec: env.sync.maxClockSkewSec,
      antiEntropyIntervalMin: env.sync.antiEntropyIntervalMin,
      memoryMiB: env.sync.inboxMemoryMiB,
      timeoutSec: syncInbox.timeoutSec,
      inboxBatchingWindowSec: syncInbox.batchingWindowSec,
      inboxMaxConcurrency: env.sync.inboxMaxConcurrency,
      mergeConcurrency: env.sync.mergeConcurrency,
      antiEntropyTimeoutSec: env.sync.antiEntropyTimeoutSec,
      antiEntropyMemoryMiB: env.sync.antiEntropyMemoryMiB,
      sweepPageSize: env.sync.sweepPageSize,
      settleSec: env.sync.settleSec,
      environmentName: env.name,
      logRetentionDays: env.lambda.logRetentionDays,
      encryptEnvironment: env.lambda.environmentCmk,
      inboxTriggerEnabled: env.features.eventSourceMappings,
      alarmTopicArn,
    });

    const forceDestroy = !env.dynamodb.deletionProtection;
    this.quota = new QuotaService(this, 'Quota', {
      name: quotaName(env),
      region,
      accountId: account,
      allocation: allocationConfigOf(env),
      snapshotBucketOf: (r) => bucketName(env, 'snapshots', r as AwsRegion),
      kmsKey: key,
      regionalKeyAlias: regionalKeyAlias(env),
      shadow: env.quota.shadow,
      deletionProtection: env.dynamodb.deletionProtection,
      preventDestroy: env.features.preventDestroy,
      forceDestroy,
      // The regional stack's own `Snapshots` bucket until this capability took it over.
      snapshotBucketMovedFrom: ['Snapshots'],
      tlsOnlyBucket: env.features.tlsOnlyBuckets,
      logRetentionDays: env.lambda.logRetentionDays,
      encryptEnvironment: env.lambda.environmentCmk,
      alarmTopicArn,
    });
    const replication = env.secrets.replication[region];
    if (replication)
      this.secrets = new SecretsReplicator(this, 'Secrets', {
        name: secretsReplicatorName(env),
        configSecretName: `${env.name}/secrets-replicator/config`,
        region,
        accountId: account,
        document: replication,
        resyncSchedule: env.secrets.resyncSchedule,
        kmsKey: key,
        logRetentionDays: env.lambda.logRetentionDays,
        encryptEnvironment: env.lambda.environmentCmk,
        triggerEnabled: env.features.eventSourceMappings,
        ignoreRedrivePolicyDrift: !env.features.redrivePolicyDrift,
        alarmTopicArn,
      });
    const artifactCache = new SecureBucket(this, 'ArtifactCache', {
      bucketName: bucketName(env, 'artifact-cache', region),
      kmsKey: key,
      expireAfterDays: ARTIFACT_CACHE_DAYS,
      forceDestroy,
      tlsOnly: env.features.tlsOnlyBuckets,
    });
    const runnerNetwork = new RunnerNetwork(this, 'RunnerNetwork', {
      name: runnersName(env),
      cidr: vpcCidr(env, region),
      region,
      natGateways: env.network.natGateways,
      interfaceEndpoints: env.network.interfaceEndpoints,
      kmsKey: key,
      flowLogRetentionDays: env.lambda.logRetentionDays,
    });
    const runnerConfig = runnerConfigOf(env);
    const runnerCluster = new RunnerCluster(this, 'RunnerCluster', {
      clusterName: runnersName(env),
      ...(runnerConfig.runnerTypes.some((t) => t.launch === 'ec2')
        ? {
            ec2: {
              instanceType: env.runners.ec2.instanceType,
              maxInstances: env.runners.ec2.maxInstances,
              subnetIds: runnerNetwork.privateSubnets.map((s) => s.id),
              securityGroupIds: [runnerNetwork.runnerSecurityGroup.id],
              kmsKeyArn: key.arn,
              region,
              accountId: account,
              ignoreTagSpecificationsDrift: !env.features.launchTemplateTagsDrift,
            },
          }
        : {}),
    });
    const apiName = apiRecordName(env);
    this.runners = new RunnerControlPlane(this, 'Runners', {
      name: runnersName(env),
      region,
      accountId: account,
      document: runnerDocumentOf(env),
      kmsKey: key,
      regionalKeyAlias: regionalKeyAlias(env),
      globalKeyAlias: globalKeyAlias(env),
      stateTableName: this.stateTable.name,
      globalTables: {
        idempotency: resourceName(env, 'idempotency-keys'),
        workflows: resourceName(env, 'runner-workflows'),
        cacheIndex: resourceName(env, 'artifact-cache-index'),
        regionStatus: regionStatusTable,
      },
      secrets: runnerSecretNames(env),
      cacheBucket: artifactCache,
      cacheBucketOf: (r) => bucketName(env, 'artifact-cache', r as AwsRegion),
      cacheExpireDays: ARTIFACT_CACHE_DAYS,
      network: runnerNetwork,
      cluster: runnerCluster,
      image: `${account}.dkr.ecr.${region}.amazonaws.com/${env.runners.image.repository}:${env.runners.image.tag}`,
      cacheUrl: `https://${apiName}`,
      quota: this.quota,
      sweepFailedDeliveries: region === env.regions[0],
      routerProvisionedConcurrency: env.lambda.provisionedConcurrency,
      logRetentionDays: env.lambda.logRetentionDays,
      encryptEnvironment: env.lambda.environmentCmk,
      triggerEnabled: env.features.eventSourceMappings,
      ignoreRedrivePolicyDrift: !env.features.redrivePolicyDrift,
      alarmTopicArn,
    });

    const zone = new DataAwsRoute53Zone(this, 'Zone', { name: env.dns.zoneName, privateZone: false });
    this.api = new RegionalHttpApi(this, 'Api', {
      name: resourceName(env, 'api'),
      routes: [
        { routeKey: 'GET /health', handler: this.health, ownThrottleRatePerSec: HEALTH_ROUTE_RATE_PER_SEC },
        ...this.runners.routes,
      ],
      kmsKey: key,
      logRetentionDays: env.lambda.logRetentionDays,
      customDomain: env.dns.customDomain ? { domainName: apiName } : undefined,
    });
    const domain = this.api.domain;
    new RegionalFailoverRecord(this, 'ApiRecord', {
      zoneId: zone.zoneId,
      recordName: apiName,
      region,
      target: domain
        ? {
            kind: 'alias',
            dnsName: domain.domainNameConfiguration.targetDomainName,
            zoneId: domain.domainNameConfiguration.hostedZoneId,
          }
        : { kind: 'cname', host: this.api.endpointHost },
      healthCheckHost: this.api.endpointHost,
      metricsProvider,
      alarmTopicArn: AlarmTopic.arn(ROUTE53_METRICS_REGION, account, alarmTopicName(env)),
    });

    if (env.imageSourceAccountId) {
      new ReplicaRegistry(this, 'ImageReplication', {
        sourceAccountId: env.imageSourceAccountId,
        region,
        kmsKey: key,
      });
    }

    new TerraformOutput(this, 'health_function', { value: this.health.function.functionName });
    new TerraformOutput(this, 'api_endpoint', { value: this.api.api.apiEndpoint });
    new TerraformOutput(this, 'state_table', { value: this.stateTable.name });
    new TerraformOutput(this, 'sync_topic_arn', { value: this.bus.topic.arn });
    new TerraformOutput(this, 'sync_inbox_url', { value: this.bus.inbox.url });
    new TerraformOutput(this, 'sync_dead_letter_url', { value: this.bus.deadLetterQueue.url });
    new TerraformOutput(this, 'quota_table', { value: this.quota.table.name });
    new TerraformOutput(this, 'quota_snapshot_bucket', { value: this.quota.snapshots.name });
    new TerraformOutput(this, 'quota_sync_function', { value: this.quota.sync.function.functionName });
    new TerraformOutput(this, 'runner_router_function', { value: this.runners.router.function.functionName });
    new TerraformOutput(this, 'runner_dispatcher_function', {
      value: this.runners.dispatcher.function.functionName,
    });
    new TerraformOutput(this, 'runner_admin_function', { value: this.runners.admin.function.functionName });
    new TerraformOutput(this, 'runner_cache_function', { value: this.runners.cache.function.functionName });
    new TerraformOutput(this, 'runner_queue_urls', {
      value: Object.fromEntries([...this.runners.queues].map(([type, queue]) => [type, queue.url])),
    });
    new TerraformOutput(this, 'runner_dead_letter_url', { value: this.runners.deadLetterQueue.url });
    if (this.secrets) {
      new TerraformOutput(this, 'secrets_replicator_function', {
        value: this.secrets.function.function.functionName,
      });
      new TerraformOutput(this, 'secrets_replication_queue_url', { value: this.secrets.queue.url });
      new TerraformOutput(this, 'secrets_config_secret', { value: this.secrets.configSecret.name });
    }
  }
}
