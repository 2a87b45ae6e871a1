import type { AwsRegion, EnvironmentConfig } from '../environments';
import type { KeyAttribute } from '../modules/dynamodb-table';

/** `<env>-<region>`: everything regional of an environment. */
export const regionalStackName = (env: EnvironmentConfig, region: AwsRegion): string =>
  `${env.name}-${region}`;
/** `<env>-global`: what spans the environment's regions. */
export const globalStackName = (env: EnvironmentConfig): string => `${env.name}-global`;
/** `shared-<region>` for the shared account; `<env>-shared-<region>` where another environment hosts them. */
export const sharedStackName = (env: EnvironmentConfig, region: AwsRegion): string =>
  env.name === 'shared' ? `shared-${region}` : `${env.name}-shared-${region}`;
/** `bootstrap-<env>`: what the account needs before any rollout, applied once by hand. */
export const bootstrapStackName = (env: EnvironmentConfig): string => `bootstrap-${env.name}`;
/** The stack holding the Terraform Cloud organisation's projects, workspaces and teams. */
export const TERRAFORM_CLOUD_STACK = 'terraform-cloud';
/** Name prefix of the environment's resources, e.g. `dev-health`. */
export const resourceName = (env: EnvironmentConfig, purpose: string): string => `${env.name}-${purpose}`;
/** Globally unique bucket name: `<env>-<purpose>-<account>-<region>`. */
export const bucketName = (env: EnvironmentConfig, purpose: string, region: AwsRegion): string =>
  `${env.name}-${purpose}-${env.accountId}-${region}`;

/** Tables every region shares (DynamoDB global tables), by purpose, with their partition key. */
export const GLOBAL_TABLES: ReadonlyArray<{ readonly purpose: string; readonly partitionKey: KeyAttribute }> =
  [
    { purpose: 'runner-workflows', partitionKey: { name: 'workflowId', type: 'S' } },
    { purpose: 'idempotency-keys', partitionKey: { name: 'key', type: 'S' } },
    { purpose: 'artifact-cache-index', partitionKey: { name: 'cacheKey', type: 'S' } },
    { purpose: 'region-status', partitionKey: { name: 'region', type: 'S' } },
  ];

/** The regional health function (behind `GET /health` and the Route 53 health check). */
export const healthFunctionName = (env: EnvironmentConfig): string => resourceName(env, 'health');
/** Name of the sync bus and service, e.g. `dev-sync`: their topic, queues, functions and alarms start with it. */
export const syncName = (env: EnvironmentConfig): string => resourceName(env, 'sync');
/** Name of the quota service, e.g. `dev-quota`: its table, function and alarms start with it. */
export const quotaName = (env: EnvironmentConfig): string => resourceName(env, 'quota');
/** Name of the secrets replicator, e.g. `dev-secrets`: its queues, function, rules and alarms start with it. */
export const secretsReplicatorName = (env: EnvironmentConfig): string => resourceName(env, 'secrets');
/** Name of the runners (network, cluster, control plane), e.g. `dev-runners`: their resources start with it. */
export const runnersName = (env: EnvironmentConfig): string => resourceName(env, 'runners');
/** The latency-routed API name every region answers, `<record>.<zone>`. */
export const apiRecordName = (env: EnvironmentConfig): string =>
  `${env.dns.apiRecordName}.${env.dns.zoneName}`;
/** The environment's CloudWatch dashboard (dashboards are global in an account; one per environment). */
export const dashboardName = (env: EnvironmentConfig): string => resourceName(env, 'estate');

/** Alias of the key, in every region, that encrypts what the global stack owns there. */
export const globalKeyAlias = (env: EnvironmentConfig): string => resourceName(env, 'global');
/** Alias of the regional stack's key. */
export const regionalKeyAlias = (env: EnvironmentConfig): string => resourceName(env, 'estate');
/** Alias of the shared services' key. */
export const sharedKeyAlias = (env: EnvironmentConfig): string => resourceName(env, 'artifacts');

/** Name of the environment's alarm topic, the same in each region it has one in. */
export const alarmTopicName = (env: EnvironmentConfig): string => resourceName(env, 'alarms');

/** Route 53 publishes health-check metrics in us-east-1 only: alarms on them live there. */
export const ROUTE53_METRICS_REGION = 'us-east-1';

/** Regions the environment has an alarm topic in: its own, and where Route 53 health-check alarms live. */
export const alarmRegions = (env: EnvironmentConfig): AwsRegion[] =>
  env.regions.includes(ROUTE53_METRICS_REGION) ? [...env.regions] : [...env.regions, ROUTE53_METRICS_REGION];

/** The runner control plane's secrets (values set out of band; see the README's runner section). */
export const runnerSecretNames = (env: EnvironmentConfig) => ({
  webhook: `${env.name}/runners/webhook-secret`,
  githubApp: `${env.name}/runners/github-app-private-key`,
  cacheTokenKey: `${env.name}/runners/cache-token-key`,
});

/** The environment's platform secrets (values set out of band), replicated to every region. */
export const platformSecretNames = (env: EnvironmentConfig): string[] => {
  const runners = runnerSecretNames(env);
  return [runners.webhook, runners.githubApp, runners.cacheTokenKey];
};

/** The VPC CIDR of the environment's i-th region: the first region's /16, then the next ones. */
export function vpcCidr(env: EnvironmentConfig, region: AwsRegion): string {
  const [, second] = env.network.firstVpcCidr.split('.');
  return `10.${Number(second) + env.regions.indexOf(region)}.0.0/16`;
}
