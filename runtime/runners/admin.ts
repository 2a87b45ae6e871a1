import { PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { REGION_NAME, regionSettings, type RunnerConfig } from './config';
import type { OperatorStatus, RegionMetrics, RegionStatus, SpillMetric } from './model';
import type { AuditEntry, HealthState, RegionStatusPort, StatusChange } from './region-status';
import type { RegionReading } from './region-views';

/**
 * The admin API's core: what `POST /admin/failover/{region}`, `POST /admin/restore/{region}` and
 * `GET /admin/regions` do once the handler has the caller and the request. Input checks here name the field
 * and the rule, never the value.
 */

/** Largest request body, in bytes. */
export const MAX_BODY_BYTES = 4_096;
/** A reason's length, in characters (code points). */
export const MAX_REASON_CHARS = 500;
/** Longest caller ARN kept in the audit (IAM ARNs are at most 2,048 characters). */
const MAX_ARN_CHARS = 2_048;

/** A request the admin API refuses, with the HTTP status it answers. */
export class AdminRequestError extends PermanentError {
  constructor(
    readonly statusCode: 400 | 403 | 404 | 413,
    code: string,
    reason: string,
  ) {
    super(code, reason);
    this.name = 'AdminRequestError';
  }
}

/** Who called, from the IAM authoriser of the route. */
export interface Caller {
  readonly arn: string;
  readonly accountId: string;
  readonly userId: string;
}

export interface AdminLog {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
}

/** Every region read afresh, spillover inputs included (DynamodbRegionViews). */
export interface RegionReadings {
  readings(): Promise<ReadonlyMap<string, RegionReading>>;
}

export interface AdminCore {
  readonly config: RunnerConfig;
  readonly statuses: RegionStatusPort;
  readonly views: RegionReadings;
  readonly log: AdminLog;
}

const forbidden = () =>
  new AdminRequestError(403, 'forbidden', 'requestContext.authorizer.iam: expected an IAM-authorised caller');

const ARN = /^arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+$/;
const ACCOUNT = /^\d{12}$/;

/**
 * The caller named by the route's IAM authoriser; a request without one is refused (403) in case the
 * route's authorisation were ever removed, and so is a caller of another account than `accountId`.
 */
export function callerOf(identity: unknown, accountId: string): Caller {
  if (typeof identity !== 'object' || identity === null) throw forbidden();
  const { userArn, accountId: account, userId } = identity as Record<string, unknown>;
  if (typeof userArn !== 'string' || userArn.length > MAX_ARN_CHARS || !ARN.test(userArn)) throw forbidden();
  if (typeof account !== 'string' || !ACCOUNT.test(account) || account !== accountId) throw forbidden();
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256) throw forbidden();
  return { arn: userArn, accountId: account, userId };
}

/** The `region` path parameter: a region name (400), and a configured one (404). */
export function regionOf(config: RunnerConfig, value: unknown): string {
  if (typeof value !== 'string' || !REGION_NAME.test(value))
    throw new AdminRequestError(400, 'bad-request', 'region: expected a region name such as eu-central-1');
  if (!regionSettings(config, value))
    throw new AdminRequestError(404, 'unknown-region', 'region: expected one of the configured regions');
  return value;
}

// eslint-disable-next-line no-control-regex -- control characters are what the rule refuses
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const badReason = (rule: string) => new AdminRequestError(400, 'bad-request', `reason: ${rule}`);

/** The body `{ "reason": "..." }`: at most 4 KiB (413), JSON (400), a reason of 1-500 characters (400). */
export function reasonOf(body: string | undefined, isBase64Encoded = false): string {
  const notJson = () =>
    new AdminRequestError(400, 'bad-request', 'body: expected a JSON object with a reason');
  if (body === undefined || body.length === 0) throw notJson();
  const bytes = isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  if (bytes.length > MAX_BODY_BYTES)
    throw new AdminRequestError(413, 'payload-too-large', `body: expected at most ${MAX_BODY_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw notJson();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw notJson();
  const fields = Object.keys(parsed);
  if (fields.some((field) => field !== 'reason'))
    throw new AdminRequestError(400, 'bad-request', 'body: expected no field but reason');
  if (!Object.prototype.hasOwnProperty.call(parsed, 'reason'))
    throw badReason('expected a reason for the change');
  const reason = (parsed as { reason: unknown }).reason;
  if (typeof reason !== 'string') throw badReason('expected a string');
  if (LONE_SURROGATE.test(reason)) throw badReason('expected well-formed Unicode text');
  if (reason.trim().length === 0) throw badReason('expected at least one visible character');
  if ([...reason].length > MAX_REASON_CHARS)
    throw badReason(`expected at most ${MAX_REASON_CHARS} characters`);
  if (CONTROL.test(reason)) throw badReason('expected no control characters');
  return reason;
}

export type AdminAction = 'failover' | 'restore';

export interface ChangeAnswer {
  readonly region: string;
  readonly status: OperatorStatus;
  readonly previous: OperatorStatus;
  readonly changed: boolean;
  readonly changedBy?: string;
  readonly changedAt?: string;
  readonly reason?: string;
}

/** Drains (failover) or restores a region; logs the request, the change and a refusal with the caller. */
export async function changeRegion(
  core: AdminCore,
  action: AdminAction,
  region: string,
  caller: Caller,
  reason: string,
): Promise<ChangeAnswer> {
  const who = { actor: caller.arn, accountId: caller.accountId, userId: caller.userId, region, action };
  const why = boundedText(reason, MAX_REASON_CHARS);
  let change: StatusChange;
  try {
    change =
      action === 'failover'
        ? await core.statuses.drain(region, caller.arn, reason)
        : await core.statuses.restore(region, caller.arn, reason);
  } catch (error) {
    if (error instanceof PermanentError)
      core.log.warn('region status change refused', { ...who, reason: why, refusal: error.code });
    throw error;
  }
  if (change.changed)
    core.log.info('region status changed', {
      ...who,
      from: change.from,
      to: change.to,
      at: change.operator.changedAt,
      reason: why,
    });
  else core.log.info('region status unchanged', { ...who, status: change.to, reason: why });
  const operator = change.operator;
  return {
    region,
    status: change.to,
    previous: change.from,
    changed: change.changed,
    ...(operator.changedBy === undefined ? {} : { changedBy: operator.changedBy }),
    ...(operator.changedAt === undefined ? {} : { changedAt: operator.changedAt }),
    ...(operator.reason === undefined ? {} : { reason: operator.reason }),
  };
}

export interface RegionAnswer {
  readonly region: string;
  readonly priority: number;
  /** What routing makes of the region. */
  readonly status: RegionStatus;
  readonly operator: {
    readonly status: OperatorStatus;
    readonly changedBy?: string;
    readonly changedAt?: string;
    readonly reason?: string;
    /** The item holds a status this code does not know (read as draining). */
    readonly unreadable?: true;
    readonly audit: readonly AuditEntry[];
  };
  readonly health: {
    readonly status: HealthState;
    readonly checkedAt?: string;
    readonly failing: readonly string[];
  };
  readonly spillover: {
    /** Why the region's inputs could not be read; absent when they were. */
    readonly unreadable?: string;
    readonly metrics: RegionMetrics;
    /** inUse over capacity, in percent. */
    readonly concurrencyPercent: number;
    /** failed over dispatched in the window (0 with no dispatch). */
    readonly errorRate: number;
    /** The triggers tripped on the last evaluation (hysteresis state). */
    readonly spilling: readonly SpillMetric[];
  };
}

export interface RegionsAnswer {
  readonly regions: readonly RegionAnswer[];
  /** What an operator should look at: no region operator-active, none routable. */
  readonly warnings: readonly string[];
}

const round = (value: number) => Math.round(value * 10_000) / 10_000;

/** Every configured region by priority: statuses read from the table, spillover inputs read afresh. */
export async function describeRegions(core: AdminCore): Promise<RegionsAnswer> {
  const names = core.config.regions.map((r) => r.region);
  const [statuses, readings] = await Promise.all([core.statuses.readStatuses(names), core.views.readings()]);
  const regions = core.config.regions.map((settings): RegionAnswer => {
    const record = statuses.get(settings.region);
    const reading = readings.get(settings.region);
    const metrics = reading?.view.metrics ?? {
      queueDepth: 0,
      inUse: 0,
      capacity: 0,
      dispatched: 0,
      failed: 0,
    };
    const operator = record?.operator ?? { status: 'active' as const, audit: [], version: 0 };
    return {
      region: settings.region,
      priority: settings.priority,
      status: record?.status ?? 'out',
      operator: {
        status: operator.status,
        ...(operator.changedBy === undefined ? {} : { changedBy: operator.changedBy }),
        ...(operator.changedAt === undefined ? {} : { changedAt: operator.changedAt }),
        ...(operator.reason === undefined ? {} : { reason: operator.reason }),
        ...(operator.unreadable ? { unreadable: true as const } : {}),
        audit: operator.audit,
      },
      health: {
        status: record?.health.state ?? 'missing',
        ...(record?.health.checkedAt === undefined ? {} : { checkedAt: record.health.checkedAt }),
        failing: record?.health.failing ?? [],
      },
      spillover: {
        ...(reading?.unreadable === undefined ? {} : { unreadable: reading.unreadable }),
        metrics,
        concurrencyPercent: metrics.capacity > 0 ? round((metrics.inUse / metrics.capacity) * 100) : 0,
        errorRate: metrics.dispatched > 0 ? round(metrics.failed / metrics.dispatched) : 0,
        spilling: [...(reading?.view.spilling ?? [])],
      },
    };
  });
  const warnings: string[] = [];
  if (!regions.some((r) => r.operator.status === 'active'))
    warnings.push(
      'no region is operator-active (two drains through two regions within the replication lag can both pass): restore one',
    );
  if (!regions.some((r) => r.status === 'active'))
    warnings.push('no region is routable (active and healthy)');
  return { regions, warnings };
}
