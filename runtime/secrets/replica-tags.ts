import { createHash } from 'node:crypto';

/** Tags the replicator sets on every replica it writes (tag keys starting `aws:` are AWS's own). */
export const REPLICA_OF = 'estate:replica-of';
export const ORIGIN_VERSION = 'estate:replica-origin-version';
export const CONTENT_HASH = 'estate:replica-content-sha256';
export const RULE_HASH = 'estate:replica-rule';
/** The destination (its configured name) that wrote the replica: whose delete policy it follows. */
export const DESTINATION = 'estate:replica-destination';
/** Set on a replica whose origin is gone, while a grace period runs: when the replicator first saw that. */
export const ORPHANED_AT = 'estate:replica-orphaned-at';

/** Secrets Manager's limit on a tag value. */
const MAX_TAG_VALUE = 256;

const ARN = /^arn:([a-z-]+):secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)$/;

export interface SecretArn {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  /** The name with Secrets Manager's `-XXXXXX` suffix. */
  readonly resource: string;
}

export function parseSecretArn(arn: string): SecretArn | undefined {
  const match = ARN.exec(arn);
  if (!match) return undefined;
  const [, partition, region, account, resource] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  return { partition, region, account, resource };
}

/**
 * The value of a replica's `estate:replica-of` tag: the origin's ARN, or, when that is longer than a tag
 * value may be (names over ~190 characters), its region, account and the ARN's sha-256.
 */
export function originTag(arn: string): string {
  if (arn.length <= MAX_TAG_VALUE) return arn;
  const parsed = parseSecretArn(arn);
  const digest = createHash('sha256').update(arn).digest('hex');
  return `${parsed?.region ?? 'unknown'}:${parsed?.account ?? 'unknown'}:sha256:${digest}`;
}

/** Whether a replica's `estate:replica-of` value names a secret of this region and account. */
export function isOriginIn(tag: string, region: string, account: string): boolean {
  const parsed = parseSecretArn(tag);
  if (parsed) return parsed.region === region && parsed.account === account;
  return tag.startsWith(`${region}:${account}:sha256:`);
}

/** A secret's name from its ARN (Secrets Manager appends `-` and six characters to the name). */
export function nameOfArn(arn: string): string | undefined {
  const resource = parseSecretArn(arn)?.resource;
  return resource && resource.length > 7 ? resource.slice(0, -7) : undefined;
}
