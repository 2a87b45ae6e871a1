import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../lib/config';
import { AllocationConfigError, parseAllocationConfig, REGION_NAME, type AllocationConfig } from './config';
import { DynamodbLimiterStore } from './dynamodb-store';
import { QuotaLimiter } from './limiter';

const regionBuckets = z.string().check(
  z.refine((text) => {
    const pairs = text.split(',').map((pair) => pair.split('='));
    return (
      pairs.every(
        ([region, bucket, ...rest]) => REGION_NAME.test(region ?? '') && !!bucket && rest.length === 0,
      ) && new Set(pairs.map(([region]) => region)).size === pairs.length
    );
  }, 'expected <region>=<bucket> pairs, comma-separated, each region once'),
);

const millis = (what: string, max: number, fallback: number) =>
  z._default(
    z.coerce.number().check(z.int(), z.gte(0), z.lte(max, `expected ${what}, 0 to ${max} ms`)),
    fallback,
  );

const limiterSettings = z.object({
  AWS_REGION: z.string().check(z.minLength(1, 'expected the region the function runs in')),
  QUOTA_TABLE_NAME: z.string().check(z.minLength(1, "expected the region's limiter table")),
  QUOTA_CONFIG: z.string().check(z.minLength(2, 'expected the allocation config as JSON')),
  QUOTA_LEASE_MS: millis('the token lease', 60_000, 100),
  QUOTA_HEARTBEAT_CACHE_MS: millis("how long the sync's heartbeat is cached", 60_000, 1000),
});

const syncSettings = z.object({
  ...limiterSettings.shape,
  QUOTA_SNAPSHOT_BUCKETS: regionBuckets,
  QUOTA_SHADOW: z._default(z.enum(['true', 'false']), 'false'),
  QUOTA_PEER_TIMEOUT_MS: millis("the time allowed to read a peer's snapshot", 60_000, 5000),
});

function allocationConfig(json: string): AllocationConfig {
  try {
    return parseAllocationConfig(JSON.parse(json) as unknown, 'QUOTA_CONFIG');
  } catch (error) {
    if (error instanceof AllocationConfigError) throw new HandlerConfigError([error.message]);
    throw new HandlerConfigError(['QUOTA_CONFIG: expected the allocation config as JSON']);
  }
}

export interface QuotaSyncSettings {
  readonly region: string;
  readonly tableName: string;
  readonly config: AllocationConfig;
  readonly buckets: ReadonlyMap<string, string>;
  readonly shadow: boolean;
  readonly peerTimeoutMs: number;
}

/** The sync function's settings from its environment; every problem named at once, no value quoted. */
export function loadSyncSettings(env: NodeJS.ProcessEnv = process.env): QuotaSyncSettings {
  const raw = loadConfig(syncSettings, env);
  const config = allocationConfig(raw.QUOTA_CONFIG);
  const buckets = new Map(
    raw.QUOTA_SNAPSHOT_BUCKETS.split(',').map((pair) => pair.split('=') as [string, string]),
  );
  const missing = config.regions.filter((r) => !buckets.has(r.region)).map((r) => r.region);
  if (!config.regions.some((r) => r.region === raw.AWS_REGION))
    throw new HandlerConfigError([
      'QUOTA_CONFIG: expected the regions to include the one the function runs in',
    ]);
  if (missing.length > 0)
    throw new HandlerConfigError([`QUOTA_SNAPSHOT_BUCKETS: expected a bucket for ${missing.join(', ')}`]);
  return {
    region: raw.AWS_REGION,
    tableName: raw.QUOTA_TABLE_NAME,
    config,
    buckets,
    shadow: raw.QUOTA_SHADOW === 'true',
    peerTimeoutMs: raw.QUOTA_PEER_TIMEOUT_MS,
  };
}

/**
 * The limiter for any handler of the region: its function needs `QUOTA_TABLE_NAME` and `QUOTA_CONFIG` in
 * its environment and read/write access to the table (QuotaService.grantConsume does both).
 */
export function createQuotaLimiter(
  env: NodeJS.ProcessEnv = process.env,
  client?: DynamoDBClient,
): QuotaLimiter {
  const raw = loadConfig(limiterSettings, env);
  return new QuotaLimiter({
    store: new DynamodbLimiterStore(
      client ?? new DynamoDBClient({ region: raw.AWS_REGION }),
      raw.QUOTA_TABLE_NAME,
    ),
    config: allocationConfig(raw.QUOTA_CONFIG),
    region: raw.AWS_REGION,
    leaseMs: raw.QUOTA_LEASE_MS,
    heartbeatCacheMs: raw.QUOTA_HEARTBEAT_CACHE_MS,
  });
}
