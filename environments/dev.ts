import type { EnvironmentInput } from './schema';
import { twoWayApplicationSecrets } from './secrets';

export const dev: EnvironmentInput = {
  name: 'dev',
  accountId: '222222222222',
  deployRoleArn: 'arn:aws:iam::222222222222:role/estate-deploy',
  planRoleArn: 'arn:aws:iam::222222222222:role/estate-plan',
  github: { repository: 'estate-platform/estate', ids: { owner: '100000001', repository: '200000002' } },
  regions: ['eu-central-1', 'us-east-1'],
  backend: { type: 'terraform-cloud', organization: 'estate-platform', project: 'estate-dev' },
  dns: { zoneName: 'dev.estate.example.com', apiRecordName: 'api' },
  lambda: { provisionedConcurrency: 1, logRetentionDays: 90 },
  network: { firstVpcCidr: '10.20.0.0/16', natGateways: 'one' },
  alarms: { subscriptions: [{ protocol: 'email', endpoint: 'platform-oncall@example.com' }] },
  imageSourceAccountId: '111111111111',
  secrets: { replication: twoWayApplicationSecrets('eu-central-1', 'us-east-1') },
  // Runners at once per organisation across both regions; the quota sync shares it by demand.
  quota: { resources: { 'runner-concurrency': { limitPerSec: 50 } } },
  runners: { document: { concurrencyResource: 'runner-concurrency' }, capacityPerRegion: 50 },
};
