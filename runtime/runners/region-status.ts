import {
  BatchGetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { PermanentError, RetryableError } from '../lib/failures';
import { backoffMs, withRetries, type RetryPolicy } from '../lib/retry';
import type { OperatorStatus, RegionStatus } from './model';
import { operatorKey } from './tables';

/**
 * Region statuses in the region-status global table (tables.ts): the health function's verdict per region
 * (`<region>`, with a TTL) and the operator's word (`operator:<region>`, never an `expiresAt`: a drain
 * never expires). What routing makes of a region is `out` when its verdict is missing, expired or
 * unhealthy, else the operator's status (`active` when the operator never spoke).
 *
 * Changes are compare-and-swap on the operator item's `version` in the local replica, retried on a lost
 * race after a fresh read. A drain is refused (409) when it would leave no configured region whose operator
 * status is `active`: the drain's write is one transaction with a condition that every other region that
 * was operator-active when read is unchanged since (same version, or still no item), so two drains of the
 * last two active regions sent to the SAME region cannot both pass: the second finds the first's write and,
 * re-read, is refused.
 *
 * Cross-region race: a conditional write of a global table is checked in the replica written only, and
 * replication is last-writer-wins per item. Two operators draining the last two active regions through two
 * DIFFERENT regions within the replication lag (about a second) both pass, and every region ends up
 * draining. Routing then finds no active region (the router's `no-region-eligible`); `GET /admin/regions`
 * shows it (no region operator-active, and a warning saying so). The fix is to restore one region.
 *
 * Repeated requests: draining a region already draining, or restoring one already active, writes nothing
 * and answers `changed: false` (the caller logs the request): the audit in the table keeps the changes of
 * status, so a script that repeats a drain cannot push real changes out of the last 50 entries.
 *
 * Who: each change records the caller's IAM ARN, and beside it the STS source identity and the AWS
 * Organizations id of the caller's account when API Gateway gives them (admin.ts). For an assumed role the
 * ARN ends in a session name that the caller chose, so it names the role plus a claim (see admin.ts).
 *
 * Reads: one strongly consistent BatchGetItem of every region's two items. Keys the table leaves unprocessed
 * (throttling) are asked for again after a capped exponential backoff with full jitter, as AWS advises,
 * not back to back.
 */

/** The table's partition key. */
const KEY = 'region';
/** Audit entries kept on the operator item, newest last. */
export const AUDIT_ENTRIES = 50;

export type HealthState = 'healthy' | 'unhealthy' | 'missing' | 'expired';

/** The health function's latest verdict on a region, as read. */
export interface HealthRecord {
  /** `missing`: no item; `expired`: its `expiresAt` passed (TTL deletion lags) or is unreadable. */
  readonly state: HealthState;
  readonly checkedAt?: string;
  readonly failing: readonly string[];
}

/** Who asked for a change, as the audit records it. */
export interface AuditActor {
  /** The caller's IAM ARN (an assumed role's ends in the session name the caller chose). */
  readonly arn: string;
  /** The STS source identity set when the role was assumed, when API Gateway passes one. */
  readonly sourceIdentity?: string;
  /** The AWS Organizations id of the caller's account, when it belongs to one. */
  readonly principalOrgId?: string;
}

export interface AuditEntry {
  readonly status: OperatorStatus;
  /** The caller's IAM ARN. */
  readonly by: string;
  readonly sourceIdentity?: string;
  readonly principalOrgId?: string;
  /** ISO 8601. */
  readonly at: string;
  readonly reason: string;
}

/** The operator's word on a region. With no item: `active`, version 0, no change recorded. */
export interface OperatorRecord {
  readonly status: OperatorStatus;
  /** The IAM ARN of the last change's caller, with its source identity and organisation when known. */
  readonly changedBy?: string;
  readonly sourceIdentity?: string;
  readonly principalOrgId?: string;
  readonly changedAt?: string;
  readonly reason?: string;
  /** Newest last, at most {@link AUDIT_ENTRIES}. */
  readonly audit: readonly AuditEntry[];
  readonly version: number;
  /** The item holds a status this code does not know: read as `draining` (no new runs there). */
  readonly unreadable?: true;
}

export interface RegionStatusRecord {
  readonly region: string;
  /** What routing makes of the region. */
  readonly status: RegionStatus;
  readonly health: HealthRecord;
  readonly operator: OperatorRecord;
}

export interface StatusChange {
  readonly region: string;
  readonly from: OperatorStatus;
  readonly to: OperatorStatus;
  /** False when the region already had that status: nothing was written. */
  readonly changed: boolean;
  /** The operator item after the request. */
  readonly operator: OperatorRecord;
}

/** What reads statuses only (the router's view of the regions). */
export interface RegionStatusReader {
  readStatuses(regions: readonly string[]): Promise<ReadonlyMap<string, RegionStatusRecord>>;
}

/** What the admin API uses: read, drain and restore. */
export interface RegionStatusPort extends RegionStatusReader {
  drain(region: string, actor: AuditActor, reason: string): Promise<StatusChange>;
  restore(region: string, actor: AuditActor, reason: string): Promise<StatusChange>;
}

/** The region is not among the configured ones (404). */
export class UnknownRegionError extends PermanentError {
  constructor() {
    super('unknown-region', 'region: expected one of the configured regions');
    this.name = 'UnknownRegionError';
  }
}

/** The drain would leave no region operator-active (409). The region named is a configured one. */
export class LastActiveRegionError extends PermanentError {
  constructor(region: string) {
    super(
      'last-active-region',
      `draining ${region} would leave no configured region whose operator status is active: restore another region first`,
    );
    this.name = 'LastActiveRegionError';
  }
}

/** Every attempt lost its race with another change (409: the caller may try again). */
export class ConcurrentChangeError extends RetryableError {
  constructor() {
    super('concurrent-change', 'the region statuses changed while this change was written: try again');
    this.name = 'ConcurrentChangeError';
  }
}

/** The table left keys unread after every retry (throttling). */
export class StatusesUnreadError extends RetryableError {
  constructor() {
    super('region-status-unread', 'the region-status table left keys unread: try again');
    this.name = 'StatusesUnreadError';
  }
}

/** A conditional write found the item changed since it was read. */
class LostRace extends Error {
  constructor() {
    super('lost race');
    this.name = 'LostRace';
  }
}

/** `out` unless the verdict is healthy and current; then the operator's word. */
export function effectiveStatus(health: HealthRecord, operator: OperatorStatus): RegionStatus {
  return health.state === 'healthy' ? operator : 'out';
}

function healthFrom(item: Record<string, AttributeValue> | undefined, nowSec: number): HealthRecord {
  if (!item) return { state: 'missing', failing: [] };
  const checkedAt = item.checkedAt?.S;
  const failing = (item.failing?.L ?? []).flatMap((entry) => (entry.S === undefined ? [] : [entry.S]));
  const expiresAt = Number(item.expiresAt?.N);
  // An item with no readable expiry would be believed forever: read it as expired.
  const expired = !Number.isSafeInteger(expiresAt) || expiresAt <= nowSec;
  const state: HealthState = expired ? 'expired' : item.status?.S === 'healthy' ? 'healthy' : 'unhealthy';
  return { state, failing, ...(checkedAt === undefined ? {} : { checkedAt }) };
}

const isOperatorStatus = (value: string | undefined): value is OperatorStatus =>
  value === 'active' || value === 'draining';

/** The optional who-attributes of an item or an audit entry, as stored. */
function actorDetails(m: Record<string, AttributeValue> | undefined) {
  const sourceIdentity = m?.sourceIdentity?.S;
  const principalOrgId = m?.principalOrgId?.S;
  return {
    ...(sourceIdentity === undefined ? {} : { sourceIdentity }),
    ...(principalOrgId === undefined ? {} : { principalOrgId }),
  };
}

function auditFrom(value: AttributeValue | undefined): AuditEntry[] {
  return (value?.L ?? []).flatMap((entry) => {
    const m = entry.M;
    const status = m?.status?.S;
    const by = m?.by?.S;
    const at = m?.at?.S;
    const reason = m?.reason?.S;
    if (!isOperatorStatus(status) || by === undefined || at === undefined || reason === undefined) return [];
    return [{ status, by, ...actorDetails(m), at, reason }];
  });
}

function operatorFrom(item: Record<string, AttributeValue> | undefined): OperatorRecord {
  if (!item) return { status: 'active', audit: [], version: 0 };
  const stored = item.status?.S;
  const version = Number(item.version?.N);
  const text = (name: string) => {
    const value = item[name]?.S;
    return value === undefined ? {} : { [name]: value };
  };
  return {
    status: isOperatorStatus(stored) ? stored : 'draining',
    ...text('changedBy'),
    ...actorDetails(item),
    ...text('changedAt'),
    ...text('reason'),
    audit: auditFrom(item.audit),
    version: Number.isSafeInteger(version) && version >= 0 ? version : 0,
    ...(isOperatorStatus(stored) ? {} : { unreadable: true as const }),
  };
}

/** How a write asks that an operator item be exactly as read. */
interface ReadToken {
  readonly exists: boolean;
  /** The stored `version` attribute as it was, whatever its type. */
  readonly version?: AttributeValue;
}

/** A write's condition, in the shape every write and condition check of the SDK takes. */
interface Condition {
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

function unchangedSince(token: ReadToken): Condition {
  if (!token.exists)
    return {
      ConditionExpression: 'attribute_not_exists(#region)',
      ExpressionAttributeNames: { '#region': KEY },
    };
  if (token.version === undefined)
    return {
      ConditionExpression: 'attribute_exists(#region) AND attribute_not_exists(#version)',
      ExpressionAttributeNames: { '#region': KEY, '#version': 'version' },
    };
  return {
    ConditionExpression: '#version = :version',
    ExpressionAttributeNames: { '#version': 'version' },
    ExpressionAttributeValues: { ':version': token.version },
  };
}

interface Read {
  readonly record: RegionStatusRecord;
  readonly token: ReadToken;
}

export interface RegionStatusTableOptions {
  /** A DynamoDB client of the local region (the global table's replica there). */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** The configured regions: changes are refused for others, and the last-active rule counts these. */
  readonly regions: readonly string[];
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Attempts of a change that lost its race (default 4, 25-250 ms apart with jitter). */
  readonly retry?: RetryPolicy;
  /**
   * Rounds of a batch read while the table leaves keys unprocessed, the first included, and the backoff
   * between them (default 4 rounds, full jitter under 50, 100, 200 ms: at most 350 ms in all, inside the
   * router's read budget).
   */
  readonly unprocessedRetry?: RetryPolicy;
}

const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 25, capMs: 250 };
const DEFAULT_UNPROCESSED_RETRY: RetryPolicy = { attempts: 4, baseMs: 50, capMs: 400 };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const isNamed = (error: unknown, name: string) => error instanceof Error && error.name === name;

/** Transaction cancelled by a condition or a concurrent transaction on the same items: a lost race. */
function isCancelledByRace(error: unknown): boolean {
  if (!isNamed(error, 'TransactionCanceledException')) return false;
  const reasons = (error as { CancellationReasons?: readonly { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.some((r) => r.Code === 'ConditionalCheckFailed' || r.Code === 'TransactionConflict');
}

/** The region-status table, read and changed through the local replica. */
export class RegionStatusTable implements RegionStatusPort {
  private readonly retry: RetryPolicy;
  private readonly unprocessedRetry: RetryPolicy;

  constructor(private readonly options: RegionStatusTableOptions) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.unprocessedRetry = options.unprocessedRetry ?? DEFAULT_UNPROCESSED_RETRY;
  }

  async readStatuses(regions: readonly string[]): Promise<ReadonlyMap<string, RegionStatusRecord>> {
    const reads = await this.read(regions);
    return new Map([...reads].map(([region, read]) => [region, read.record]));
  }

  drain(region: string, actor: AuditActor, reason: string): Promise<StatusChange> {
    return this.change(region, 'draining', actor, reason);
  }

  restore(region: string, actor: AuditActor, reason: string): Promise<StatusChange> {
    return this.change(region, 'active', actor, reason);
  }

  /** One strongly consistent batch read of every region's two items (at most 10 regions: 20 keys). */
  private async read(regions: readonly string[]): Promise<Map<string, Read>> {
    const { client, tableName } = this.options;
    const found = new Map<string, Record<string, AttributeValue>>();
    let keys: Record<string, AttributeValue>[] = regions.flatMap((region) => [
      { [KEY]: { S: region } },
      { [KEY]: { S: operatorKey(region) } },
    ]);
    const policy = this.unprocessedRetry;
    for (let round = 0; keys.length > 0; round++) {
      if (round >= policy.attempts) throw new StatusesUnreadError();
      // Keys left unprocessed are throttling: back off (full jitter) before asking again.
      if (round > 0) await (policy.sleep ?? sleep)(backoffMs(round - 1, policy));
      const answer = await client.send(
        new BatchGetItemCommand({ RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true } } }),
      );
      for (const item of answer.Responses?.[tableName] ?? []) {
        const key = item[KEY]?.S;
        if (key !== undefined) found.set(key, item);
      }
      keys = answer.UnprocessedKeys?.[tableName]?.Keys ?? [];
    }
    const nowSec = Math.floor(this.options.now() / 1000);
    return new Map(
      regions.map((region) => {
        const stored = found.get(operatorKey(region));
        const health = healthFrom(found.get(region), nowSec);
        const operator = operatorFrom(stored);
        const token: ReadToken = stored
          ? { exists: true, ...(stored.version ? { version: stored.version } : {}) }
          : { exists: false };
        const record = { region, status: effectiveStatus(health, operator.status), health, operator };
        return [region, { record, token }] as const;
      }),
    );
  }

  private async change(
    region: string,
    to: OperatorStatus,
    actor: AuditActor,
    reason: string,
  ): Promise<StatusChange> {
    if (!this.options.regions.includes(region)) throw new UnknownRegionError();
    try {
      return await withRetries(
        () => this.attempt(region, to, actor, reason),
        this.retry,
        (error) => error instanceof LostRace,
      );
    } catch (error) {
      if (error instanceof LostRace) throw new ConcurrentChangeError();
      throw error;
    }
  }

  private async attempt(
    region: string,
    to: OperatorStatus,
    actor: AuditActor,
    reason: string,
  ): Promise<StatusChange> {
    const reads = await this.read(this.options.regions);
    const target = reads.get(region);
    if (!target) throw new UnknownRegionError();
    const before = target.record.operator;
    if (before.status === to && !before.unreadable)
      return { region, from: before.status, to, changed: false, operator: before };

    const at = new Date(this.options.now()).toISOString();
    const who = {
      ...(actor.sourceIdentity === undefined ? {} : { sourceIdentity: actor.sourceIdentity }),
      ...(actor.principalOrgId === undefined ? {} : { principalOrgId: actor.principalOrgId }),
    };
    const operator: OperatorRecord = {
      status: to,
      changedBy: actor.arn,
      ...who,
      changedAt: at,
      reason,
      audit: [...before.audit, { status: to, by: actor.arn, ...who, at, reason }].slice(-AUDIT_ENTRIES),
      version: before.version + 1,
    };
    const put = {
      TableName: this.options.tableName,
      Item: operatorItem(region, operator),
      ...unchangedSince(target.token),
    };

    if (to === 'active') {
      try {
        await this.options.client.send(new PutItemCommand(put));
      } catch (error) {
        if (isNamed(error, 'ConditionalCheckFailedException')) throw new LostRace();
        throw error;
      }
    } else {
      const othersActive = [...reads.values()].filter(
        (read) => read.record.region !== region && read.record.operator.status === 'active',
      );
      if (othersActive.length === 0) throw new LastActiveRegionError(region);
      const items: TransactWriteItem[] = [
        { Put: put },
        ...othersActive.map((other) => ({
          ConditionCheck: {
            TableName: this.options.tableName,
            Key: { [KEY]: { S: operatorKey(other.record.region) } },
            ...unchangedSince(other.token),
          },
        })),
      ];
      try {
        await this.options.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
      } catch (error) {
        if (isCancelledByRace(error)) throw new LostRace();
        throw error;
      }
    }
    return { region, from: before.status, to, changed: true, operator };
  }
}

/** The whole operator item: a put replaces it, so no `expiresAt` can survive on it. */
function operatorItem(region: string, operator: OperatorRecord): Record<string, AttributeValue> {
  return {
    [KEY]: { S: operatorKey(region) },
    status: { S: operator.status },
    changedBy: { S: operator.changedBy ?? '' },
    ...actorAttributes(operator),
    changedAt: { S: operator.changedAt ?? '' },
    reason: { S: operator.reason ?? '' },
    audit: {
      L: operator.audit.map((entry) => ({
        M: {
          status: { S: entry.status },
          by: { S: entry.by },
          ...actorAttributes(entry),
          at: { S: entry.at },
          reason: { S: entry.reason },
        },
      })),
    },
    version: { N: String(operator.version) },
  };
}

/** `sourceIdentity` and `principalOrgId` as attributes, each only when known. */
function actorAttributes(who: {
  readonly sourceIdentity?: string;
  readonly principalOrgId?: string;
}): Record<string, AttributeValue> {
  return {
    ...(who.sourceIdentity === undefined ? {} : { sourceIdentity: { S: who.sourceIdentity } }),
    ...(who.principalOrgId === undefined ? {} : { principalOrgId: { S: who.principalOrgId } }),
  };
}
