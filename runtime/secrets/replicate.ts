import { PermanentError, RetryableError } from '../lib/failures';
import type { Destination, Route } from './config';
import type { Outcome } from './outcomes';
import { TransformError } from './transform';
import {
  CONTENT_HASH,
  DESTINATION,
  ORIGIN_VERSION,
  ORPHANED_AT,
  originTag,
  REPLICA_OF,
  RULE_HASH,
} from './replica-tags';
import {
  MAX_SECRET_BYTES,
  valueBytes,
  type CurrentVersion,
  type SecretDescription,
  type SecretsApi,
  type SecretValue,
} from './secrets-api';
import { contentHash, replicaOriginMs, tokenTimeMs, versionToken } from './version-token';

const DAY_MS = 86_400_000;
/** Secrets Manager's recovery window bounds for DeleteSecret. */
const MIN_RECOVERY_DAYS = 7;
const MAX_RECOVERY_DAYS = 30;

/** A source secret holding a user's write: what every destination should hold a transform of. */
export interface LiveSource {
  readonly description: SecretDescription;
  readonly current: CurrentVersion;
  /**
   * Whether `current` is still the source's current version, asked only when a destination holds a replica
   * of a later origin write: a rollback (AWSCURRENT moved back to an older version) is replicated, a stale
   * read (a later write happened meanwhile) is not. Unknown: treated as stale.
   */
  readonly stillCurrent?: () => Promise<boolean>;
}

/** A source secret scheduled for deletion (`deletedDate`) or gone altogether. */
export interface RetiredSource {
  /** Its `estate:replica-of` value (`originTag` of its ARN): only replicas carrying it are retired. */
  readonly originTag: string;
  readonly name: string;
  readonly deletedDate?: Date;
}

/**
 * Whether a version is one the replicator wrote: its id is the replicator's token for its content. (Not the
 * content-hash tag: on a two-way source that tag describes what was last replicated in, and a user's
 * rollback to that content would pass for a replica write.)
 */
export function isReplicaWrite(version: CurrentVersion): boolean {
  return replicaOriginMs(version.versionId, version.value) !== undefined;
}

/** The value a destination should hold: text through the route's transformations, bytes as they are. */
export function desiredValue(value: SecretValue, route: Route): SecretValue {
  let desired: SecretValue = value;
  if (value.kind === 'string') {
    try {
      desired = { kind: 'string', text: route.transform(value.text) };
    } catch (error) {
      if (error instanceof TransformError)
        throw new PermanentError(error.code, `${route.rule}: ${error.reason}`);
      throw error;
    }
  }
  const bytes = valueBytes(desired);
  if (bytes === 0 || bytes > MAX_SECRET_BYTES)
    throw new PermanentError(
      'value-size',
      `${route.rule}: the replicated value is ${bytes} bytes; Secrets Manager takes 1 to ${MAX_SECRET_BYTES}`,
    );
  return desired;
}

/**
 * The total order two-way replication settles by: the later write (by its version's creation time), ties
 * broken by the secrets' ARNs. Both sides compute the same answer from the same two writes.
 */
function isNewer(a: { ms: number; arn: string }, b: { ms: number; arn: string }): boolean {
  return a.ms > b.ms || (a.ms === b.ms && a.arn > b.arn);
}

/**
 * A slower delivery (or a resync that read the source before its latest write) must not put an older
 * origin write over a later one that is already there; a rollback at the source must.
 */
function isLaterReplicaOfSameOrigin(target: SecretDescription, origin: string, originMs: number): boolean {
  const time = tokenTimeMs(target.currentVersionId);
  return time !== undefined && target.tags[REPLICA_OF] === origin && time > originMs;
}

function staleTags(
  target: SecretDescription,
  wanted: Readonly<Record<string, string>>,
): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  for (const [key, value] of Object.entries(wanted)) if (target.tags[key] !== value) set[key] = value;
  return { set, remove: ORPHANED_AT in target.tags ? [ORPHANED_AT] : [] };
}

async function bringTagsUpToDate(
  api: SecretsApi,
  target: SecretDescription,
  wanted: Readonly<Record<string, string>>,
): Promise<boolean> {
  const { set, remove } = staleTags(target, wanted);
  if (Object.keys(set).length > 0) await api.tag(target.arn, set);
  if (remove.length > 0) await api.untag(target.arn, remove);
  return Object.keys(set).length > 0 || remove.length > 0;
}

function isAlreadyExists(error: unknown): boolean {
  return error instanceof Error && error.name === 'ResourceExistsException';
}

/** The label a replica version carries while it is written and not yet current. */
export const PENDING_STAGE = 'ESTATE_REPLICATING';

/** Compare-and-swap attempts before the destination is reported as moving too fast (and retried later). */
const SWAP_ATTEMPTS = 3;

/** AWSCURRENT was no longer on the version read: somebody wrote the destination meanwhile. */
class CurrentMoved extends Error {
  override readonly name = 'CurrentMoved';
}

/**
 * Brings one destination up to date with a source's current user write. Reads the destination secret
 * (`known`, when a listing already did) and writes only when it does not hold the desired version: a
 * destination already up to date costs one read, or none. The write is a compare-and-swap: the version is
 * put under a label of the replicator's, then AWSCURRENT is moved to it from the version the decision was
 * made on; if another writer moved it meanwhile, the decision is made again on what is there now. So no
 * delivery ever puts an older origin write over a later one, and in a two-way pair no replica lands over a
 * user's later write. Idempotent: calling it again after any failure redoes only what is missing.
 */
export async function replicateTo(
  source: LiveSource,
  route: Route,
  destination: Destination,
  api: SecretsApi,
  known?: SecretDescription,
): Promise<Outcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await replicateOnce(source, route, destination, api, attempt === 1 ? known : undefined);
    } catch (error) {
      if (!(error instanceof CurrentMoved)) throw error;
      if (attempt >= SWAP_ATTEMPTS)
        throw new RetryableError('destination-moving', 'the destination changed under every write attempted');
    }
  }
}

async function replicateOnce(
  source: LiveSource,
  route: Route,
  destination: Destination,
  api: SecretsApi,
  known: SecretDescription | undefined,
): Promise<Outcome> {
  const desired = desiredValue(source.current.value, route);
  const originMs = source.current.createdDate.getTime();
  const token = versionToken(originMs, desired);
  const tags = {
    [REPLICA_OF]: originTag(source.description.arn),
    [ORIGIN_VERSION]: source.current.versionId,
    [CONTENT_HASH]: contentHash(desired),
    [RULE_HASH]: route.ruleHash,
    [DESTINATION]: destination.name,
  };
  let target = known ?? (await api.describe(route.targetName));
  if (!target) {
    try {
      await api.create({
        name: route.targetName,
        token,
        value: desired,
        kmsKeyId: destination.kmsKeyId,
        tags,
        description: `Replica of ${source.description.name} (${source.description.arn.split(':')[3]}), written by the estate's secrets replicator`,
      });
      return 'created';
    } catch (error) {
      // Created meanwhile (a concurrent delivery of the same change): carry on as an update.
      if (!isAlreadyExists(error)) throw error;
      target = await api.describe(route.targetName);
      if (!target) throw error;
    }
  }
  if (target.deletedDate) await api.restore(target.arn);
  if (isLaterReplicaOfSameOrigin(target, tags[REPLICA_OF], originMs) && !(await source.stillCurrent?.()))
    return 'up-to-date';
  if (target.currentVersionId === token) {
    const retagged = await bringTagsUpToDate(api, target, tags);
    if (target.deletedDate) return 'restored';
    return retagged ? 'tagged' : 'up-to-date';
  }
  if (destination.twoWay && target.currentVersionId) {
    const theirs = await api.current(target.arn);
    if (theirs?.versionId !== target.currentVersionId) throw new CurrentMoved();
    const ours = { ms: originMs, arn: source.description.arn };
    if (!isReplicaWrite(theirs) && isNewer({ ms: theirs.createdDate.getTime(), arn: target.arn }, ours))
      return 'newer-at-destination';
  }
  const existing = target;
  // The tags are informational (the version id alone tells a replica write), so they need not wait.
  await Promise.all([
    writeValue(api, existing, token, desired, destination),
    bringTagsUpToDate(api, existing, tags),
  ]);
  return target.deletedDate ? 'restored' : 'updated';
}

/** A key as id, ARN, alias name or alias ARN, reduced to `key/<id>` or `alias/<name>`. */
function keyOf(kmsKeyId: string): string {
  const bare = kmsKeyId.replace(/^arn:[a-z-]+:kms:[a-z0-9-]+:\d{12}:/, '');
  return bare.startsWith('alias/') || bare.startsWith('key/') ? bare : `key/${bare}`;
}

/** The new version, put aside, then made current in place of the version the decision was made on. */
async function writeValue(
  api: SecretsApi,
  target: SecretDescription,
  token: string,
  desired: SecretValue,
  destination: Destination,
): Promise<void> {
  if (destination.kmsKeyId && (!target.kmsKeyId || keyOf(target.kmsKeyId) !== keyOf(destination.kmsKeyId)))
    await api.setKey(target.arn, destination.kmsKeyId);
  // A token already used (this content replicated before, then overwritten) is ignored by the put: the
  // version is still there to be made current again.
  await api.putPending(target.arn, token, desired, PENDING_STAGE);
  try {
    await api.makeCurrent(target.arn, token, target.currentVersionId);
  } catch (error) {
    if (error instanceof Error && error.name === 'InvalidParameterException') throw new CurrentMoved();
    throw error;
  }
}

/** The recovery window that mirrors the origin's: the days until its own deletion, within 7-30. */
function recoveryWindowDays(source: RetiredSource, nowMs: number): number {
  if (!source.deletedDate) return MIN_RECOVERY_DAYS;
  const days = Math.round((source.deletedDate.getTime() - nowMs) / DAY_MS);
  return Math.min(MAX_RECOVERY_DAYS, Math.max(MIN_RECOVERY_DAYS, days));
}

/**
 * Applies a destination's delete policy to the replica of a source scheduled for deletion or gone. Only a
 * replica of exactly this origin (its `estate:replica-of` tag) is ever deleted, and always with a recovery
 * window (restoring the origin restores it).
 */
export async function retireReplica(
  source: RetiredSource,
  targetName: string,
  destination: Destination,
  api: SecretsApi,
  nowMs: number,
): Promise<Outcome> {
  const policy = destination.deletePolicy;
  if (policy.kind === 'ignore') return 'kept';
  const target = await api.describe(targetName);
  if (!target || target.deletedDate) return 'already-deleted';
  if (target.tags[REPLICA_OF] !== source.originTag) return 'not-a-replica';
  if (policy.kind === 'grace') {
    const since = Date.parse(target.tags[ORPHANED_AT] ?? '');
    if (Number.isNaN(since)) {
      await api.tag(target.arn, { [ORPHANED_AT]: new Date(nowMs).toISOString() });
      return 'delete-pending';
    }
    if (nowMs - since < policy.days * DAY_MS) return 'delete-pending';
  }
  await api.scheduleDeletion(target.arn, recoveryWindowDays(source, nowMs));
  return 'deleted';
}
