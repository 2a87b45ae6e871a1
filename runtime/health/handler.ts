import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import * as z from 'zod/mini';
import { loadConfig } from '../lib/config';
import { jsonResponse, type HttpResponse } from '../lib/http';
import { createLogger } from '../lib/logger';
import { sanitizedFailure } from '../lib/redact';
import { assessHealth, publicVerdict, verdictStatusCode, type HealthVerdict } from './core';
import { probeDynamodbDataPlane } from './dynamodb-probe';
import { recordRegionStatus } from './region-status';

const settings = z.object({
  AWS_REGION: z.string().check(z.minLength(1, 'expected the region the function runs in')),
  STATE_TABLE_NAME: z.string().check(z.minLength(1, "expected the name of the region's state table")),
  REGION_STATUS_TABLE_NAME: z.optional(
    z.string().check(z.minLength(1, 'expected the region-status table name')),
  ),
  PROBE_TIMEOUT_MS: z._default(
    z.coerce.number().check(z.int(), z.gte(50), z.lte(10_000, 'expected a probe timeout of 50 to 10000 ms')),
    2_000,
  ),
});

export interface HealthDependencies {
  readonly config: z.output<typeof settings>;
  readonly dynamodb: DynamoDBClient;
  readonly now: () => Date;
}

/** Region-status items outlive a few missed schedules (one a minute), then expire. */
const STATUS_TTL_SEC = 300;

const logger = createLogger('health');
let defaults: HealthDependencies | undefined;

function defaultDependencies(): HealthDependencies {
  const config = loadConfig(settings);
  return { config, dynamodb: new DynamoDBClient({ region: config.AWS_REGION }), now: () => new Date() };
}

async function assess(deps: HealthDependencies): Promise<HealthVerdict> {
  const probes = [
    await probeDynamodbDataPlane(
      deps.dynamodb,
      deps.config.STATE_TABLE_NAME,
      deps.config.AWS_REGION,
      deps.config.PROBE_TIMEOUT_MS,
      () => deps.now().getTime(),
    ),
  ];
  const verdict = assessHealth(deps.config.AWS_REGION, probes, deps.now());
  if (verdict.status !== 'healthy')
    logger.warn('region unhealthy', { failing: verdict.failing, checks: verdict.checks });
  return verdict;
}

/** Probes the region's dependencies and answers 200 when all serve, 503 naming those that do not. */
export async function checkHealth(deps: HealthDependencies): Promise<HttpResponse> {
  const verdict = await assess(deps);
  return jsonResponse(verdictStatusCode(verdict), publicVerdict(verdict));
}

/** On schedule: assesses the region and records the verdict in the region-status table. */
export async function reportHealth(deps: HealthDependencies): Promise<HealthVerdict> {
  const verdict = await assess(deps);
  const table = deps.config.REGION_STATUS_TABLE_NAME;
  if (!table) throw new Error('REGION_STATUS_TABLE_NAME is not set: the scheduled report has nowhere to go');
  await recordRegionStatus(deps.dynamodb, table, verdict, STATUS_TTL_SEC);
  return verdict;
}

const isScheduledEvent = (event: unknown): boolean =>
  typeof event === 'object' && event !== null && (event as { source?: unknown }).source === 'aws.events';

/** `GET /health` through the HTTP API, or the EventBridge schedule that records the region's status. */
export async function handler(event?: unknown): Promise<HttpResponse | HealthVerdict> {
  defaults ??= defaultDependencies();
  if (!isScheduledEvent(event)) return checkHealth(defaults);
  try {
    return await reportHealth(defaults);
  } catch (error) {
    throw sanitizedFailure(logger, 'health report failed', error);
  }
}
