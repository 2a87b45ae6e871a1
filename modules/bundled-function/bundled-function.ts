import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { LambdaAlias } from '@cdktf/provider-aws/lib/lambda-alias';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaFunctionEventInvokeConfig } from '@cdktf/provider-aws/lib/lambda-function-event-invoke-config';
import { LambdaProvisionedConcurrencyConfig } from '@cdktf/provider-aws/lib/lambda-provisioned-concurrency-config';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { AssetType, TerraformAsset, Token } from 'cdktf';
import { Construct } from 'constructs';
import { LOG_RETENTION_DAYS } from '../../environments/schema';
import { notifyingAlarm } from '../lib/alarm';
import type { KmsKey } from '../kms-key';
import {
  assertLeastPrivilege,
  policyDocument,
  type PolicyStatement,
  serviceTrustPolicy,
} from '../lib/policy';
import { fail, requireIntInRange, requireMatch } from '../lib/validate';
import { bundleHandler, type HandlerBundle } from './bundle';

/** Environment variable names Lambda reserves for itself. */
const RESERVED_VARIABLES = /^(AWS_.*|_HANDLER|_X_AMZN_TRACE_ID|LAMBDA_TASK_ROOT|LAMBDA_RUNTIME_DIR|TZ)$/;
/** Lambda's limit on a function's environment variables, names and values together. */
export const LAMBDA_ENVIRONMENT_BYTES = 4096;
/** What a value known only at apply (an ARN, a URL, an id) is counted as against that limit. */
const UNRESOLVED_VALUE_BYTES = 256;

export interface BundledFunctionProps {
  /** Handler source, `runtime/<capability>/handler.ts`, exporting `handler`. */
  readonly entry: string;
  /** Function name, unique in the account and region (1-64 of letters, digits, `-`, `_`). */
  readonly functionName: string;
  /** Region the function runs in; names its role (IAM is global, the same function exists per region). */
  readonly region: string;
  /** Customer-managed key for the log group, the dead-letter queue and (unless off) environment variables. */
  readonly kmsKey: KmsKey;
  /** Least-privilege statements of the function's role, beyond logging, tracing and its DLQ. */
  readonly statements: readonly PolicyStatement[];
  /** Environment variables (names Lambda reserves are refused). Default: none. */
  readonly environment?: Readonly<Record<string, string>>;
  /** Memory in MiB (128-10240). Default: 256. */
  readonly memoryMiB?: number;
  /** Timeout in seconds (1-900). Default: 10. */
  readonly timeoutSec?: number;
  /** Provisioned concurrency on the `live` alias; 0 for none. Default: 0. */
  readonly provisionedConcurrency?: number;
  /** Log retention in days, a CloudWatch Logs value. Default: 365. */
  readonly logRetentionDays?: number;
  /** Encrypt environment variables with `kmsKey`. Default: true. */
  readonly encryptEnvironment?: boolean;
  /** ARN of the topic (in the function's region) notified when the error or throttle alarm fires or clears. */
  readonly alarmTopicArn: string;
  /**
   * How an asynchronous invocation (a schedule's) is retried after it fails: Lambda's own retries (0-2)
   * and how old an event may get, in seconds (60-21,600). Default: 2 retries, 6 hours.
   */
  readonly asyncRetries?: { readonly attempts: number; readonly maxEventAgeSec: number };
  /** Reserved concurrency: at most this many instances at once (1 makes runs one at a time). Default: none. */
  readonly reservedConcurrency?: number;
}

/**
 * A Lambda function bundled with esbuild from `runtime/` (nodejs22.x, arm64, X-Ray active), published,
 * with a `live` alias (provisioned concurrency on it when asked), a KMS-encrypted log group, an encrypted
 * dead-letter queue that receives async invocations which failed every retry (an on-failure destination,
 * which carries the error with the event), a least-privilege role, and alarms on errors and throttles.
 */
export class BundledFunction extends Construct {
  readonly bundle: HandlerBundle;
  readonly function: LambdaFunction;
  readonly alias: LambdaAlias;
  readonly role: IamRole;
  /** The role's permissions: whatever the function triggers must wait for it (IAM is eventually consistent). */
  readonly policy: IamRolePolicy;
  readonly logGroup: CloudwatchLogGroup;
  readonly deadLetterQueue: SqsQueue;
  readonly errorAlarm: CloudwatchMetricAlarm;
  readonly throttleAlarm: CloudwatchMetricAlarm;

  /** The ARN of a function's role, known before the function exists (e.g. for its own environment). */
  static roleArnOf(accountId: string, functionName: string, region: string): string {
    return `arn:aws:iam::${accountId}:role/${BundledFunction.roleNameOf(functionName, region)}`;
  }

  private static roleNameOf(functionName: string, region: string): string {
    return `${functionName}-${region}`;
  }

  /** Name of a function's dead-letter queue (async invocations that failed every retry). */
  static deadLetterQueueNameOf(functionName: string): string {
    return `${functionName}-dlq`;
  }

  /** Name of a function's alarm on its `Errors` or `Throttles`. */
  static alarmNameOf(functionName: string, metricName: 'Errors' | 'Throttles'): string {
    return `${functionName}-${metricName.toLowerCase()}`;
  }

  /** Names of every alarm a function has. */
  static alarmNamesOf(functionName: string): string[] {
    return [
      BundledFunction.alarmNameOf(functionName, 'Errors'),
      BundledFunction.alarmNameOf(functionName, 'Throttles'),
    ];
  }

  constructor(scope: Construct, id: string, props: BundledFunctionProps) {
    super(scope, id);
    const name = requireMatch(
      'BundledFunction',
      'functionName',
      props.functionName,
      /^[a-zA-Z0-9_-]{1,64}$/,
      '1-64 letters, digits, - or _',
    );
    const roleName = BundledFunction.roleNameOf(name, props.region);
    if (roleName.length > 64)
      fail(
        'BundledFunction',
        'functionName',
        name,
        `a name short enough that "${roleName}" fits IAM's 64 characters`,
      );
    const memoryMiB = requireIntInRange('BundledFunction', 'memoryMiB', props.memoryMiB ?? 256, 128, 10240);
    const timeoutSec = requireIntInRange('BundledFunction', 'timeoutSec', props.timeoutSec ?? 10, 1, 900);
    const provisioned = requireIntInRange(
      'BundledFunction',
      'provisionedConcurrency',
      props.provisionedConcurrency ?? 0,
      0,
      1000,
    );
    const asyncRetries = {
      attempts: requireIntInRange(
        'BundledFunction',
        'asyncRetries.attempts',
        props.asyncRetries?.attempts ?? 2,
        0,
        2,
      ),
      maxEventAgeSec: requireIntInRange(
        'BundledFunction',
        'asyncRetries.maxEventAgeSec',
        props.asyncRetries?.maxEventAgeSec ?? 21_600,
        60,
        21_600,
      ),
    };
    const reserved =
      props.reservedConcurrency === undefined
        ? undefined
        : requireIntInRange('BundledFunction', 'reservedConcurrency', props.reservedConcurrency, 1, 1000);
    if (reserved !== undefined && provisioned > reserved)
      fail(
        'BundledFunction',
        'provisionedConcurrency',
        provisioned,
        `at most the reserved concurrency (${reserved})`,
      );
    const retention = props.logRetentionDays ?? 365;
    if (!(LOG_RETENTION_DAYS as readonly number[]).includes(retention)) {
      fail('BundledFunction', 'logRetentionDays', retention, `one of ${LOG_RETENTION_DAYS.join(', ')}`);
    }
    const variables = props.environment ?? {};
    for (const key of Object.keys(variables)) {
      if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(key) || RESERVED_VARIABLES.test(key)) {
        fail(
          'BundledFunction',
          'environment key',
          key,
          'a variable name Lambda does not reserve (not AWS_*, _HANDLER, TZ, ...)',
        );
      }
    }
    const environmentBytes = Object.entries(variables).reduce(
      (sum, [key, value]) =>
        sum +
        Buffer.byteLength(key) +
        (Token.isUnresolved(value) ? UNRESOLVED_VALUE_BYTES : Buffer.byteLength(value)),
      0,
    );
    if (environmentBytes > LAMBDA_ENVIRONMENT_BYTES)
      fail(
        'BundledFunction',
        'environment',
        `${environmentBytes} bytes (a value known only at apply counted as ${UNRESOLVED_VALUE_BYTES})`,
        `at most ${LAMBDA_ENVIRONMENT_BYTES} bytes of names and values (Lambda's limit)`,
      );
    assertLeastPrivilege(`BundledFunction ${name}`, props.statements);

    this.bundle = bundleHandler(props.entry);
    const code = new TerraformAsset(this, 'Code', { path: this.bundle.archivePath, type: AssetType.FILE });

    this.logGroup = new CloudwatchLogGroup(this, 'Logs', {
      name: `/aws/lambda/${name}`,
      retentionInDays: retention,
      kmsKeyId: props.kmsKey.arn,
    });
    this.deadLetterQueue = new SqsQueue(this, 'DeadLetters', {
      name: BundledFunction.deadLetterQueueNameOf(name),
      kmsMasterKeyId: props.kmsKey.arn,
      messageRetentionSeconds: 14 * 24 * 3600,
    });

    this.role = new IamRole(this, 'Role', {
      name: roleName,
      assumeRolePolicy: serviceTrustPolicy('lambda.amazonaws.com', { sourceAccount: props.kmsKey.accountId }),
    });
    const baseline: PolicyStatement[] = [
      {
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [`${this.logGroup.arn}:*`],
      },
      { sid: 'Trace', actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] },
      { sid: 'DeadLetter', actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.arn] },
      { sid: 'UseKey', actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [props.kmsKey.arn] },
    ];
    this.policy = new IamRolePolicy(this, 'Policy', {
      name: 'least-privilege',
      role: this.role.id,
      policy: policyDocument([...baseline, ...props.statements]),
    });

    this.function = new LambdaFunction(this, 'Function', {
      functionName: name,
      role: this.role.arn,
      runtime: 'nodejs22.x',
      architectures: ['arm64'],
      handler: 'index.handler',
      filename: code.path,
      sourceCodeHash: this.bundle.archiveSha256,
      memorySize: memoryMiB,
      timeout: timeoutSec,
      ...(reserved !== undefined ? { reservedConcurrentExecutions: reserved } : {}),
      publish: true,
      tracingConfig: { mode: 'Active' },
      ...(Object.keys(variables).length > 0 ? { environment: { variables: { ...variables } } } : {}),
      ...(props.encryptEnvironment === false ? {} : { kmsKeyArn: props.kmsKey.arn }),
      dependsOn: [this.logGroup, this.policy],
    });

    this.alias = new LambdaAlias(this, 'Live', {
      name: 'live',
      functionName: this.function.functionName,
      functionVersion: this.function.version,
    });
    // Schedules and other asynchronous callers invoke the alias: its retries and failure queue are these.
    new LambdaFunctionEventInvokeConfig(this, 'AsyncFailures', {
      functionName: this.function.functionName,
      qualifier: this.alias.name,
      maximumRetryAttempts: asyncRetries.attempts,
      maximumEventAgeInSeconds: asyncRetries.maxEventAgeSec,
      destinationConfig: { onFailure: { destination: this.deadLetterQueue.arn } },
    });
    if (provisioned > 0) {
      new LambdaProvisionedConcurrencyConfig(this, 'ProvisionedConcurrency', {
        functionName: this.function.functionName,
        qualifier: this.alias.name,
        provisionedConcurrentExecutions: provisioned,
      });
    }

    const alarmOn = (metricName: 'Errors' | 'Throttles', alarmId: string) =>
      notifyingAlarm(this, alarmId, {
        prefix: name,
        topicArn: props.alarmTopicArn,
        alarmName: BundledFunction.alarmNameOf(name, metricName),
        alarmDescription: `${metricName} of ${name} (any in 5 minutes)`,
        namespace: 'AWS/Lambda',
        metricName,
        dimensions: { FunctionName: name },
      });
    this.errorAlarm = alarmOn('Errors', 'ErrorAlarm');
    this.throttleAlarm = alarmOn('Throttles', 'ThrottleAlarm');
  }
}
