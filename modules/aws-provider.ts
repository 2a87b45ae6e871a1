import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import type { Construct } from 'constructs';
import type { AwsRegion, EnvironmentConfig } from '../environments';

/** AWS services the estate uses; on the emulator each is pointed at its endpoint. */
export const EMULATED_SERVICES = [
  'apigateway',
  'apigatewayv2',
  'autoscaling',
  'cloudwatch',
  'cloudwatchlogs',
  'dynamodb',
  'ec2',
  'ecr',
  'ecs',
  'events',
  'iam',
  'kms',
  'lambda',
  'route53',
  's3',
  'scheduler',
  'secretsmanager',
  'sns',
  'sqs',
  'ssm',
  'sts',
] as const;

export interface RegionProviderProps {
  readonly environment: EnvironmentConfig;
  readonly region: AwsRegion;
  /** Name of the stack, carried in the default tags. */
  readonly stackName: string;
  /** Provider alias; only needed when a stack holds providers for several regions. Default: none. */
  readonly alias?: string;
}

/**
 * The AWS provider for one region of an environment. Outside `local` it uses the credentials the run was
 * given, never a role of its own: a pull request's job holds the read-only plan role, an apply job of the
 * environment's GitHub environment the deploy role (both by GitHub OIDC; an operator, their own profile), so
 * a plan can never hold a role that can apply. `allowed_account_ids` pins the account, so a stack can never be
 * applied to the wrong one. On `local` it talks to the emulator with dummy credentials.
 */
export function regionProvider(scope: Construct, id: string, props: RegionProviderProps): AwsProvider {
  const { environment, region, stackName } = props;
  const defaultTags = [{ tags: { env: environment.name, region, stack: stackName, 'managed-by': 'cdktf' } }];
  if (environment.emulator) {
    const endpoint = environment.emulator.endpoint;
    return new AwsProvider(scope, id, {
      region,
      alias: props.alias,
      defaultTags,
      accessKey: 'test',
      secretKey: 'test',
      skipCredentialsValidation: true,
      skipMetadataApiCheck: 'true',
      skipRegionValidation: true,
      s3UsePathStyle: true,
      endpoints: [Object.fromEntries(EMULATED_SERVICES.map((service) => [service, endpoint]))],
    });
  }
  return new AwsProvider(scope, id, {
    region,
    alias: props.alias,
    defaultTags,
    allowedAccountIds: [environment.accountId],
  });
}
