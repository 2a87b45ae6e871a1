import { classifyFailure, RetryableError } from '../lib/failures';

/**
 * Redelivers the runner control plane's failed webhook deliveries: GitHub never redelivers one by itself.
 * The router answers 500 (AWS failed, or its deadline passed) or 409 (another copy in flight) and releases
 * its claims so that a redelivery is taken; this pass is what asks for that redelivery, following GitHub's
 * "Handling failed webhook deliveries" recipe.
 *
 * One pass: the App's deliveries of the last `windowSec` (GET /app/hook/deliveries, newest first, paged
 * until the items are older than the window), only `workflow_job` events, grouped by `guid` (every attempt
 * of one delivery shares it). A guid with a 2xx attempt is done. Of the others, one whose latest attempt is
 * younger than `minAgeSec` is left alone (its redelivery may be in flight), one with `maxAttempts`
 * attempts is given up (counted and reported with its last status: the router keeps failing it, a person
 * must look), and the rest have their latest attempt redelivered (POST /app/hook/deliveries/{id}/attempts),
 * the oldest first (closest to leaving the window), at most `maxPerRun` of them. A redelivery that fails
 * is counted and the pass goes on (the next pass retries it); a rate limit stops the pass (counted). A
 * listing that fails otherwise fails the pass.
 *
 * Every region runs it, on a schedule. Two regions redelivering the same guid is harmless: the router's
 * claims answer the second copy 200 as a duplicate, and a 2xx attempt ends the guid for every pass after.
 * Attempts older than the window are not listed, so a guid's count only covers the window: a guid given
 * up stays given up (and counted each pass) until its attempts leave the window.
 */

/** One attempt at delivering a webhook, as GitHub lists it. */
export interface HookDelivery {
  /** The attempt's id (what a redelivery names). */
  readonly id: number;
  /** The delivery's id, shared by all its attempts. */
  readonly guid: string;
  /** Epoch ms. */
  readonly deliveredAt: number;
  readonly redelivery: boolean;
  /** The HTTP status the router answered (0 when it did not answer). */
  readonly statusCode: number;
  readonly event: string;
  readonly action?: string;
}

/** GitHub's side: the App's webhook deliveries. */
export interface RedeliveryGitHub {
  /**
   * The deliveries from `sinceMs` (epoch ms) on, newest first; pages stop once their items are older
   * (a few older ones may come along). A rate limit is a `RetryableError` with code `github-rate-limited`.
   */
  listDeliveries(sinceMs: number): Promise<readonly HookDelivery[]>;
  /** Asks GitHub to deliver that attempt again. */
  redeliver(deliveryId: number): Promise<void>;
}

export interface RedeliveryDeps {
  readonly github: RedeliveryGitHub;
  /** Epoch ms. */
  readonly now: () => number;
  /** How far back deliveries are looked at. Default: 3600 s. */
  readonly windowSec?: number;
  /** A guid whose latest attempt is younger is left alone. Default: 60 s. */
  readonly minAgeSec?: number;
  /** A guid with this many attempts is given up. Default: 5. */
  readonly maxAttempts?: number;
  /** Redeliveries asked for in one pass at most. Default: 50. */
  readonly maxPerRun?: number;
  /** The invocation's time left (ms): no redelivery is started with less than `reserveMs` left. */
  readonly timeLeftMs?: () => number;
  /** Default: 15 s. */
  readonly reserveMs?: number;
}

/** A guid given up, or whose redelivery failed: what a log line may say of it. */
export interface RedeliveryNote {
  readonly guid: string;
  readonly deliveryId: number;
  readonly statusCode: number;
  readonly attempts: number;
  readonly action?: string;
  /** For a failed redelivery: value-free. */
  readonly code?: string;
  readonly reason?: string;
}

export interface RedeliveryReport {
  /** Attempts listed (every event). */
  readonly listed: number;
  /** Failed guids whose latest answer was final (a 4xx other than 401 and 409): not redelivered. */
  final: number;
  /** `workflow_job` guids in the window without a 2xx attempt. */
  readonly failedGuids: number;
  readonly redelivered: number;
  /** Redeliveries GitHub refused or did not answer (retried next pass). */
  readonly redeliveryFailed: number;
  readonly gaveUp: number;
  /** Left alone: the latest attempt is younger than `minAgeSec`. */
  readonly recent: number;
  /** Left for the next pass: over `maxPerRun`, or out of time. */
  readonly deferred: number;
  /** GitHub rate-limited the pass, which stopped there. */
  readonly rateLimited: boolean;
  readonly gaveUpGuids: readonly RedeliveryNote[];
  readonly failures: readonly RedeliveryNote[];
}

export const REDELIVERY_DEFAULTS = {
  windowSec: 3_600,
  minAgeSec: 60,
  maxAttempts: 5,
  maxPerRun: 50,
  reserveMs: 15_000,
} as const;

const isSuccess = (status: number): boolean => status >= 200 && status < 300;
/**
 * Worth another attempt: no answer (0), a server error, 409 (another copy was in flight) or 401 (a
 * secret being rotated). Other 4xx are the router's final word on that body: redelivering changes nothing.
 */
const isRetryable = (status: number): boolean =>
  status === 0 || status >= 500 || status === 409 || status === 401;

/** A rate limit from GitHub (as runtime/runners/github-app.ts's `GitHubRateLimitError` codes it). */
export const isRateLimit = (error: unknown): boolean =>
  error instanceof RetryableError && error.code === 'github-rate-limited';

interface GuidAttempts {
  readonly guid: string;
  latest: HookDelivery;
  attempts: number;
  succeeded: boolean;
}

/** One pass: see the module's comment. */
export async function redeliverFailed(deps: RedeliveryDeps): Promise<RedeliveryReport> {
  const windowSec = deps.windowSec ?? REDELIVERY_DEFAULTS.windowSec;
  const minAgeMs = (deps.minAgeSec ?? REDELIVERY_DEFAULTS.minAgeSec) * 1_000;
  const maxAttempts = deps.maxAttempts ?? REDELIVERY_DEFAULTS.maxAttempts;
  const maxPerRun = deps.maxPerRun ?? REDELIVERY_DEFAULTS.maxPerRun;
  const reserveMs = deps.reserveMs ?? REDELIVERY_DEFAULTS.reserveMs;
  const now = deps.now();
  const sinceMs = now - windowSec * 1_000;
  const report = {
    listed: 0,
    failedGuids: 0,
    final: 0,
    redelivered: 0,
    redeliveryFailed: 0,
    gaveUp: 0,
    recent: 0,
    deferred: 0,
    rateLimited: false,
    gaveUpGuids: [] as RedeliveryNote[],
    failures: [] as RedeliveryNote[],
  };

  let deliveries: readonly HookDelivery[];
  try {
    deliveries = await deps.github.listDeliveries(sinceMs);
  } catch (error) {
    if (!isRateLimit(error)) throw error;
    return { ...report, rateLimited: true };
  }
  report.listed = deliveries.length;

  const byGuid = new Map<string, GuidAttempts>();
  for (const delivery of deliveries) {
    if (delivery.event !== 'workflow_job') continue;
    const known = byGuid.get(delivery.guid);
    if (!known) {
      byGuid.set(delivery.guid, {
        guid: delivery.guid,
        latest: delivery,
        attempts: 1,
        succeeded: isSuccess(delivery.statusCode),
      });
      continue;
    }
    known.attempts += 1;
    known.succeeded ||= isSuccess(delivery.statusCode);
    if (
      delivery.deliveredAt > known.latest.deliveredAt ||
      (delivery.deliveredAt === known.latest.deliveredAt && delivery.id > known.latest.id)
    )
      known.latest = delivery;
  }

  const due: GuidAttempts[] = [];
  for (const entry of byGuid.values()) {
    // A guid whose latest attempt left the window is no longer this pass's (GitHub keeps 3 days).
    if (entry.succeeded || entry.latest.deliveredAt < sinceMs) continue;
    report.failedGuids += 1;
    if (!isRetryable(entry.latest.statusCode)) {
      report.final += 1;
      continue;
    }
    if (entry.attempts >= maxAttempts) {
      report.gaveUp += 1;
      report.gaveUpGuids.push(noteOf(entry));
    } else if (now - entry.latest.deliveredAt < minAgeMs) report.recent += 1;
    else due.push(entry);
  }
  due.sort((a, b) => a.latest.deliveredAt - b.latest.deliveredAt || a.latest.id - b.latest.id);

  for (const [index, entry] of due.entries()) {
    if (report.redelivered + report.redeliveryFailed >= maxPerRun || outOfTime(deps, reserveMs)) {
      report.deferred += due.length - index;
      break;
    }
    try {
      await deps.github.redeliver(entry.latest.id);
      report.redelivered += 1;
    } catch (error) {
      report.redeliveryFailed += 1;
      const failure = classifyFailure(error);
      report.failures.push({ ...noteOf(entry), code: failure.code, reason: failure.reason });
      if (isRateLimit(error)) {
        report.rateLimited = true;
        report.deferred += due.length - index - 1;
        break;
      }
    }
  }
  return report;
}

function outOfTime(deps: RedeliveryDeps, reserveMs: number): boolean {
  return deps.timeLeftMs !== undefined && deps.timeLeftMs() < reserveMs;
}

function noteOf(entry: GuidAttempts): RedeliveryNote {
  return {
    guid: entry.guid,
    deliveryId: entry.latest.id,
    statusCode: entry.latest.statusCode,
    attempts: entry.attempts,
    ...(entry.latest.action !== undefined ? { action: entry.latest.action } : {}),
  };
}
