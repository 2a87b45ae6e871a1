import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { BucketReplication } from '../../modules/bucket-replication';
import { BundledFunction } from '../../modules/bundled-function';
import { ContainerRegistry } from '../../modules/container-registry';
import { DynamodbTable } from '../../modules/dynamodb-table';
import { RegionalFailoverRecord } from '../../modules/failover-record';
import { RegionalHttpApi } from '../../modules/http-api';
import { KmsKey } from '../../modules/kms-key';
import { PlatformSecrets } from '../../modules/platform-secrets';
import { ReplicaRegistry } from '../../modules/replica-registry';
import { ZoneDelegation } from '../../modules/zone-delegation';
import { RunnerCluster } from '../../modules/runner-cluster';
import { RunnerNetwork } from '../../modules/runner-network';
import { Schedule } from '../../modules/schedule';
import { SecureBucket } from '../../modules/secure-bucket';
import { SyncBus } from '../../modules/sync-bus';
import { only, policyOf, resources, type Block } from '../support/synthesized';

/** A reference to `type.<id starting with prefix>.attr`, whatever hash cdktf gave the id. */
const ref = (type: string, prefix: string, attr: string) =>
  expect.stringMatching(new RegExp(`^\\$\\{${type}\\.${prefix}_[0-9A-F]{8}\\.${attr}\\}$`));

const ACCOUNT = '222222222222';
const ALARMS = 'arn:aws:sns:eu-central-1:222222222222:dev-alarms';
const key = (scope: Construct, region = 'eu-central-1', id = `Key-${region}`) =>
  new KmsKey(scope, id, { aliasName: 'k', accountId: ACCOUNT, region });
const fn = (scope: Construct) =>
  new BundledFunction(scope, 'Fn', {
    entry: 'runtime/health/handler.ts',
    functionName: 'dev-health',
    region: 'eu-central-1',
    kmsKey: key(scope),
    statements: [],
    alarmTopicArn: ALARMS,
  });

describe('SecureBucket', () => {
  const synthesized = Testing.synthScope(
    (scope) =>
      new SecureBucket(scope, 'B', { bucketName: 'dev-b-1', kmsKey: key(scope), expireAfterDays: 7 }),
  );

  it('blocks every kind of public access and enforces bucket-owner objects', () => {
    expect(only(synthesized, 'aws_s3_bucket_public_access_block')).toMatchObject({
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    });
    expect(only(synthesized, 'aws_s3_bucket_ownership_controls')).toMatchObject({
      rule: { object_ownership: 'BucketOwnerEnforced' },
    });
  });

  it('encrypts with the key, versions, refuses plain HTTP and expires what it should', () => {
    expect(only(synthesized, 'aws_s3_bucket_server_side_encryption_configuration').rule).toEqual([
      {
        apply_server_side_encryption_by_default: {
          sse_algorithm: 'aws:kms',
          kms_master_key_id: ref('aws_kms_key', 'Key-eu-central-1_Key', 'arn'),
        },
        bucket_key_enabled: true,
      },
    ]);
    expect(only(synthesized, 'aws_s3_bucket_versioning').versioning_configuration).toEqual({
      status: 'Enabled',
    });
    expect(policyOf(only(synthesized, 'aws_s3_bucket_policy')).Statement[0]).toMatchObject({
      Effect: 'Deny',
      Action: 's3:*',
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
    const [rule] = only(synthesized, 'aws_s3_bucket_lifecycle_configuration').rule as Block[];
    expect(rule).toMatchObject({
      expiration: [{ days: 7 }],
      noncurrent_version_expiration: [{ noncurrent_days: 30 }],
    });
  });

  it('refuses a name S3 would refuse', () => {
    expect(() =>
      Testing.synthScope(
        (scope) => new SecureBucket(scope, 'B', { bucketName: 'Bad_Name', kmsKey: key(scope) }),
      ),
    ).toThrow('SecureBucket: invalid bucketName: received "Bad_Name"');
  });
});

describe('SyncBus', () => {
  const bus = (scope: Construct, peers: string[]) =>
    new SyncBus(scope, 'Bus', {
      name: 'dev-sync',
      region: 'eu-central-1',
      peerRegions: peers,
      accountId: ACCOUNT,
      kmsKey: key(scope),
    });

  it("subscribes every peer's inbox to this region's topic with raw delivery", () => {
    const synthesized = Testing.synthScope((scope) => bus(scope, ['us-east-1', 'ap-southeast-1']));
    expect(
      resources(synthesized, 'aws_sns_topic_subscription').map((s) => [
        s.endpoint,
        s.protocol,
        s.raw_message_delivery,
      ]),
    ).toEqual([
      ['arn:aws:sqs:ap-southeast-1:222222222222:dev-sync-inbox', 'sqs', true],
      ['arn:aws:sqs:us-east-1:222222222222:dev-sync-inbox', 'sqs', true],
    ]);
  });

  it("admits exactly the peers' topics to its inbox, which redrives to an encrypted DLQ", () => {
    const synthesized = Testing.synthScope((scope) => bus(scope, ['us-east-1']));
    const inboxPolicy = resources(synthesized, 'aws_sqs_queue_policy').find((p) =>
      String(p.queue_url).includes('Bus_Inbox_'),
    );
    const [statement] = policyOf(inboxPolicy ?? {}).Statement;
    expect(statement).toMatchObject({
      Principal: { Service: 'sns.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Condition: { ArnEquals: { 'aws:SourceArn': ['arn:aws:sns:us-east-1:222222222222:dev-sync'] } },
    });
    const queues = resources(synthesized, 'aws_sqs_queue');
    const inbox = queues.find((q) => q.name === 'dev-sync-inbox');
    expect(JSON.parse(inbox?.redrive_policy as string)).toEqual({
      deadLetterTargetArn: ref('aws_sqs_queue', 'Bus_DeadLetters', 'arn'),
      maxReceiveCount: 5,
    });
    for (const queue of queues) expect(queue.kms_master_key_id).toBeDefined();
    expect(only(synthesized, 'aws_sns_topic').kms_master_key_id).toBeDefined();
  });

  it.each([
    [[], 'SyncBus: invalid peerRegions: received []'],
    [['eu-central-1'], 'expected distinct regions other than eu-central-1'],
  ])('refuses peers %j', (peers, message) => {
    expect(() => Testing.synthScope((scope) => bus(scope, peers))).toThrow(message);
  });
});

describe('Schedule', () => {
  it("invokes the function's live alias, permitted only for its rule", () => {
    const synthesized = Testing.synthScope(
      (scope) => new Schedule(scope, 'S', { ruleName: 'r', expression: 'rate(1 minute)', target: fn(scope) }),
    );
    expect(only(synthesized, 'aws_cloudwatch_event_rule').schedule_expression).toBe('rate(1 minute)');
    expect(only(synthesized, 'aws_cloudwatch_event_target').arn).toEqual(
      ref('aws_lambda_alias', 'Fn_Live', 'arn'),
    );
    expect(only(synthesized, 'aws_lambda_permission')).toMatchObject({
      principal: 'events.amazonaws.com',
      qualifier: ref('aws_lambda_alias', 'Fn_Live', 'name'),
      source_arn: ref('aws_cloudwatch_event_rule', 'S_Rule', 'arn'),
    });
  });

  it.each(['every minute', 'rate(1 minutes)', 'rate(5 minute)', 'rate(0 minutes)'])(
    'refuses %s, which EventBridge would refuse',
    (expression) => {
      expect(() =>
        Testing.synthScope(
          (scope) => new Schedule(scope, 'S', { ruleName: 'r', expression, target: fn(scope) }),
        ),
      ).toThrow(`Schedule: invalid expression: received ${JSON.stringify(expression)}`);
    },
  );
});

describe('RegionalHttpApi', () => {
  it('gives a route asked for it a throttle of its own, apart from the default, once the route exists', () => {
    const synthesized = Testing.synthScope((scope) => {
      const handler = fn(scope);
      new RegionalHttpApi(scope, 'Api', {
        name: 'dev-api',
        routes: [
          { routeKey: 'GET /health', handler, ownThrottleRatePerSec: 50 },
          { routeKey: 'POST /webhook', handler },
        ],
        kmsKey: key(scope, 'eu-central-1', 'K2'),
        throttleRatePerSec: 100,
      });
    });
    const stage = only(synthesized, 'aws_apigatewayv2_stage');
    expect(stage.default_route_settings).toEqual({ throttling_rate_limit: 100, throttling_burst_limit: 200 });
    expect(stage.route_settings).toEqual([
      { route_key: 'GET /health', throttling_rate_limit: 50, throttling_burst_limit: 100 },
    ]);
    expect(stage.depends_on).toEqual([
      expect.stringMatching(/^aws_apigatewayv2_route\.Api_Route0_/),
      expect.stringMatching(/^aws_apigatewayv2_route\.Api_Route1_/),
    ]);
  });

  it('routes to the live alias with a permission scoped to the route, and logs access', () => {
    const synthesized = Testing.synthScope((scope) => {
      new RegionalHttpApi(scope, 'Api', {
        name: 'dev-api',
        routes: [{ routeKey: 'GET /health', handler: fn(scope) }],
        kmsKey: key(scope, 'eu-central-1', 'K2'),
      });
    });
    expect(only(synthesized, 'aws_apigatewayv2_integration')).toMatchObject({
      integration_type: 'AWS_PROXY',
      payload_format_version: '2.0',
      integration_uri: ref('aws_lambda_alias', 'Fn_Live', 'invoke_arn'),
    });
    expect(only(synthesized, 'aws_apigatewayv2_route').route_key).toBe('GET /health');
    expect(only(synthesized, 'aws_lambda_permission').source_arn).toMatch(
      /^\$\{aws_apigatewayv2_api\.Api_\w+\.execution_arn\}\/\*\/GET\/health$/,
    );
    expect(
      (only(synthesized, 'aws_apigatewayv2_stage').access_log_settings as Block).destination_arn,
    ).toBeDefined();
    expect(resources(synthesized, 'aws_apigatewayv2_domain_name')).toHaveLength(0);
  });

  it('serves a regional custom domain, waiting for its certificate without writing any validation record', () => {
    const synthesized = Testing.synthScope((scope) => {
      new RegionalHttpApi(scope, 'Api', {
        name: 'dev-api',
        routes: [{ routeKey: 'GET /health', handler: fn(scope) }],
        kmsKey: key(scope, 'eu-central-1', 'K2'),
        customDomain: { domainName: 'api.dev.example.com' },
      });
    });
    expect(only(synthesized, 'aws_acm_certificate')).toMatchObject({
      domain_name: 'api.dev.example.com',
      validation_method: 'DNS',
    });
    // The global stack owns the one validation record of every region (ACM gives an account the same one).
    expect(resources(synthesized, 'aws_route53_record')).toHaveLength(0);
    expect(only(synthesized, 'aws_acm_certificate_validation').validation_record_fqdns).toBeUndefined();
    expect(only(synthesized, 'aws_apigatewayv2_domain_name').domain_name_configuration).toMatchObject({
      endpoint_type: 'REGIONAL',
      security_policy: 'TLS_1_2',
    });
  });

  it('refuses a malformed route key', () => {
    expect(() =>
      Testing.synthScope(
        (scope) =>
          new RegionalHttpApi(scope, 'Api', {
            name: 'a',
            routes: [{ routeKey: 'health', handler: fn(scope) }],
            kmsKey: key(scope, 'eu-central-1', 'K2'),
          }),
      ),
    ).toThrow('RegionalHttpApi: invalid routeKey: received "health"; expected METHOD /path');
  });
});

describe('RegionalFailoverRecord', () => {
  const synthesized = Testing.synthScope((scope) => {
    const metricsProvider = new AwsProvider(scope, 'metrics', { region: 'us-east-1', alias: 'metrics' });
    new RegionalFailoverRecord(scope, 'R', {
      zoneId: 'Z1',
      recordName: 'api.dev.example.com',
      region: 'eu-central-1',
      target: { kind: 'cname', host: 'abc.execute-api.eu-central-1.amazonaws.com' },
      healthCheckHost: 'abc.execute-api.eu-central-1.amazonaws.com',
      metricsProvider,
      alarmTopicArn: 'arn:aws:sns:us-east-1:222222222222:dev-alarms',
    });
  });

  it("checks the region's own /health over HTTPS every 10 s, failing after 3, measuring latency", () => {
    expect(only(synthesized, 'aws_route53_health_check')).toMatchObject({
      type: 'HTTPS',
      fqdn: 'abc.execute-api.eu-central-1.amazonaws.com',
      resource_path: '/health',
      request_interval: 10,
      failure_threshold: 3,
      measure_latency: true,
    });
  });

  it('routes by latency to this region while its check passes, and alarms from us-east-1', () => {
    expect(only(synthesized, 'aws_route53_record')).toMatchObject({
      name: 'api.dev.example.com',
      set_identifier: 'eu-central-1',
      latency_routing_policy: { region: 'eu-central-1' },
      health_check_id: ref('aws_route53_health_check', 'R_HealthCheck', 'id'),
      type: 'CNAME',
      ttl: 60,
    });
    expect(only(synthesized, 'aws_cloudwatch_metric_alarm')).toMatchObject({
      provider: 'aws.metrics',
      namespace: 'AWS/Route53',
      metric_name: 'HealthCheckStatus',
      comparison_operator: 'LessThanThreshold',
    });
  });
});

describe('RunnerNetwork and RunnerCluster', () => {
  const synthesized = Testing.synthScope((scope) => {
    new RunnerNetwork(scope, 'N', {
      name: 'dev-runners',
      cidr: '10.20.0.0/16',
      region: 'eu-central-1',
      kmsKey: key(scope),
    });
    new RunnerCluster(scope, 'C', { clusterName: 'dev-runners' });
  });

  it('spans two zones with public and private subnets, NAT per zone by default, S3 and DynamoDB gateway endpoints and flow logs', () => {
    expect(
      resources(synthesized, 'aws_subnet')
        .map((s) => s.cidr_block)
        .sort(),
    ).toEqual(['10.20.0.0/20', '10.20.128.0/20', '10.20.144.0/20', '10.20.16.0/20']);
    expect(resources(synthesized, 'aws_nat_gateway')).toHaveLength(2);
    expect(
      resources(synthesized, 'aws_vpc_endpoint')
        .filter((e) => e.vpc_endpoint_type === 'Gateway')
        .map((e) => [e.service_name, e.vpc_endpoint_type]),
    ).toEqual([
      ['com.amazonaws.eu-central-1.dynamodb', 'Gateway'],
      ['com.amazonaws.eu-central-1.s3', 'Gateway'],
    ]);
    expect(only(synthesized, 'aws_flow_log')).toMatchObject({ traffic_type: 'ALL' });
    expect(only(synthesized, 'aws_default_security_group')).toMatchObject({ ingress: [], egress: [] });
  });

  it('runs runners on Fargate and Fargate Spot', () => {
    expect(only(synthesized, 'aws_ecs_cluster_capacity_providers')).toMatchObject({
      capacity_providers: ['FARGATE', 'FARGATE_SPOT'],
      default_capacity_provider_strategy: [
        { capacity_provider: 'FARGATE', base: 1, weight: 1 },
        { capacity_provider: 'FARGATE_SPOT', weight: 3 },
      ],
    });
  });

  const network = (natGateways: 'per-zone' | 'one' | 'none', interfaceEndpoints: boolean) =>
    Testing.synthScope((scope) => {
      new RunnerNetwork(scope, 'N', {
        name: 'n',
        cidr: '10.20.0.0/16',
        region: 'eu-central-1',
        kmsKey: key(scope),
        natGateways,
        interfaceEndpoints,
      });
    });
  const natOfRoute = (table: Block) => (table.route as Block[])[0]?.nat_gateway_id;

  it('gives each zone its own NAT gateway and private route table when asked per zone', () => {
    const perZone = network('per-zone', true);
    const gateways = resources(perZone, 'aws_nat_gateway');
    expect(gateways.map((g) => g.subnet_id)).toEqual([
      expect.stringMatching(/^\$\{aws_subnet\.N_Public0_\w+\.id\}$/),
      expect.stringMatching(/^\$\{aws_subnet\.N_Public1_\w+\.id\}$/),
    ]);
    const privateTables = resources(perZone, 'aws_route_table').filter((t) =>
      String((t.tags as Block).Name).includes('private'),
    );
    expect(privateTables.map(natOfRoute)).toEqual([
      expect.stringContaining('aws_nat_gateway.N_Nat0_'),
      expect.stringContaining('aws_nat_gateway.N_Nat1_'),
    ]);
  });

  it('routes both zones through one gateway when asked for one, and leaves NAT out for none', () => {
    expect(resources(network('one', true), 'aws_nat_gateway')).toHaveLength(1);
    expect(resources(network('none', false), 'aws_nat_gateway')).toHaveLength(0);
  });

  it('reaches ECR, CloudWatch Logs and STS through interface endpoints admitting only the VPC', () => {
    const synthesized = network('one', true);
    const interfaces = resources(synthesized, 'aws_vpc_endpoint').filter(
      (e) => e.vpc_endpoint_type === 'Interface',
    );
    expect(interfaces.map((e) => e.service_name).sort()).toEqual([
      'com.amazonaws.eu-central-1.ecr.api',
      'com.amazonaws.eu-central-1.ecr.dkr',
      'com.amazonaws.eu-central-1.logs',
      'com.amazonaws.eu-central-1.sts',
    ]);
    for (const endpoint of interfaces) {
      expect(endpoint.private_dns_enabled).toBe(true);
      expect(endpoint.subnet_ids).toHaveLength(2);
    }
    const group = resources(synthesized, 'aws_security_group').find((g) => g.name === 'n-endpoints');
    expect(group?.ingress).toEqual([
      expect.objectContaining({ from_port: 443, cidr_blocks: ['10.20.0.0/16'] }),
    ]);
    expect(
      resources(network('one', false), 'aws_vpc_endpoint').filter((e) => e.vpc_endpoint_type === 'Interface'),
    ).toHaveLength(0);
  });
});

describe('shared services', () => {
  it('makes repositories immutable, scanned, pullable by the consumers, replicated to every destination', () => {
    const synthesized = Testing.synthScope((scope) => {
      new ContainerRegistry(scope, 'R', {
        repositories: ['runner'],
        kmsKey: key(scope),
        pullAccountIds: ['333333333333'],
        replicateTo: [
          { region: 'us-east-1', accountId: '111111111111' },
          { region: 'eu-central-1', accountId: '333333333333' },
        ],
      });
    });
    expect(only(synthesized, 'aws_ecr_repository')).toMatchObject({
      image_tag_mutability: 'IMMUTABLE',
      image_scanning_configuration: { scan_on_push: true },
    });
    expect(policyOf(only(synthesized, 'aws_ecr_repository_policy')).Statement[0]).toMatchObject({
      Principal: { AWS: ['arn:aws:iam::333333333333:root'] },
    });
    expect(only(synthesized, 'aws_ecr_replication_configuration').replication_configuration).toEqual({
      rule: [
        {
          destination: [
            { region: 'us-east-1', registry_id: '111111111111' },
            { region: 'eu-central-1', registry_id: '333333333333' },
          ],
        },
      ],
    });
  });

  it('replicates the artifact bucket with RTC and metrics, under a role scoped to those buckets and keys', () => {
    const synthesized = Testing.synthScope((scope) => {
      const source = new SecureBucket(scope, 'Artifacts', { bucketName: 'a-eu', kmsKey: key(scope) });
      new BucketReplication(scope, 'Rep', {
        source,
        accountId: ACCOUNT,
        region: 'eu-central-1',
        replicas: [{ region: 'us-east-1', bucketName: 'a-us', keyAlias: 'k' }],
      });
    });
    const [rule] = only(synthesized, 'aws_s3_bucket_replication_configuration').rule as Block[];
    expect(rule?.destination).toMatchObject({
      bucket: 'arn:aws:s3:::a-us',
      encryption_configuration: { replica_kms_key_id: 'arn:aws:kms:us-east-1:222222222222:alias/k' },
      replication_time: { status: 'Enabled', time: { minutes: 15 } },
      metrics: { status: 'Enabled', event_threshold: { minutes: 15 } },
    });
    const statements = policyOf(only(synthesized, 'aws_iam_role_policy')).Statement;
    expect(statements.find((s) => s.Sid === 'WriteReplicas')?.Resource).toEqual(['arn:aws:s3:::a-us/*']);
    expect(statements.find((s) => s.Sid === 'EncryptReplicas')?.Condition).toEqual({
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': ['alias/k'] },
    });
  });

  const replica = Testing.synthScope(
    (scope) =>
      new ReplicaRegistry(scope, 'P', {
        sourceAccountId: '111111111111',
        region: 'us-east-1',
        kmsKey: key(scope, 'us-east-1'),
      }),
  );

  it('gives repositories that replication creates the estate settings, not ECR defaults', () => {
    expect(only(replica, 'aws_ecr_repository_creation_template')).toMatchObject({
      prefix: 'ROOT',
      applied_for: ['REPLICATION'],
      image_tag_mutability: 'IMMUTABLE',
      encryption_configuration: [
        { encryption_type: 'KMS', kms_key: ref('aws_kms_key', 'Key-us-east-1_Key', 'arn') },
      ],
      custom_role_arn: ref('aws_iam_role', 'P_TemplateRole', 'arn'),
    });
    const lifecycle = JSON.parse(
      only(replica, 'aws_ecr_repository_creation_template').lifecycle_policy as string,
    ) as { rules: unknown[] };
    expect(lifecycle.rules).toHaveLength(2);
    expect(only(replica, 'aws_ecr_registry_scanning_configuration').rule).toEqual([
      { scan_frequency: 'SCAN_ON_PUSH', repository_filter: [{ filter: '*', filter_type: 'WILDCARD' }] },
    ]);
    // The trust AWS documents for template roles: no condition ECR is not documented to send.
    expect(policyOf(only(replica, 'aws_iam_role'), 'assume_role_policy').Statement).toEqual([
      { Effect: 'Allow', Principal: { Service: 'ecr.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ]);
  });

  it('lets the shared account replicate into a consumer registry, and nothing else', () => {
    const synthesized = replica;
    expect(policyOf(only(synthesized, 'aws_ecr_registry_policy')).Statement).toEqual([
      expect.objectContaining({
        Principal: { AWS: 'arn:aws:iam::111111111111:root' },
        Action: ['ecr:CreateRepository', 'ecr:ReplicateImage'],
        Resource: 'arn:aws:ecr:us-east-1:222222222222:repository/*',
      }),
    ]);
  });
});

describe('global data', () => {
  const regionKey = (scope: Construct, region: string) =>
    new KmsKey(scope, `Key-${region}`, {
      aliasName: 'k',
      accountId: ACCOUNT,
      region,
      provider: new AwsProvider(scope, `aws-${region}`, { region, alias: region }),
    });
  const globalTable = Testing.synthScope((scope) => {
    new AwsProvider(scope, 'aws', { region: 'eu-central-1' });
    new DynamodbTable(scope, 'T', {
      tableName: 'dev-t',
      partitionKey: { name: 'pk', type: 'S' },
      kmsKey: key(scope, 'eu-central-1'),
      replicaKeys: [regionKey(scope, 'us-east-1'), regionKey(scope, 'ap-southeast-1')],
    });
  });

  it('replicates a table to every other region, through that region’s provider, with PITR and its key', () => {
    const table = only(globalTable, 'aws_dynamodb_table');
    expect(table).toMatchObject({ stream_enabled: true, stream_view_type: 'NEW_AND_OLD_IMAGES' });
    expect(
      resources(globalTable, 'aws_dynamodb_table_replica')
        .map((r) => [r.provider, r.point_in_time_recovery])
        .sort(),
    ).toEqual([
      ['aws.ap-southeast-1', true],
      ['aws.us-east-1', true],
    ]);
  });

  it('protects every replica from deletion and from a plan that would drop it', () => {
    const table = only(globalTable, 'aws_dynamodb_table');
    expect(table.lifecycle).toEqual({ prevent_destroy: true, ignore_changes: ['replica'] });
    for (const replica of resources(globalTable, 'aws_dynamodb_table_replica')) {
      expect(replica.deletion_protection_enabled).toBe(true);
      expect(replica.lifecycle).toEqual({ prevent_destroy: true });
    }
  });

  it.each([
    [
      'a replica key made without its region’s provider',
      'us-east-1',
      "keys made with their region's provider",
    ],
    ['a replica in the table’s own region', 'eu-central-1', "none in the table's region eu-central-1"],
  ])('refuses %s', (_what, replicaRegion, message) => {
    expect(() =>
      Testing.synthScope((scope) => {
        new DynamodbTable(scope, 'T', {
          tableName: 'dev-t',
          partitionKey: { name: 'pk', type: 'S' },
          kmsKey: key(scope),
          replicaKeys: [key(scope, replicaRegion, 'Other')],
        });
      }),
    ).toThrow(message);
  });

  it('replicates secrets to every other region under that region’s key, with no value in Terraform', () => {
    const synthesized = Testing.synthScope((scope) => {
      new PlatformSecrets(scope, 'S', {
        names: ['dev/runners/webhook-secret'],
        primaryKey: key(scope),
        replicaKeys: [key(scope, 'us-east-1')],
      });
    });
    expect(only(synthesized, 'aws_secretsmanager_secret')).toMatchObject({
      name: 'dev/runners/webhook-secret',
      replica: [{ region: 'us-east-1', kms_key_id: ref('aws_kms_key', 'Key-us-east-1_Key', 'arn') }],
    });
    expect(resources(synthesized, 'aws_secretsmanager_secret_version')).toHaveLength(0);
  });
});

describe('ZoneDelegation', () => {
  const delegate = (childZoneName: string) =>
    Testing.synthScope(
      (scope) =>
        new ZoneDelegation(scope, 'D', {
          parentZoneId: 'Z1',
          parentZoneName: 'estate.example.com',
          childZoneName,
          nameServers: ['ns-1.example.net', 'ns-2.example.net'],
        }),
    );

  it("writes the child's NS record in the parent zone, once the child has name servers", () => {
    expect(only(delegate('dev.estate.example.com'), 'aws_route53_record')).toMatchObject({
      zone_id: 'Z1',
      name: 'dev.estate.example.com',
      type: 'NS',
      ttl: 172800,
      records: ['ns-1.example.net', 'ns-2.example.net'],
      count: '${min(length(["ns-1.example.net", "ns-2.example.net"]), 1)}',
    });
  });

  it.each(['estate.example.com', 'dev.estate.example.org', 'devestate.example.com'])(
    'refuses %s, which is not below the parent zone',
    (child) => {
      expect(() => delegate(child)).toThrow(
        `ZoneDelegation: invalid childZoneName: received "${child}"; expected a name below estate.example.com`,
      );
    },
  );
});
