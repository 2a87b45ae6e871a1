import type { EnvironmentInput } from './schema';
import { twoWayApplicationSecrets } from './secrets';

export const prod: EnvironmentInput = {
  name: 'prod',
  accountId: '333333333333',
  deployRoleArn: 'arn:aws:iam::333333333333:role/estate-deploy',
  planRoleArn: 'arn:aws:iam::333333333333:role/estate-plan',
  github: { repository: 'estate-platform/estate', ids: { owner: '100000001', repository: '200000002' } },
  regions: ['eu-central-1', 'us-east-1'],
  backend: { type: 'terraform-cloud', organization: 'estate-platform', project: 'estate-prod' },
  dns: { zoneName: 'estate.example.com', apiRecordName: 'api' },
  lambda: { provisionedConcurrency: 2, memoryMiB: 512, logRetentionDays: 365 },
  network: { firstVpcCidr: '10.40.0.0/16', natGateways: 'per-zone' },
  alarms: { subscriptions: [{ protocol: 'email', endpoint: 'platform-oncall@example.com' }] },
  imageSourceAccountId: '111111111111',
  secrets: { replication: twoWayApplicationSecrets('eu-central-1', 'us-east-1') },
  // Runners at once per organisation across both regions; the quota sync shares it by demand.
  quota: { resources: { 'runner-concurrency': { limitPerSec: 200 } } },
  runners: { document: { concurrencyResource: 'runner-concurrency' }, capacityPerRegion: 100 },
};
