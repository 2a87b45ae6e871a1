/**
 * The EventBridge event CloudTrail makes of a Secrets Manager API call ("AWS API Call via CloudTrail"), in the
 * shapes AWS documents and the replicator's tests use (test/support/cloudtrail-events.ts): request parameters
 * lower-camel-cased without the secret's value, the response's ARN as `arn` (or `aRN` for the calls that
 * record it so), and the caller's identity. EventBridge receives write calls only (not Get, List, Describe).
 * Pure.
 */
import { randomUUID } from 'node:crypto';
import type { BusEvent } from './event-rules';

/** The calls whose `responseElements` carry the secret's ARN as `aRN` (AWS's samples). */
export const CALLS_RECORDING_aRN: ReadonlySet<string> = new Set([
  'DeleteSecret',
  'RestoreSecret',
  'RotateSecret',
  'UpdateSecretVersionStage',
]);

/** Read-only calls, which EventBridge does not receive from CloudTrail. */
export const isReadOnlyCall = (call: string) => /^(Get|List|Describe|BatchGet|Validate)/.test(call);

/** Request fields never recorded (a secret's value). */
const VALUE_FIELDS = new Set(['SecretString', 'SecretBinary']);

/** The identity STS reports for the caller's credentials (GetCallerIdentity). */
export interface CallerIdentity {
  readonly arn: string;
  readonly account: string;
  readonly userId: string;
  readonly accessKeyId: string;
}

export interface RecordedCall {
  /** `PutSecretValue`, from `X-Amz-Target: secretsmanager.PutSecretValue`. */
  readonly eventName: string;
  readonly region: string;
  readonly request: unknown;
  readonly response: unknown;
  readonly caller: CallerIdentity;
  readonly sourceIp: string;
  readonly userAgent: string;
  readonly requestId: string;
  readonly at: Date;
}

const lowerCamel = (key: string) => key.charAt(0).toLowerCase() + key.slice(1);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** PascalCase API fields to CloudTrail's lowerCamelCase, values of secrets and tags left out. */
function recorded(value: unknown, inTags = false): unknown {
  if (Array.isArray(value)) return value.map((item) => recorded(item, inTags));
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (VALUE_FIELDS.has(key)) continue;
    if (inTags && key === 'Value') {
      out.value = 'HIDDEN';
      continue;
    }
    Object.defineProperty(out, lowerCamel(key), {
      value: recorded(item, key === 'Tags'),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** `responseElements`: the ARN under the call's spelling; DeletionDate as CloudTrail prints it. */
function responseElements(call: string, response: unknown): Record<string, unknown> | null {
  if (!isRecord(response) || Object.keys(response).length === 0) return null;
  const { ARN, DeletionDate, ...rest } = response;
  const elements = recorded(rest) as Record<string, unknown>;
  const spelling = CALLS_RECORDING_aRN.has(call) ? 'aRN' : 'arn';
  return {
    ...(typeof ARN === 'string' ? { [spelling]: ARN } : {}),
    ...elements,
    ...(typeof DeletionDate === 'number'
      ? { deletionDate: new Date(DeletionDate * 1000).toUTCString() }
      : {}),
  };
}

/** The identity CloudTrail records: an IAM user, or an assumed role's session with its issuer. */
export function userIdentityOf(caller: CallerIdentity, at: Date): Record<string, unknown> {
  const assumed = /^arn:([a-z-]+):sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(caller.arn);
  if (assumed) {
    const roleArn = `arn:${assumed[1]}:iam::${assumed[2]}:role/${assumed[3]}`;
    return {
      type: 'AssumedRole',
      principalId: caller.userId,
      arn: caller.arn,
      accountId: caller.account,
      accessKeyId: caller.accessKeyId,
      sessionContext: {
        sessionIssuer: {
          type: 'Role',
          principalId: caller.userId.split(':')[0],
          arn: roleArn,
          accountId: caller.account,
          userName: assumed[3],
        },
        webIdFederationData: {},
        attributes: { creationDate: at.toISOString(), mfaAuthenticated: 'false' },
      },
    };
  }
  const userName = caller.arn.split('/').pop();
  return {
    type: 'IAMUser',
    principalId: caller.userId,
    arn: caller.arn.replace(/^arn:([a-z-]+):sts::(\d{12}):user\//, 'arn:$1:iam::$2:user/'),
    accountId: caller.account,
    accessKeyId: caller.accessKeyId,
    userName,
  };
}

const cloudTrailTime = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The EventBridge event of one successful Secrets Manager write call. */
export function cloudTrailEvent(call: RecordedCall, id: string = randomUUID()): BusEvent {
  const time = cloudTrailTime(call.at);
  return {
    version: '0',
    id,
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.secretsmanager',
    account: call.caller.account,
    time,
    region: call.region,
    resources: [],
    detail: {
      eventVersion: '1.09',
      userIdentity: userIdentityOf(call.caller, call.at),
      eventTime: time,
      eventSource: 'secretsmanager.amazonaws.com',
      eventName: call.eventName,
      awsRegion: call.region,
      sourceIPAddress: call.sourceIp,
      userAgent: call.userAgent,
      requestParameters: isRecord(call.request) ? recorded(call.request) : null,
      responseElements: responseElements(call.eventName, call.response),
      requestID: call.requestId,
      eventID: randomUUID(),
      readOnly: false,
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: call.caller.account,
      eventCategory: 'Management',
    },
  };
}
