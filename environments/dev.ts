import type { EnvironmentInput } from './schema';

export const dev: EnvironmentInput = {
  name: 'dev',
  accountId: '222222222222',
  deployRoleArn: 'arn:aws:iam::222222222222:role/estate-deploy',
  regions: ['eu-central-1', 'us-east-1'],
  backend: { type: 'terraform-cloud', organization: 'estate-platform', project: 'estate-dev' },
  dns: { zoneName: 'dev.estate.example.com', apiRecordName: 'api' },
  lambda: { provisionedConcurrency: 1, logRetentionDays: 90 },
  network: { firstVpcCidr: '10.20.0.0/16', natGateway: false },
  imageSourceAccountId: '111111111111',
};
