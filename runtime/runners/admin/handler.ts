import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../lib/config';
import { PermanentError, RetryableError } from '../../lib/failures';
import { jsonResponse, type HttpResponse } from '../../lib/http';
import { createLogger } from '../../lib/logger';
import { describeError } from '../../lib/redact';
import { isTransientAwsError } from '../../lib/retry';
import {
  AdminRequestError,
  callerOf,
  changeRegion,
  describeRegions,
  reasonOf,
  regionOf,
  type AdminCore,
  type AdminLog,
} from '../admin';
import { REGION_NAME, functionRunnerConfig } from '../config';
import { RegionStatusTable } from '../region-status';
import { DynamodbRegionViews } from '../region-views';

/**
 * The runner admin API (HTTP API, payload format 2.0, every route IAM-authorised at API Gateway):
 *
 * - `POST /admin/failover/{region}` `{ "reason": "..." }`: drains the region (no new runs; placed runs
 *   finish). 409 when it would leave no region operator-active.
 * - `POST /admin/restore/{region}` `{ "reason": "..." }`: makes the region active again.
 * - `GET /admin/regions`: every configured region's statuses and spillover inputs.
 *
 * Every change is audited as the caller's IAM ARN, with the STS source identity and the organisation id of
 * the caller's account beside it when `requestContext.authorizer.iam` carries them (admin.ts says what an
 * assumed role's session name is worth).
 *
 * Answers: 200; 400 (a field and its rule), 403 (no IAM caller), 404 (unknown region or route), 409,
 * 413 (body over 4 KiB), 503 (AWS did not answer: try again), 500 (nothing more is said; the log has the
 * error's name).
 *
 * Settings: `AWS_REGION`, `RUNNERS_CONFIG` (the runner configuration as JSON), `REGION_STATUS_TABLE`,
 * `STATE_TABLE`, `RUNNER_QUEUE_PREFIX`, `ACCOUNT_ID`.
 */

const settings = z.object({
  AWS_REGION: z.string().check(z.regex(REGION_NAME, 'expected the region the function runs in')),
  RUNNERS_CONFIG: z.string().check(z.minLength(1, 'expected the runner configuration as JSON')),
  REGION_STATUS_TABLE: z.string().check(z.minLength(1, 'expected the region-status table name')),
  STATE_TABLE: z.string().check(z.minLength(1, "expected the regional state table's name")),
  RUNNER_QUEUE_PREFIX: z
    .string()
    .check(z.regex(/^[A-Za-z0-9_-]{1,48}$/, 'expected 1-48 of letters, digits, - and _')),
  ACCOUNT_ID: z.string().check(z.regex(/^\d{12}$/, 'expected a 12-digit AWS account id')),
});

export type AdminSettings = z.output<typeof settings>;

/** The part of an HTTP API (payload 2.0) event the admin API reads. */
export interface AdminEvent {
  readonly routeKey?: string;
  readonly pathParameters?: Readonly<Record<string, string | undefined>>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext?: { readonly authorizer?: { readonly iam?: unknown } };
}

export interface AdminHandlerDependencies extends AdminCore {
  /** Callers of other accounts are refused. */
  readonly accountId: string;
  readonly log: AdminLog & { error(message: string, extra: Record<string, unknown>): void };
}

const STATUS_OF: Readonly<Record<string, number>> = {
  'unknown-region': 404,
  'last-active-region': 409,
  'concurrent-change': 409,
};

function failure(error: unknown, log: AdminHandlerDependencies['log']): HttpResponse {
  if (error instanceof AdminRequestError)
    return jsonResponse(error.statusCode, { error: error.code, message: error.reason });
  if (error instanceof PermanentError || error instanceof RetryableError) {
    const status = Object.prototype.hasOwnProperty.call(STATUS_OF, error.code)
      ? STATUS_OF[error.code]
      : undefined;
    if (status !== undefined) return jsonResponse(status, { error: error.code, message: error.reason });
  }
  if (error instanceof RetryableError || isTransientAwsError(error)) {
    log.warn('admin request failed, transient', { error: describeError(error) });
    return jsonResponse(503, { error: 'unavailable', message: 'a dependency did not answer: try again' });
  }
  log.error('admin request failed', { error: describeError(error) });
  return jsonResponse(500, { error: 'internal', message: 'the request failed' });
}

/** The handler over the dependencies given (tests pass fakes; the Lambda builds them from its settings). */
export function createAdminHandler(
  deps: AdminHandlerDependencies,
): (event: AdminEvent) => Promise<HttpResponse> {
  return async (event) => {
    try {
      const caller = callerOf(event.requestContext?.authorizer?.iam, deps.accountId);
      switch (event.routeKey) {
        case 'GET /admin/regions':
          return jsonResponse(200, await describeRegions(deps));
        case 'POST /admin/failover/{region}':
        case 'POST /admin/restore/{region}': {
          const region = regionOf(deps.config, event.pathParameters?.region);
          const reason = reasonOf(event.body, event.isBase64Encoded ?? false);
          const action = event.routeKey === 'POST /admin/failover/{region}' ? 'failover' : 'restore';
          return jsonResponse(200, await changeRegion(deps, action, region, caller, reason));
        }
        default:
          return jsonResponse(404, { error: 'not-found', message: 'route: expected an admin route' });
      }
    } catch (error) {
      return failure(error, deps.log);
    }
  };
}

/** The dependencies from the function's settings: one client per region, created once per container. */
export function defaultAdminDependencies(env: NodeJS.ProcessEnv = process.env): AdminHandlerDependencies {
  const config = loadConfig(settings, env);
  const problems: string[] = [];
  const runners = functionRunnerConfig(config.RUNNERS_CONFIG, config.AWS_REGION, problems);
  if (!runners) throw new HandlerConfigError(problems);
  const log = createLogger('runner-admin');
  const dynamodbClients = new Map<string, DynamoDBClient>();
  const sqsClients = new Map<string, SQSClient>();
  const dynamodb = (region: string) => {
    const client = dynamodbClients.get(region) ?? new DynamoDBClient({ region });
    dynamodbClients.set(region, client);
    return client;
  };
  const sqs = (region: string) => {
    const client = sqsClients.get(region) ?? new SQSClient({ region, useQueueUrlAsEndpoint: false });
    sqsClients.set(region, client);
    return client;
  };
  const now = () => Date.now();
  const statuses = new RegionStatusTable({
    client: dynamodb(config.AWS_REGION),
    tableName: config.REGION_STATUS_TABLE,
    regions: runners.regions.map((r) => r.region),
    now,
  });
  const views = new DynamodbRegionViews({
    config: runners,
    localRegion: config.AWS_REGION,
    accountId: config.ACCOUNT_ID,
    queuePrefix: config.RUNNER_QUEUE_PREFIX,
    regionStatusTable: config.REGION_STATUS_TABLE,
    stateTable: config.STATE_TABLE,
    dynamodb,
    sqs,
    now,
    statuses,
    onRegionUnreadable: (region, reason) => log.warn('region unreadable', { region, reason }),
  });
  return { config: runners, accountId: config.ACCOUNT_ID, statuses, views, log };
}

let handle: ((event: AdminEvent) => Promise<HttpResponse>) | undefined;

/** The Lambda entry point. A bad setting fails every request, naming the settings (never their values). */
export async function handler(event: AdminEvent): Promise<HttpResponse> {
  handle ??= createAdminHandler(defaultAdminDependencies());
  return handle(event);
}
