import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import * as z from 'zod/mini';
import { loadConfig } from '../lib/config';
import { jsonResponse, type HttpResponse } from '../lib/http';
import { createLogger } from '../lib/logger';
import { assessHealth, verdictStatusCode } from './core';
import { probeDynamodbTable } from './dynamodb-probe';

const settings = z.object({
  AWS_REGION: z.string().check(z.minLength(1, 'expected the region the function runs in')),
  STATE_TABLE_NAME: z.string().check(z.minLength(1, "expected the name of the region's state table")),
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

const logger = createLogger('health');
let defaults: HealthDependencies | undefined;

function defaultDependencies(): HealthDependencies {
  const config = loadConfig(settings);
  return { config, dynamodb: new DynamoDBClient({ region: config.AWS_REGION }), now: () => new Date() };
}

/** Probes the region's dependencies and answers 200 when all serve, 503 naming those that do not. */
export async function checkHealth(deps: HealthDependencies): Promise<HttpResponse> {
  const probes = [
    await probeDynamodbTable(deps.dynamodb, deps.config.STATE_TABLE_NAME, deps.config.PROBE_TIMEOUT_MS),
  ];
  const verdict = assessHealth(deps.config.AWS_REGION, probes, deps.now());
  if (verdict.status !== 'healthy')
    logger.warn('region unhealthy', { failing: verdict.failing, checks: verdict.checks });
  return jsonResponse(verdictStatusCode(verdict), verdict);
}

/** API Gateway HTTP API route `GET /health`. The event carries nothing the check needs. */
export async function handler(): Promise<HttpResponse> {
  defaults ??= defaultDependencies();
  return checkHealth(defaults);
}
