import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { AwsRegion, EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { BundledFunction } from '../modules/bundled-function';
import { DynamodbTable } from '../modules/dynamodb-table';
import { KmsKey } from '../modules/kms-key';
import { regionalStackName, resourceName } from './names';

export interface RegionalStackProps {
  readonly environment: EnvironmentConfig;
  readonly region: AwsRegion;
}

/** `<env>-<region>`: the region's key, state table and functions. Every region deploys the same stack. */
export class RegionalStack extends TerraformStack {
  readonly health: BundledFunction;
  readonly stateTable: DynamodbTable;

  constructor(scope: Construct, props: RegionalStackProps) {
    const { environment: env, region } = props;
    const name = regionalStackName(env, region);
    super(scope, name);
    configureBackend(this, env, name);
    regionProvider(this, 'aws', { environment: env, region, stackName: name });

    const key = new KmsKey(this, 'Key', {
      aliasName: resourceName(env, 'estate'),
      accountId: env.accountId,
      region,
    });
    this.stateTable = new DynamodbTable(this, 'StateTable', {
      tableName: resourceName(env, 'region-state'),
      partitionKey: { name: 'pk', type: 'S' },
      sortKey: { name: 'sk', type: 'S' },
      kmsKey: key,
      deletionProtection: env.dynamodb.deletionProtection,
    });

    this.health = new BundledFunction(this, 'Health', {
      entry: 'runtime/health/handler.ts',
      functionName: resourceName(env, 'health'),
      region,
      kmsKey: key,
      statements: [
        { sid: 'ProbeStateTable', actions: ['dynamodb:DescribeTable'], resources: [this.stateTable.arn] },
      ],
      environment: { STATE_TABLE_NAME: this.stateTable.name },
      memoryMiB: env.lambda.memoryMiB,
      timeoutSec: env.lambda.timeoutSec,
      provisionedConcurrency: env.lambda.provisionedConcurrency,
      logRetentionDays: env.lambda.logRetentionDays,
      encryptEnvironment: env.lambda.environmentCmk,
    });

    new TerraformOutput(this, 'health_function', { value: this.health.function.functionName });
    new TerraformOutput(this, 'health_alias_arn', { value: this.health.alias.arn });
    new TerraformOutput(this, 'state_table', { value: this.stateTable.name });
  }
}
