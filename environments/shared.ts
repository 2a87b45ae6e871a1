import type { EnvironmentInput } from './schema';

/** The shared-services account: ECR, the deployment-artifact bucket, CI runners. */
export const shared: EnvironmentInput = {
  name: 'shared',
  accountId: '111111111111',
  deployRoleArn: 'arn:aws:iam::111111111111:role/estate-deploy',
  planRoleArn: 'arn:aws:iam::111111111111:role/estate-plan',
  github: { repository: 'estate-platform/estate', ids: { owner: '100000001', repository: '200000002' } },
  regions: ['eu-central-1', 'us-east-1'],
  backend: { type: 'terraform-cloud', organization: 'estate-platform', project: 'estate-shared' },
  dns: { zoneName: 'shared.estate.example.com', apiRecordName: 'api' },
  lambda: { provisionedConcurrency: 0 },
  network: { firstVpcCidr: '10.10.0.0/16', natGateways: 'one' },
  workloads: false,
  sharedServices: {
    repositories: ['runner', 'functions'],
    consumerAccountIds: ['222222222222', '333333333333'],
  },
};
