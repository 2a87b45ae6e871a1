import { createHash } from 'node:crypto';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import type { BusEvent } from '../../scripts/lib/local-runtime/event-rules';

/**
 * CloudTrail-shaped EventBridge events for Secrets Manager calls, modelled on AWS's documented samples
 * ("AWS CloudTrail entries for Secrets Manager", and re:Post "secrets-manager-arn" on `aRN`), and the SQS
 * event that delivers them to a queue consumer. The emulator records no CloudTrail: tests build the events
 * the real EventBridge rule would have queued.
 *
 * Secret values are never part of a CloudTrail record (`secretString` and `secretBinary` are left out of
 * `requestParameters`), so none are here either.
 */

/** The Secrets Manager calls this builder shapes. */
export type SecretsManagerCall =
  | 'CreateSecret'
  | 'PutSecretValue'
  | 'UpdateSecret'
  | 'UpdateSecretVersionStage'
  | 'RotateSecret'
  | 'DeleteSecret'
  | 'RestoreSecret'
  | 'TagResource'
  | 'UntagResource'
  | 'GetSecretValue'
  | 'DescribeSecret';

/**
 * The calls whose `responseElements` carried the secret's ARN as `aRN` (AWS's samples, and the re:Post
 * article listing the calls affected before Secrets Manager standardized on `arn` in 2024).
 */
export const CALLS_RECORDING_aRN: ReadonlySet<SecretsManagerCall> = new Set([
  'DeleteSecret',
  'RestoreSecret',
  'RotateSecret',
  'UpdateSecretVersionStage',
]);

/** Who made a call: a role's session (a Lambda function, a CI job) or an IAM user. */
export type CallerIdentity =
  | {
      readonly type: 'AssumedRole';
      /** `arn:aws:iam::<account>:role/<path/>name` */
      readonly roleArn: string;
      readonly sessionName: string;
      /** Records made through some services carry the session's ARN without `sessionContext`. Default true. */
      readonly sessionContext?: boolean;
    }
  | { readonly type: 'IAMUser'; /** `arn:aws:iam::<account>:user/<name>` */ readonly userArn: string };

/** A secret as CloudTrail names it. */
export interface SecretRef {
  readonly arn: string;
  readonly name: string;
}

export interface CallOptions {
  /** Default: an IAM user `alice` of the secret's account. */
  readonly identity?: CallerIdentity;
  /** The call's time. Default: now. */
  readonly at?: Date;
  /** The version the call made (CreateSecret, PutSecretValue, UpdateSecret, RotateSecret). */
  readonly versionId?: string;
  /** How the request named the secret: its name (default for CreateSecret) or its ARN (default otherwise). */
  readonly requestSecretId?: string;
  /** Overrides the spelling AWS's sample uses for this call. */
  readonly arnSpelling?: 'arn' | 'aRN';
  /** A failed call: CloudTrail records it with an error code and no response. */
  readonly errorCode?: string;
  /** DeleteSecret's recovery window. Default 7. */
  readonly recoveryWindowInDays?: number;
  /** Tag keys (TagResource, UntagResource). */
  readonly tagKeys?: readonly string[];
}

/** An EventBridge event (the envelope every rule target receives), as the local runtime delivers it. */
export type EventBridgeEnvelope<D> = BusEvent<D>;

export interface CloudTrailDetail {
  readonly eventVersion: string;
  readonly userIdentity: Record<string, unknown>;
  readonly eventTime: string;
  readonly eventSource: 'secretsmanager.amazonaws.com';
  readonly eventName: SecretsManagerCall;
  readonly awsRegion: string;
  readonly sourceIPAddress: string;
  readonly userAgent: string;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  readonly requestParameters: Record<string, unknown> | null;
  readonly responseElements: Record<string, unknown> | null;
  readonly requestID: string;
  readonly eventID: string;
  readonly readOnly: boolean;
  readonly eventType: 'AwsApiCall';
  readonly managementEvent: true;
  readonly recipientAccountId: string;
  readonly eventCategory: 'Management';
}

let sequence = 0;

/** A UUID-shaped id, distinct for every call of the process (deterministic: no randomness needed). */
function uuid(seed: string): string {
  const hex = createHash('sha256').update(`${seed}#${++sequence}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const ARN = /^arn:([a-z-]+):secretsmanager:([a-z0-9-]+):(\d{12}):secret:.+$/;

function arnParts(arn: string): { partition: string; region: string; account: string } {
  const match = ARN.exec(arn);
  if (!match) throw new Error(`not a secret ARN: ${arn}`);
  return { partition: match[1] as string, region: match[2] as string, account: match[3] as string };
}

/** `arn:aws:iam::<account>:role/<path/>name` -> the role's session ARN in STS. */
export function assumedRoleArn(roleArn: string, sessionName: string): string {
  const match = /^arn:([a-z-]+):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  if (!match) throw new Error(`not a role ARN: ${roleArn}`);
  return `arn:${match[1]}:sts::${match[2]}:assumed-role/${match[3]}/${sessionName}`;
}

function userIdentityOf(identity: CallerIdentity, at: Date): Record<string, unknown> {
  if (identity.type === 'IAMUser') {
    const account = identity.userArn.split(':')[4] as string;
    return {
      type: 'IAMUser',
      principalId: 'AIDAEXAMPLEUSERID0001',
      arn: identity.userArn,
      accountId: account,
      accessKeyId: 'AKIAEXAMPLEKEY000001',
      userName: identity.userArn.split('/').pop(),
    };
  }
  const account = identity.roleArn.split(':')[4] as string;
  const session = {
    type: 'AssumedRole',
    principalId: `AROAEXAMPLEROLEID0001:${identity.sessionName}`,
    arn: assumedRoleArn(identity.roleArn, identity.sessionName),
    accountId: account,
    accessKeyId: 'ASIAEXAMPLEKEY000001',
  };
  if (identity.sessionContext === false) return session;
  return {
    ...session,
    sessionContext: {
      sessionIssuer: {
        type: 'Role',
        principalId: 'AROAEXAMPLEROLEID0001',
        arn: identity.roleArn,
        accountId: account,
        userName: identity.roleArn.split('/').pop(),
      },
      webIdFederationData: {},
      attributes: { creationDate: new Date(at.getTime() - 60_000).toISOString(), mfaAuthenticated: 'false' },
    },
  };
}

/** What the call's request recorded (values left out, as CloudTrail leaves them out). */
function requestOf(
  call: SecretsManagerCall,
  secretId: string,
  options: CallOptions,
): Record<string, unknown> {
  const token = options.versionId ? { clientRequestToken: options.versionId } : {};
  switch (call) {
    case 'CreateSecret':
      return { name: secretId, ...token };
    case 'PutSecretValue':
    case 'UpdateSecret':
    case 'RotateSecret':
      return { secretId, ...token };
    case 'UpdateSecretVersionStage':
      return {
        secretId,
        versionStage: 'AWSCURRENT',
        ...(options.versionId ? { moveToVersionId: options.versionId } : {}),
      };
    case 'DeleteSecret':
      return { secretId, recoveryWindowInDays: options.recoveryWindowInDays ?? 7 };
    case 'TagResource':
      return { secretId, tags: (options.tagKeys ?? ['team']).map((key) => ({ key, value: 'HIDDEN' })) };
    case 'UntagResource':
      return { secretId, tagKeys: [...(options.tagKeys ?? ['team'])] };
    default:
      return { secretId };
  }
}

/** What the call answered, with the ARN under the spelling AWS's sample shows for it. */
function responseOf(
  call: SecretsManagerCall,
  secret: SecretRef,
  options: CallOptions,
  at: Date,
): Record<string, unknown> | null {
  if (options.errorCode || call === 'TagResource' || call === 'UntagResource') return null;
  if (call === 'GetSecretValue' || call === 'DescribeSecret') return null;
  const spelling = options.arnSpelling ?? (CALLS_RECORDING_aRN.has(call) ? 'aRN' : 'arn');
  const version = options.versionId ? { versionId: options.versionId } : {};
  const days = options.recoveryWindowInDays ?? 7;
  const rest: Record<string, unknown> =
    call === 'DeleteSecret'
      ? { name: secret.name, deletionDate: new Date(at.getTime() + days * 86_400_000).toUTCString() }
      : call === 'PutSecretValue'
        ? { ...version, versionStages: ['AWSCURRENT'] }
        : { name: secret.name, ...version };
  return { [spelling]: secret.arn, ...rest };
}

/**
 * The EventBridge event of one CloudTrail-recorded Secrets Manager call on `secret` (region and account from
 * its ARN), as the replicator's queue receives it.
 */
export function secretsManagerCall(
  call: SecretsManagerCall,
  secret: SecretRef,
  options: CallOptions = {},
): EventBridgeEnvelope<CloudTrailDetail> {
  const { partition, region, account } = arnParts(secret.arn);
  const at = options.at ?? new Date();
  const identity = options.identity ?? {
    type: 'IAMUser',
    userArn: `arn:${partition}:iam::${account}:user/alice`,
  };
  const secretId = options.requestSecretId ?? (call === 'CreateSecret' ? secret.name : secret.arn);
  const eventTime = at.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const detail: CloudTrailDetail = {
    eventVersion: '1.09',
    userIdentity: userIdentityOf(identity, at),
    eventTime,
    eventSource: 'secretsmanager.amazonaws.com',
    eventName: call,
    awsRegion: region,
    sourceIPAddress: identity.type === 'AssumedRole' ? 'lambda.amazonaws.com' : '198.51.100.7',
    userAgent: 'aws-sdk-js/3.0.0 ua/2.1 os/linux lang/js md/nodejs#20',
    ...(options.errorCode ? { errorCode: options.errorCode, errorMessage: 'The request was refused.' } : {}),
    requestParameters: requestOf(call, secretId, options),
    responseElements: responseOf(call, secret, options, at),
    requestID: uuid(`request:${secret.arn}`),
    eventID: uuid(`event:${secret.arn}`),
    readOnly: call === 'GetSecretValue' || call === 'DescribeSecret',
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: account,
    eventCategory: 'Management',
  };
  return {
    version: '0',
    id: uuid(`envelope:${secret.arn}`),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.secretsmanager',
    account,
    time: eventTime,
    region,
    resources: [],
    detail,
  };
}

/** The EventBridge schedule's event (the resync rule). */
export function scheduledEvent(
  region: string,
  account: string,
  ruleName = 'estate-secrets-resync',
): EventBridgeEnvelope<Record<string, never>> {
  const time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    version: '0',
    id: uuid(`schedule:${region}`),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account,
    time,
    region,
    resources: [`arn:aws:events:${region}:${account}:rule/${ruleName}`],
    detail: {},
  };
}

/** An operator's request for a resync now (PutEvents with the replicator's own source). */
export function resyncRequest(region: string, account: string): EventBridgeEnvelope<Record<string, never>> {
  return {
    version: '0',
    id: uuid(`resync:${region}`),
    'detail-type': 'Resync',
    source: 'estate.secrets-replicator',
    account,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [],
    detail: {},
  };
}

export interface SqsDelivery {
  /** The queue's ARN (`eventSourceARN`): region and account from it. */
  readonly queueArn: string;
  /** This delivery's ApproximateReceiveCount. Default 1. */
  readonly receiveCount?: number;
  /** Message ids, by position; default: fresh ids. Redelivering a message keeps its id. */
  readonly messageIds?: readonly string[];
}

/**
 * The SQS event a Lambda event-source mapping hands its function: one record per body (an EventBridge
 * event as JSON, or a raw string for a malformed message).
 */
export function sqsEvent(bodies: readonly (object | string)[], delivery: SqsDelivery): SQSEvent {
  const region = delivery.queueArn.split(':')[3] as string;
  const now = Date.now();
  const records = bodies.map((body, i): SQSRecord => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const messageId = delivery.messageIds?.[i] ?? uuid(`message:${delivery.queueArn}`);
    return {
      messageId,
      receiptHandle: `AQEB${createHash('sha256')
        .update(`${messageId}#${delivery.receiveCount ?? 1}`)
        .digest('base64')}`,
      body: text,
      attributes: {
        ApproximateReceiveCount: String(delivery.receiveCount ?? 1),
        SentTimestamp: String(now - 1000),
        SenderId: 'AIDAEVENTBRIDGE00001',
        ApproximateFirstReceiveTimestamp: String(now - 500),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(text).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: delivery.queueArn,
      awsRegion: region,
    };
  });
  return { Records: records };
}
