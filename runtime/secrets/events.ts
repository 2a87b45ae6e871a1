import * as z from 'zod/mini';
import { PermanentError } from '../lib/failures';
import { parseSecretArn } from './replica-tags';

/** Secrets Manager API calls that change a secret's current value, its tags or its existence. */
export const TRIGGERING_CALLS = [
  'CreateSecret',
  'PutSecretValue',
  'UpdateSecret',
  'UpdateSecretVersionStage',
  'RotateSecret',
  'DeleteSecret',
  'RestoreSecret',
  'TagResource',
  'UntagResource',
] as const;

/** `detail-type` and `source` of the message an operator (or a test) sends for a resync now. */
export const RESYNC_REQUEST = { source: 'estate.secrets-replicator', detailType: 'Resync' } as const;

export type Trigger =
  | { readonly kind: 'change'; readonly secretId: string; readonly call: string; readonly eventId?: string }
  | { readonly kind: 'resync' }
  | { readonly kind: 'ignored'; readonly reason: string };

export interface Self {
  readonly region: string;
  readonly account: string;
  /** The function's role: calls it made (its writes, its tagging) are its own echo, never a trigger. */
  readonly roleArn: string;
}

const text = z.optional(z.string());
const cloudTrailDetail = z.object({
  eventName: z.string(),
  eventID: text,
  errorCode: text,
  userIdentity: z.optional(
    z.object({
      arn: text,
      sessionContext: z.optional(z.object({ sessionIssuer: z.optional(z.object({ arn: text })) })),
    }),
  ),
  requestParameters: z.optional(z.nullable(z.object({ secretId: text, name: text }))),
  responseElements: z.optional(z.nullable(z.object({ arn: text, aRN: text }))),
});
const envelope = z.object({ source: z.string(), 'detail-type': z.string(), detail: z.optional(z.unknown()) });

/** `arn:aws:iam::<account>:role/<path/>name` -> the prefix of its sessions' STS ARNs. */
function assumedRolePrefix(roleArn: string): string | undefined {
  const match = /^arn:([a-z-]+):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  return match ? `arn:${match[1]}:sts::${match[2]}:assumed-role/${match[3]}/` : undefined;
}

function isOwnCall(identity: z.infer<typeof cloudTrailDetail>['userIdentity'], self: Self): boolean {
  if (!identity) return false;
  if (identity.sessionContext?.sessionIssuer?.arn === self.roleArn) return true;
  const prefix = assumedRolePrefix(self.roleArn);
  return !!prefix && !!identity.arn?.startsWith(prefix);
}

/** An event's own names (source, detail-type, eventName) as reasons may quote them: AWS's shapes only. */
const printable = (text: string) => (/^[A-Za-z0-9 ._-]{1,64}$/.test(text) ? text : '(not an AWS name)');

const malformed = (rule: string) => new PermanentError('malformed-event', rule);

/**
 * What a queued message asks for: a change to one secret (from a CloudTrail-recorded API call), a resync
 * (the schedule, or an operator's request), or nothing (a failed call, the replicator's own call, a call
 * on a secret of another region). A message that is none of these is refused with its reason.
 */
export function parseTrigger(body: string, self: Self): Trigger {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw malformed('the message body is not JSON');
  }
  const event = envelope.safeParse(parsed);
  if (!event.success) throw malformed('expected an EventBridge event: source, detail-type and detail');
  const { source, 'detail-type': detailType } = event.data;
  if (
    (source === 'aws.events' && detailType === 'Scheduled Event') ||
    (source === RESYNC_REQUEST.source && detailType === RESYNC_REQUEST.detailType)
  )
    return { kind: 'resync' };
  if (source !== 'aws.secretsmanager' || detailType !== 'AWS API Call via CloudTrail')
    throw malformed(`unexpected event: source ${printable(source)}, detail-type ${printable(detailType)}`);
  const detail = cloudTrailDetail.safeParse(event.data.detail);
  if (!detail.success) throw malformed('detail: expected a CloudTrail record with eventName');
  const call = detail.data.eventName;
  if (!(TRIGGERING_CALLS as readonly string[]).includes(call))
    return { kind: 'ignored', reason: `${printable(call)} changes no value, tag or existence` };
  if (detail.data.errorCode) return { kind: 'ignored', reason: `${call} failed; it changed nothing` };
  if (isOwnCall(detail.data.userIdentity, self))
    return { kind: 'ignored', reason: `${call} was the replicator's own call` };
  // CloudTrail records the secret's ARN as `arn` for some calls and `aRN` for others; TagResource and
  // UntagResource answer nothing and carry only the request's secretId (a name or an ARN).
  const response = detail.data.responseElements;
  const request = detail.data.requestParameters;
  const secretId = response?.arn ?? response?.aRN ?? request?.secretId ?? request?.name;
  if (!secretId || secretId.length > 2048)
    throw malformed('detail: no secret in responseElements.arn, responseElements.aRN or requestParameters');
  const arn = parseSecretArn(secretId);
  if (arn && (arn.region !== self.region || arn.account !== self.account))
    return { kind: 'ignored', reason: `${call} on a secret of another region or account` };
  return { kind: 'change', secretId, call, ...(detail.data.eventID ? { eventId: detail.data.eventID } : {}) };
}
