import { PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { REGION_NAME, regionSettings, type RunnerConfig } from './config';
import type { OperatorStatus, RegionMetrics, RegionStatus, SpillMetric } from './model';
import type { AuditActor, AuditEntry, HealthState, RegionStatusPort, StatusChange } from './region-status';
import type { RegionReading } from './region-views';
import { concurrencyOf, errorRateOf } from './spillover';

/**
 * The admin API's core: what `POST /admin/failover/{region}`, `POST /admin/restore/{region}` and
 * `GET /admin/regions` do once the handler has the caller and the request. Input checks here name the field
 * and the rule, never the value.
 *
 * Who a change is audited as: the caller's IAM ARN from the route's IAM authoriser, and beside it the STS
 * source identity when API Gateway passes one (`sourceIdentity`) and the AWS Organizations id of the caller's
 * account (`principalOrgId`). For an assumed role the ARN is `arn:aws:sts::<account>:assumed-role/<role>/
 * <session name>`, and the session name is whatever the caller chose when it called `AssumeRole`: the audit's
 * "who" is the role, plus a name the role's holder claimed. Where the audit must name a person, have the
 * identity provider set a source identity (it cannot be changed for the rest of the role chain) and give
 * the admin routes only to roles that require one (`sts:SourceIdentity` in the role's trust policy).
 *
 * `GET /admin/regions` shows the spillover inputs as routing computes them (spillover.ts): the error rate
 * is failed over all attempts (`failed / (dispatched + failed)`, 0 below `minErrorSamples`), the
 * concurrency is runners in use over capacity.
 *
 * A reason is text for an audit line: control characters, Unicode format characters (the bidirectional
 * overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width characters, and the rest of category
 * Cf) and the line and paragraph separators U+2028 and U+2029 are refused, since each could make one line
 * read as another. A base64 body must be valid base64 and UTF-8: nothing is dropped or replaced.
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
  /** The STS source identity, when API Gateway passes one. */
  readonly sourceIdentity?: string;
  /** The AWS Organizations id of the caller's account, when it belongs to one. */
  readonly principalOrgId?: string;
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
/** STS's rule for a source identity: 2-64 of letters, digits and `_+=,.@-`. */
const SOURCE_IDENTITY = /^[\w+=,.@-]{2,64}$/;
/** An AWS Organizations id. */
const ORG_ID = /^o-[a-z0-9]{10,32}$/;

const own = (object: object, name: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, name) ? (object as Record<string, unknown>)[name] : undefined;

/** An optional identity field: absent (missing, null or empty) or matching `pattern`; else refused (403). */
function optionalField(value: unknown, pattern: RegExp): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) throw forbidden();
  return value;
}

/**
 * The caller named by the route's IAM authoriser; a request without one is refused (403) in case the
 * route's authorisation were ever removed, and so is a caller of another account than `accountId`. The
 * source identity and the organisation id are kept when given, and a malformed one is refused too.
 */
export function callerOf(identity: unknown, accountId: string): Caller {
  if (typeof identity !== 'object' || identity === null) throw forbidden();
  const userArn = own(identity, 'userArn');
  const account = own(identity, 'accountId');
  const userId = own(identity, 'userId');
  if (typeof userArn !== 'string' || userArn.length > MAX_ARN_CHARS || !ARN.test(userArn)) throw forbidden();
  if (typeof account !== 'string' || !ACCOUNT.test(account) || account !== accountId) throw forbidden();
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256) throw forbidden();
  const sourceIdentity = optionalField(own(identity, 'sourceIdentity'), SOURCE_IDENTITY);
  const principalOrgId = optionalField(own(identity, 'principalOrgId'), ORG_ID);
  return {
    arn: userArn,
    accountId: account,
    userId,
    ...(sourceIdentity === undefined ? {} : { sourceIdentity }),
    ...(principalOrgId === undefined ? {} : { principalOrgId }),
  };
}

/** What the audit records of a caller. */
export const actorOf = (caller: Caller): AuditActor => ({
  arn: caller.arn,
  ...(caller.sourceIdentity === undefined ? {} : { sourceIdentity: caller.sourceIdentity }),
  ...(caller.principalOrgId === undefined ? {} : { principalOrgId: caller.principalOrgId }),
});

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
/**
 * Format characters (category Cf: bidi embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069,
 * marks, zero-width characters, the BOM, tags) and the line and paragraph separators U+2028 and U+2029.
 */
const FORMAT = /[\p{Cf}\u2028\u2029]/u;
/** Padded base64 of the standard alphabet, as API Gateway encodes a body. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** The longest base64 text whose bytes can be within MAX_BODY_BYTES. */
const MAX_BASE64_CHARS = Math.ceil(MAX_BODY_BYTES / 3) * 4;

const badReason = (rule: string) => new AdminRequestError(400, 'bad-request', `reason: ${rule}`);
const tooLarge = () =>
  new AdminRequestError(413, 'payload-too-large', `body: expected at most ${MAX_BODY_BYTES} bytes`);

/**
 * The body's text: a base64 body decoded only when it is valid, canonical base64 of UTF-8 text (a character
 * that is not base64 is refused, never skipped); a body over 4 KiB refused (413) before it is decoded.
 */
function bodyText(body: string, isBase64Encoded: boolean): string {
  if (!isBase64Encoded) {
    if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) throw tooLarge();
    return body;
  }
  if (body.length > MAX_BASE64_CHARS) throw tooLarge();
  const bytes = Buffer.from(body, 'base64');
  if (!BASE64.test(body) || bytes.toString('base64') !== body)
    throw new AdminRequestError(400, 'bad-request', 'body: expected valid base64');
  if (bytes.length > MAX_BODY_BYTES) throw tooLarge();
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new AdminRequestError(400, 'bad-request', 'body: expected UTF-8 text');
  }
}

/** The body `{ "reason": "..." }`: at most 4 KiB (413), JSON (400), a reason of 1-500 characters (400). */
export function reasonOf(body: string | undefined, isBase64Encoded = false): string {
  const notJson = () =>
    new AdminRequestError(400, 'bad-request', 'body: expected a JSON object with a reason');
  if (body === undefined || body.length === 0) throw notJson();
  const text = bodyText(body, isBase64Encoded);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
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
  if (FORMAT.test(reason))
    throw badReason(
      'expected no format characters (bidirectional controls, zero-width characters) nor line or paragraph separators',
    );
  return reason;
}

export type AdminAction = 'failover' | 'restore';

export interface ChangeAnswer {
  readonly region: string;
  readonly status: OperatorStatus;
  readonly previous: OperatorStatus;
  readonly changed: boolean;
  readonly changedBy?: string;
  readonly sourceIdentity?: string;
  readonly principalOrgId?: string;
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
  const actor = actorOf(caller);
  const who = {
    actor: caller.arn,
    ...(actor.sourceIdentity === undefined ? {} : { sourceIdentity: actor.sourceIdentity }),
    ...(actor.principalOrgId === undefined ? {} : { principalOrgId: actor.principalOrgId }),
    accountId: caller.accountId,
    userId: caller.userId,
    region,
    action,
  };
  const why = boundedText(reason, MAX_REASON_CHARS);
  let change: StatusChange;
  try {
    change =
      action === 'failover'
        ? await core.statuses.drain(region, actor, reason)
        : await core.statuses.restore(region, actor, reason);
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
    ...operatorFields(operator),
  };
}

/** The operator record's optional who, when and why, each only when known. */
function operatorFields(operator: {
  readonly changedBy?: string;
  readonly sourceIdentity?: string;
  readonly principalOrgId?: string;
  readonly changedAt?: string;
  readonly reason?: string;
}) {
  return {
    ...(operator.changedBy === undefined ? {} : { changedBy: operator.changedBy }),
    ...(operator.sourceIdentity === undefined ? {} : { sourceIdentity: operator.sourceIdentity }),
    ...(operator.principalOrgId === undefined ? {} : { principalOrgId: operator.principalOrgId }),
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
    readonly sourceIdentity?: string;
    readonly principalOrgId?: string;
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
    /** When the inputs shown were read (ISO 8601), when they are the last good ones, not read now. */
    readonly lastGoodAt?: string;
    /** Runner types whose queue does not exist in the region (yet), counted as 0. */
    readonly missingQueues?: readonly string[];
    readonly metrics: RegionMetrics;
    /** inUse over capacity, in percent, as routing computes it (0 with no capacity). */
    readonly concurrencyPercent: number;
    /**
     * Failed over all attempts in the window, `failed / (dispatched + failed)`, as routing computes it: 0
     * with fewer than `minErrorSamples` attempts.
     */
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

/** Four decimals; a value routing could not use (NaN) shows as 0, as it trips nothing. */
const round = (value: number) => (Number.isFinite(value) ? Math.round(value * 10_000) / 10_000 : 0);

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
        ...operatorFields(operator),
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
        ...(reading?.lastGoodAt === undefined
          ? {}
          : { lastGoodAt: new Date(reading.lastGoodAt).toISOString() }),
        ...(reading?.missingQueues === undefined ? {} : { missingQueues: reading.missingQueues }),
        metrics,
        concurrencyPercent: round(concurrencyOf(metrics)),
        errorRate: round(errorRateOf(metrics, core.config.minErrorSamples)),
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
