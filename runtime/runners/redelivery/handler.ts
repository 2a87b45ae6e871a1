import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { createAppAuth } from '@octokit/auth-app';
import { request as octokitRequest } from '@octokit/request';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod/mini';
import { loadConfig } from '../../lib/config';
import { classifyFailure, PermanentError, RetryableError } from '../../lib/failures';
import { createLogger } from '../../lib/logger';
import { describeError } from '../../lib/redact';
import { REGION_NAME } from '../config';
import { githubFailure, parseAppSecret, secretFromSecretsManager } from '../github-app';
import {
  redeliverFailed,
  type HookDelivery,
  type RedeliveryDeps,
  type RedeliveryGitHub,
  type RedeliveryReport,
} from '../redelivery';
import { DELIVERY_GUID } from '../model';

/**
 * The webhook redelivery's scheduled function (EventBridge, every few minutes): one pass of
 * runtime/runners/redelivery.ts over the GitHub App's webhook deliveries. Every region runs it; two regions
 * redelivering the same guid is harmless (the router's claims answer the second copy 200, a duplicate).
 *
 * GitHub is called as the App itself (its JWT, RS256 with the App's private key from the Secrets Manager
 * secret the dispatcher reads, `{"appId": "...", "privateKey": "-----BEGIN ..."}`); no installation token.
 * IAM: `secretsmanager:GetSecretValue` on that secret (and `kms:Decrypt` on its key when it is a customer
 * managed one); metrics go through the log (EMF), no CloudWatch permission.
 *
 * Metrics (namespace `Estate/Runners`, service `runner-redelivery`, dimension `region`), every run, zeros
 * included: Redelivered, RedeliveryFailed, RedeliveryGaveUp, RedeliveryRateLimited; RedeliveryErrors when a
 * run fails (the listing was refused, the secret unreadable). Log lines carry guids, delivery ids, events'
 * actions and statuses, never the private key or the JWT; a guid's lines carry it as `correlation_id` too.
 */

// ---------------------------------------------------------------------------------------- settings

const environment = z.object({
  AWS_REGION: z.string().check(z.regex(REGION_NAME, 'expected the region the function runs in')),
  GITHUB_APP_SECRET_ID: z.string().check(z.minLength(1, "expected the GitHub App's secret")),
  GITHUB_API_URL: z._default(
    z.string().check(z.regex(/^https?:\/\/\S+$/, 'expected a URL')),
    'https://api.github.com',
  ),
  REDELIVERY_WINDOW_SEC: z.optional(
    z.coerce
      .number()
      .check(
        z.int('expected a whole number of seconds'),
        z.gte(300, 'expected 300-259200 (GitHub keeps deliveries 3 days)'),
        z.lte(259_200, 'expected 300-259200 (GitHub keeps deliveries 3 days)'),
      ),
  ),
});

export interface RedeliverySettings {
  readonly region: string;
  readonly githubAppSecretId: string;
  readonly githubApiUrl: string;
  readonly windowSec?: number;
}

/** The function's settings from its environment; every problem named at once, no value quoted. */
export function loadRedeliverySettings(env: NodeJS.ProcessEnv = process.env): RedeliverySettings {
  const raw = loadConfig(environment, env);
  return {
    region: raw.AWS_REGION,
    githubAppSecretId: raw.GITHUB_APP_SECRET_ID,
    githubApiUrl: raw.GITHUB_API_URL,
    ...(raw.REDELIVERY_WINDOW_SEC !== undefined ? { windowSec: raw.REDELIVERY_WINDOW_SEC } : {}),
  };
}

// ------------------------------------------------------------------------------------------ GitHub

export interface AppHookDeliveriesOptions {
  /** The App secret's JSON text. */
  readonly loadSecret: () => Promise<string>;
  /** GitHub's REST API root (GitHub Enterprise Server: `https://<host>/api/v3`). */
  readonly baseUrl?: string;
  readonly now?: () => number;
  /** Default: 10 minutes. */
  readonly secretCacheMs?: number;
  /** Pages of 100 deliveries read at most in one listing. Default: 50. */
  readonly maxPages?: number;
  /** Per request. Default: 10 s. */
  readonly timeoutMs?: number;
  /** For tests: the fetch implementation. */
  readonly fetch?: typeof fetch;
}

const PER_PAGE = 100;

const ownField = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

/** The `cursor` of a `Link` header's `rel="next"` URL (only the cursor: the JWT goes to `baseUrl` only). */
export function nextCursor(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match || !/\brel="?next"?/.test(match[2] ?? '')) continue;
    try {
      return new URL(match[1] ?? '').searchParams.get('cursor') ?? undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function deliveryOf(item: unknown): HookDelivery | undefined {
  const id = ownField(item, 'id');
  const guid = ownField(item, 'guid');
  const deliveredAt = ownField(item, 'delivered_at');
  const statusCode = ownField(item, 'status_code');
  const event = ownField(item, 'event');
  const action = ownField(item, 'action');
  const at = typeof deliveredAt === 'string' ? Date.parse(deliveredAt) : NaN;
  if (
    typeof id !== 'number' ||
    !Number.isSafeInteger(id) ||
    id <= 0 ||
    typeof guid !== 'string' ||
    guid.length === 0 ||
    guid.length > 100 ||
    !Number.isFinite(at) ||
    typeof event !== 'string'
  )
    return undefined;
  return {
    id,
    guid,
    deliveredAt: at,
    redelivery: ownField(item, 'redelivery') === true,
    statusCode: typeof statusCode === 'number' ? statusCode : 0,
    event,
    ...(typeof action === 'string' ? { action } : {}),
  };
}

/** RedeliveryGitHub over the GitHub App's own credentials (its JWT). */
export class AppHookDeliveries implements RedeliveryGitHub {
  private app: { readonly auth: ReturnType<typeof createAppAuth>; readonly loadedAt: number } | undefined;
  private readonly request: typeof octokitRequest;
  private readonly now: () => number;

  constructor(private readonly options: AppHookDeliveriesOptions) {
    this.now = options.now ?? Date.now;
    this.request = octokitRequest.defaults({
      baseUrl: (options.baseUrl ?? 'https://api.github.com').replace(/\/+$/, ''),
      headers: { 'user-agent': 'estate-runner-redelivery', 'x-github-api-version': '2022-11-28' },
      ...(options.fetch ? { request: { fetch: options.fetch } } : {}),
    });
  }

  async listDeliveries(sinceMs: number): Promise<readonly HookDelivery[]> {
    const found: HookDelivery[] = [];
    let cursor: string | undefined;
    for (let page = 1; page <= (this.options.maxPages ?? 50); page++) {
      const response = await this.asApp('list-hook-deliveries', (jwt) =>
        this.request('GET /app/hook/deliveries', {
          per_page: PER_PAGE,
          ...(cursor !== undefined ? { cursor } : {}),
          headers: { authorization: `bearer ${jwt}` },
          request: { signal: this.signal() },
        }),
      );
      if (!Array.isArray(response.data))
        throw new RetryableError(
          'github-hook-deliveries-answer',
          'list-hook-deliveries: expected a list of deliveries',
        );
      let older = false;
      for (const item of response.data as unknown[]) {
        const delivery = deliveryOf(item);
        if (!delivery) continue;
        found.push(delivery);
        if (delivery.deliveredAt < sinceMs) older = true;
      }
      cursor = nextCursor(response.headers.link);
      if (older || cursor === undefined || response.data.length === 0) break;
    }
    return found;
  }

  async redeliver(deliveryId: number): Promise<void> {
    await this.asApp('redeliver-hook-delivery', (jwt) =>
      this.request('POST /app/hook/deliveries/{delivery_id}/attempts', {
        delivery_id: deliveryId,
        headers: { authorization: `bearer ${jwt}` },
        request: { signal: this.signal() },
      }),
    );
  }

  /** Calls GitHub with a fresh JWT; refused credentials drop the cached secret (a rotated key is read). */
  private async asApp<T>(call: string, fn: (jwt: string) => Promise<T>): Promise<T> {
    const now = this.now();
    if (
      !this.app ||
      now < this.app.loadedAt ||
      now - this.app.loadedAt >= (this.options.secretCacheMs ?? 600_000)
    )
      this.app = { auth: await this.appAuth(), loadedAt: now };
    try {
      const { token } = await this.app.auth({ type: 'app' });
      return await fn(token);
    } catch (error) {
      if ((error as { status?: unknown }).status === 401) this.app = undefined;
      throw githubFailure(call, error, now);
    }
  }

  private async appAuth(): Promise<ReturnType<typeof createAppAuth>> {
    let text: string;
    try {
      text = await this.options.loadSecret();
    } catch (error) {
      if (error instanceof PermanentError) throw error;
      throw new RetryableError(
        'github-app-secret-unavailable',
        `the App secret could not be read: ${describeError(error)}`,
      );
    }
    const { appId, privateKey } = parseAppSecret(text);
    return createAppAuth({ appId, privateKey, request: this.request, log: { warn: () => undefined } });
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.options.timeoutMs ?? 10_000);
  }
}

// ----------------------------------------------------------------------------------------- handler

/** The part of Powertools' Metrics the handler uses (tests inject a recorder). */
export interface MetricsSink {
  addMetric(name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void;
  publishStoredMetrics(): void;
}

export interface RedeliveryHandlerOptions {
  readonly region: string;
  /** The core's dependencies; the handler adds the time left from Lambda's context. */
  readonly deps: Omit<RedeliveryDeps, 'timeLeftMs'>;
  readonly logger?: Logger;
  readonly metrics?: MetricsSink;
}

/** What a run answers (EventBridge ignores it): the counts. */
export type RedeliverySummary = Omit<RedeliveryReport, 'gaveUpGuids' | 'failures'>;

function summaryOf(report: RedeliveryReport): RedeliverySummary {
  const summary: { -readonly [K in keyof RedeliveryReport]?: RedeliveryReport[K] } = { ...report };
  delete summary.gaveUpGuids;
  delete summary.failures;
  return summary as RedeliverySummary;
}

/** The part of Lambda's context the handler reads. */
export interface RedeliveryContext {
  getRemainingTimeInMillis(): number;
}

/** Production dependencies from the settings: clients created once per container. */
export function redeliveryOptionsFrom(settings: RedeliverySettings): RedeliveryHandlerOptions {
  const secrets = new SecretsManagerClient({
    region: settings.region,
    maxAttempts: 3,
    requestHandler: { requestTimeout: 5_000, connectionTimeout: 2_000 },
  });
  return {
    region: settings.region,
    deps: {
      github: new AppHookDeliveries({
        loadSecret: secretFromSecretsManager(secrets, settings.githubAppSecretId),
        baseUrl: settings.githubApiUrl,
      }),
      now: () => Date.now(),
      ...(settings.windowSec !== undefined ? { windowSec: settings.windowSec } : {}),
    },
  };
}

/**
 * A guid's lines carry it as their correlation id, as the router's and the dispatcher's lines of that
 * delivery do (the router's: the `X-GitHub-Delivery` GUID, lower-cased). A guid of another form has none.
 */
function correlationOfGuid(guid: string): { readonly correlation_id?: string } {
  const id = guid.toLowerCase();
  return DELIVERY_GUID.test(id) ? { correlation_id: id } : {};
}

/** The handler over the options given, built on first use when given a factory. */
export function createRedeliveryHandler(
  given: RedeliveryHandlerOptions | (() => RedeliveryHandlerOptions),
): (event?: unknown, context?: RedeliveryContext) => Promise<RedeliverySummary> {
  let built: RedeliveryHandlerOptions | undefined = typeof given === 'function' ? undefined : given;
  let logger: Logger | undefined;
  let metrics: MetricsSink | undefined;
  return async (_event, context) => {
    built ??= (given as () => RedeliveryHandlerOptions)();
    const options = built;
    logger ??= options.logger ?? createLogger('runner-redelivery');
    metrics ??=
      options.metrics ??
      new Metrics({
        namespace: 'Estate/Runners',
        serviceName: 'runner-redelivery',
        defaultDimensions: { region: options.region },
      });
    const log = logger;
    const sink = metrics;
    try {
      const report = await redeliverFailed({
        ...options.deps,
        ...(context ? { timeLeftMs: () => context.getRemainingTimeInMillis() } : {}),
      });
      sink.addMetric('Redelivered', MetricUnit.Count, report.redelivered);
      sink.addMetric('RedeliveryFailed', MetricUnit.Count, report.redeliveryFailed);
      sink.addMetric('RedeliveryGaveUp', MetricUnit.Count, report.gaveUp);
      sink.addMetric('RedeliveryRateLimited', MetricUnit.Count, report.rateLimited ? 1 : 0);
      for (const note of report.gaveUpGuids)
        log.warn('webhook delivery given up: every attempt failed', {
          ...correlationOfGuid(note.guid),
          ...note,
        });
      for (const note of report.failures)
        log.warn('webhook redelivery failed', { ...correlationOfGuid(note.guid), ...note });
      const summary = summaryOf(report);
      if (report.rateLimited) log.warn('redelivery pass stopped: GitHub rate limit', { ...summary });
      log.info('redelivery run', { ...summary });
      return summary;
    } catch (error) {
      sink.addMetric('RedeliveryErrors', MetricUnit.Count, 1);
      const failure = classifyFailure(error);
      log.error('redelivery run failed', { code: failure.code, reason: failure.reason });
      throw failure.permanent
        ? new PermanentError(failure.code, failure.reason)
        : new RetryableError(failure.code, failure.reason);
    } finally {
      sink.publishStoredMetrics();
    }
  };
}

/** The Lambda entry point: settings and clients built on the first invocation. */
export const handler = createRedeliveryHandler(() => redeliveryOptionsFrom(loadRedeliverySettings()));
