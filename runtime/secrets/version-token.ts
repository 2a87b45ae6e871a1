import { createHash } from 'node:crypto';
import type { SecretValue } from './secrets-api';

/**
 * The replicator writes every version with a ClientRequestToken it derives from the origin write's time and
 * the content written, so a version id alone says whether a version is a replica write (and of which time):
 * no tag has to be read, and no race between a write and its tags can make a replica look like a user's
 * write. A user's write gets a token of its own (a UUID) that never has this shape and hash.
 */
const PREFIX = 'rpl-';
const TIME_DIGITS = 9; // base 36: ms timestamps up to year 5188
const HASH_CHARS = 50; // 200 bits of sha-256; 4 + 9 + 1 + 50 = 64, Secrets Manager's maximum token length

/** Hex sha-256 of a value, with its kind, so a text and the same bytes as binary differ. */
export function contentHash(value: SecretValue): string {
  const hash = createHash('sha256');
  if (value.kind === 'string') hash.update('s:').update(value.text, 'utf8');
  else hash.update('b:').update(value.bytes);
  return hash.digest('hex');
}

export function versionToken(originCreatedMs: number, value: SecretValue): string {
  if (!Number.isSafeInteger(originCreatedMs) || originCreatedMs < 0)
    throw new RangeError('originCreatedMs: expected a non-negative integer of milliseconds');
  const time = originCreatedMs.toString(36).padStart(TIME_DIGITS, '0');
  return `${PREFIX}${time}-${contentHash(value).slice(0, HASH_CHARS)}`;
}

const TOKEN = new RegExp(`^${PREFIX}([0-9a-z]{${TIME_DIGITS}})-([0-9a-f]{${HASH_CHARS}})$`);

/**
 * The origin write's time (ms) when `versionId` is the replicator's token for exactly `value`; undefined
 * when it is anybody else's version.
 */
export function replicaOriginMs(versionId: string, value: SecretValue): number | undefined {
  const match = TOKEN.exec(versionId);
  if (!match || match[2] !== contentHash(value).slice(0, HASH_CHARS)) return undefined;
  return parseInt(match[1] as string, 36);
}

/** The origin time a version id claims when it has the replicator's shape (its content unchecked). */
export function tokenTimeMs(versionId: string | undefined): number | undefined {
  const match = TOKEN.exec(versionId ?? '');
  return match ? parseInt(match[1] as string, 36) : undefined;
}
