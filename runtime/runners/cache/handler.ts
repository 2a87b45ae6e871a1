import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  BatchGetItemCommand,
  DynamoDBClient,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../lib/config';
import { RetryableError } from '../../lib/failures';
import { jsonResponse, type HttpResponse } from '../../lib/http';
import { createLogger } from '../../lib/logger';
import { describeError } from '../../lib/redact';
import { backoffMs, type RetryPolicy } from '../../lib/retry';
import {
  getCacheEntry,
  MAX_PUT_BODY_CHARS,
  putCacheEntry,
  recordUploads,
  uploadHeaders,
  type CacheAnswer,
  type CacheCoreDeps,
  type CacheCopy,
  type CacheIndex,
  type CacheOutcome,
  type CacheRequest,
  ownProperty as own,
  type Presigner,
  type UploadReport,
} from '../cache';
import { CacheTokenKeys, secretsManagerStageReader, type CacheTokenVerifier } from '../cache-token';
import { REGION_NAME, type RunnerConfig, functionRunnerConfig } from '../config';
import { cacheCopyKey, TTL_ATTRIBUTE } from '../tables';

/**
 * The artifact cache's function, one per region: `GET /cache/{hash}` and `PUT /cache/{hash}` from the
 * regional HTTP API (payload 2.0), and the `ObjectCreated:*` notifications of the region's cache bucket.
 *
 * Settings: `AWS_REGION`, `RUNNERS_CONFIG` (the runner configuration JSON), `CACHE_INDEX_TABLE` (the
 * artifact-cache-index global table), `CACHE_BUCKETS` (JSON: every configured region -> its cache bucket),
 * `CACHE_TOKEN_SECRET_ID`, `CACHE_URL_TTL_SEC` (default 300), `CACHE_EXPIRE_DAYS` (the buckets' lifecycle,
 * default 30).
 *
 * Its role needs `dynamodb:BatchGetItem` (reads: every region's item of an entry at once) and
 * `dynamodb:UpdateItem` (this region's item of an upload) on the index, `secretsmanager:GetSecretValue` on
 * the token secret, `s3:PutObject` on this region's bucket and `s3:GetObject` on every region's bucket (the
 * presigned URLs carry its permissions; a URL lives at most `CACHE_URL_TTL_SEC`, never longer than the
 * runner's token, and no longer than the function's session credentials).
 */

const BUCKET_NAME = /^(?!xn--)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const required = (what: string) => z.string().check(z.minLength(1, `expected ${what}`));
const count = (what: string, min: number, max: number, fallback: number) =>
  z._default(
    z.coerce
      .number()
      .check(
        z.int(`expected ${what}, a whole number`),
        z.gte(min, `expected ${what}, ${min} to ${max}`),
        z.lte(max, `expected ${what}, ${min} to ${max}`),
      ),
    fallback,
  );

const schema = z.object({
  AWS_REGION: z.string().check(z.regex(REGION_NAME, 'expected the region the function runs in')),
  RUNNERS_CONFIG: required('the runner configuration as JSON'),
  CACHE_INDEX_TABLE: required('the name of the artifact-cache-index table'),
  CACHE_BUCKETS: required('the cache bucket of every configured region, as JSON'),
  CACHE_TOKEN_SECRET_ID: required('the id of the cache token secret'),
  CACHE_URL_TTL_SEC: count('the presigned URL lifetime in seconds', 30, 3_600, 300),
  CACHE_EXPIRE_DAYS: count("the cache buckets' lifecycle expiry in days", 2, 3_650, 30),
});

export interface CacheSettings {
  readonly region: string;
  readonly config: RunnerConfig;
  readonly table: string;
  /** Every configured region's cache bucket. */
  readonly buckets: ReadonlyMap<string, string>;
  readonly tokenSecretId: string;
  readonly urlTtlSec: number;
  readonly expireDays: number;
}

function parseBuckets(text: string, config: RunnerConfig, problems: string[]): Map<string, string> {
  const buckets = new Map<string, string>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    problems.push('CACHE_BUCKETS: expected a JSON object of region -> bucket name');
    return buckets;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push('CACHE_BUCKETS: expected a JSON object of region -> bucket name');
    return buckets;
  }
  const regions = new Set(config.regions.map((r) => r.region));
  for (const [region, bucket] of Object.entries(parsed)) {
    if (!regions.has(region)) problems.push('CACHE_BUCKETS: expected keys among the configured regions');
    else if (typeof bucket !== 'string' || !BUCKET_NAME.test(bucket))
      problems.push(`CACHE_BUCKETS.${region}: expected an S3 bucket name`);
    else buckets.set(region, bucket);
  }
  for (const region of regions)
    if (!Object.prototype.hasOwnProperty.call(parsed, region))
      problems.push(`CACHE_BUCKETS.${region}: expected the cache bucket of every configured region`);
  return buckets;
}

/** The cache function's settings; every problem named at once, no value quoted. */
export function loadCacheSettings(env: NodeJS.ProcessEnv = process.env): CacheSettings {
  const problems: string[] = [];
  let flat: z.output<typeof schema> | undefined;
  try {
    flat = loadConfig(schema, env);
  } catch (error) {
    if (!(error instanceof HandlerConfigError)) throw error;
    problems.push(...error.problems);
  }
  // Read even when other settings are bad: every problem is named at once.
  const config = env.RUNNERS_CONFIG
    ? functionRunnerConfig(env.RUNNERS_CONFIG, flat?.AWS_REGION ?? env.AWS_REGION ?? '', problems)
    : undefined;
  const buckets = config && env.CACHE_BUCKETS ? parseBuckets(env.CACHE_BUCKETS, config, problems) : new Map();
  if (problems.length > 0 || !flat || !config) throw new HandlerConfigError(problems);
  return {
    region: flat.AWS_REGION,
    config,
    table: flat.CACHE_INDEX_TABLE,
    buckets,
    tokenSecretId: flat.CACHE_TOKEN_SECRET_ID,
    urlTtlSec: flat.CACHE_URL_TTL_SEC,
    expireDays: flat.CACHE_EXPIRE_DAYS,
  };
}

/** Presigned URLs through `@aws-sdk/s3-request-presigner`, with one S3 client per region. */
export class S3Presigner implements Presigner {
  private readonly clients = new Map<string, S3Client>();

  constructor(
    private readonly clientFor: (region: string) => S3Client = (region) => new S3Client({ region }),
  ) {}

  private client(region: string): S3Client {
    let client = this.clients.get(region);
    if (!client) {
      client = this.clientFor(region);
      this.clients.set(region, client);
    }
    return client;
  }

  getUrl(region: string, bucket: string, objectKey: string, ttlSec: number): Promise<string> {
    return getSignedUrl(this.client(region), new GetObjectCommand({ Bucket: bucket, Key: objectKey }), {
      expiresIn: ttlSec,
    });
  }

  /**
   * The checksum (and the size, when given) are signed headers, not query parameters: the presigner would
   * otherwise hoist `x-amz-checksum-sha256` into the query string, where S3 does not check the body by it.
   */
  putUrl(
    region: string,
    bucket: string,
    objectKey: string,
    sha256Hex: string,
    ttlSec: number,
    bytes?: number,
  ): Promise<string> {
    const headers = uploadHeaders(sha256Hex, bytes);
    const signed = new Set(Object.keys(headers));
    const command = new PutObjectCommand({
      Bucket: bucket,
      Key: objectKey,
      ChecksumSHA256: headers['x-amz-checksum-sha256'],
      ...(bytes === undefined ? {} : { ContentLength: bytes }),
    });
    return getSignedUrl(this.client(region), command, {
      expiresIn: ttlSec,
      signableHeaders: signed,
      unhoistableHeaders: signed,
    });
  }
}

const numberOf = (value: AttributeValue | undefined): number | undefined => {
  const n = value?.N === undefined ? Number.NaN : Number(value.N);
  return Number.isSafeInteger(n) ? n : undefined;
};

/** The index left keys unread through every round (throttling): the request answers 503. */
export class CacheIndexUnreadError extends RetryableError {
  constructor() {
    super('cache-index-unread', 'the artifact-cache-index table left keys unread: try again');
    this.name = 'CacheIndexUnreadError';
  }
}

/**
 * Rounds of a batch read while the table leaves keys unprocessed, and the backoff between them (full
 * jitter under 25, 50, 100 ms).
 */
const UNPROCESSED_RETRY: RetryPolicy = { attempts: 4, baseMs: 25, capMs: 200 };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The artifact-cache-index global table (`cacheKey`): one item per (entry, region), keyed
 * `<owner>/<name>/<sha256>#<region>` (tables.ts), holding `region`, `bytes`, `updatedAt` and `expiresAt`
 * (that copy's expiry, the table's TTL). A region writes its own item only; no write of another region can
 * take its copy away within the replication lag.
 */
export class DynamoDbCacheIndex implements CacheIndex {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    private readonly nowMs: () => number = Date.now,
    private readonly unprocessedRetry: RetryPolicy = UNPROCESSED_RETRY,
  ) {}

  /**
   * Every region's item of `entry`, in one BatchGetItem (at most 10 regions: well under its 100 keys). Keys
   * left unprocessed are asked for again after a jittered backoff; an item without a readable expiry is
   * ignored (it would otherwise be believed forever).
   */
  async copies(entry: string, regions: readonly string[]): Promise<readonly CacheCopy[]> {
    const wanted = new Map<string, string>(
      regions
        .filter((region) => REGION_NAME.test(region))
        .map((region) => [cacheCopyKey(entry, region), region]),
    );
    const copies: CacheCopy[] = [];
    const policy = this.unprocessedRetry;
    let keys: Record<string, AttributeValue>[] = [...wanted.keys()].map((key) => ({ cacheKey: { S: key } }));
    for (let round = 0; keys.length > 0; round++) {
      if (round >= policy.attempts) throw new CacheIndexUnreadError();
      if (round > 0) await (policy.sleep ?? sleep)(backoffMs(round - 1, policy));
      const out = await this.client.send(
        new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: keys } } }),
      );
      for (const item of out.Responses?.[this.table] ?? []) {
        const region = wanted.get(item.cacheKey?.S ?? '');
        const expiresAtSec = numberOf(item[TTL_ATTRIBUTE]);
        if (region === undefined || expiresAtSec === undefined) continue;
        copies.push({ region, bytes: numberOf(item.bytes) ?? 0, expiresAtSec });
      }
      keys = out.UnprocessedKeys?.[this.table]?.Keys ?? [];
    }
    return copies;
  }

  /** Writes this region's item of `entry` whole (idempotent: an upload again recomputes its expiry). */
  async recordUpload(entry: string, region: string, bytes: number, expiresAtSec: number): Promise<void> {
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: { cacheKey: { S: cacheCopyKey(entry, region) } },
        UpdateExpression:
          'SET #region = :region, #bytes = :bytes, #updatedAt = :updatedAt, #expiresAt = :expiresAt',
        ExpressionAttributeNames: {
          '#region': 'region',
          '#bytes': 'bytes',
          '#updatedAt': 'updatedAt',
          '#expiresAt': TTL_ATTRIBUTE,
        },
        ExpressionAttributeValues: {
          ':region': { S: region },
          ':bytes': { N: String(bytes) },
          ':updatedAt': { N: String(this.nowMs()) },
          ':expiresAt': { N: String(expiresAtSec) },
        },
      }),
    );
  }
}

export interface CacheLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface CacheMetrics {
  addMetric(name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void;
  publishStoredMetrics(): void;
}

export interface CacheHandlerDeps {
  readonly settings: CacheSettings;
  readonly index: CacheIndex;
  readonly presigner: Presigner;
  readonly tokens: CacheTokenVerifier;
  readonly nowMs: () => number;
  readonly logger: CacheLogger;
  readonly metrics: CacheMetrics;
}

export type CacheResult = HttpResponse | UploadReport | undefined;

const OUTCOME_METRICS: Record<CacheOutcome, string> = {
  'hit-local': 'CacheHitLocal',
  'hit-remote': 'CacheHitRemote',
  miss: 'CacheMiss',
  'upload-url': 'CacheUploadUrl',
  unauthorized: 'CacheUnauthorized',
  'bad-request': 'CacheBadRequest',
};

type Route = (request: CacheRequest, deps: CacheCoreDeps) => Promise<CacheAnswer>;
const ROUTES: ReadonlyMap<string, Route> = new Map([
  ['GET /cache/{hash}', getCacheEntry],
  ['PUT /cache/{hash}', putCacheEntry],
]);

/** Refused records logged in full per invocation, at most; all are counted. */
const REFUSALS_LOGGED = 20;

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** The PUT body as text: base64 bodies decoded when short enough to be a size (longer ones are refused). */
function bodyOf(event: unknown): string | undefined {
  const body = text(own(event, 'body'));
  if (body === undefined || own(event, 'isBase64Encoded') !== true || body.length > 4 * MAX_PUT_BODY_CHARS)
    return body;
  return Buffer.from(body, 'base64').toString('utf8');
}

/** The cache function with its dependencies given (tests, or another composition). */
export function createCacheHandler(deps: CacheHandlerDeps): (event: unknown) => Promise<CacheResult> {
  const { settings, logger, metrics } = deps;
  const core: CacheCoreDeps = {
    region: settings.region,
    cacheDistance: settings.config.cacheDistance,
    buckets: settings.buckets,
    index: deps.index,
    presigner: deps.presigner,
    tokens: deps.tokens,
    nowSec: () => Math.floor(deps.nowMs() / 1000),
    urlTtlSec: settings.urlTtlSec,
    expireDays: settings.expireDays,
  };
  const count = (name: string, n = 1) => metrics.addMetric(name, MetricUnit.Count, n);

  async function onHttp(routeKey: string, event: unknown): Promise<HttpResponse> {
    const route = ROUTES.get(routeKey);
    if (!route) return jsonResponse(404, { error: 'not-found' });
    const request = {
      authorization: text(own(own(event, 'headers'), 'authorization')),
      hash: text(own(own(event, 'pathParameters'), 'hash')),
      body: bodyOf(event),
    };
    try {
      const answer = await route(request, core);
      count(OUTCOME_METRICS[answer.outcome]);
      logger.info('cache request', {
        route: routeKey,
        outcome: answer.outcome,
        status: answer.response.statusCode,
        ...(answer.refusal ? { refusal: answer.refusal } : {}),
        ...(answer.claims
          ? {
              organization: answer.claims.organization,
              repository: answer.claims.repository,
              jobId: answer.claims.jobId,
            }
          : {}),
        ...(answer.region ? { region: answer.region } : {}),
      });
      return answer.response;
    } catch (error) {
      count('CacheError');
      logger.error('cache request failed', { route: routeKey, error: describeError(error) });
      return jsonResponse(503, { error: 'unavailable' });
    }
  }

  async function onRecords(records: readonly unknown[]): Promise<UploadReport> {
    const report = await recordUploads(records, core);
    if (report.recorded) count('CacheUploadRecorded', report.recorded);
    if (report.refused.length) {
      count('CacheRecordRefused', report.refused.length);
      logger.warn('cache records refused', {
        count: report.refused.length,
        refused: report.refused.slice(0, REFUSALS_LOGGED),
      });
    }
    if (report.failed.length) {
      count('CacheRecordFailed', report.failed.length);
      // S3 invokes asynchronously: a failed invocation is retried, and recording is idempotent
      logger.error('cache index update failed', {
        count: report.failed.length,
        failed: report.failed.slice(0, REFUSALS_LOGGED),
      });
      const failure = new Error(
        `cache index update failed for ${report.failed.length} of ${records.length} records`,
      );
      failure.stack = failure.message;
      throw failure;
    }
    logger.info('cache uploads recorded', { recorded: report.recorded, refused: report.refused.length });
    return report;
  }

  return async (event) => {
    try {
      const records = own(event, 'Records');
      if (Array.isArray(records)) return await onRecords(records);
      const routeKey = own(event, 'routeKey');
      if (typeof routeKey === 'string') return await onHttp(routeKey, event);
      logger.warn('event ignored', { reason: 'expected an HTTP API request or S3 event records' });
      return undefined;
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}

const logger = createLogger('runner-cache');
let instance: ((event: unknown) => Promise<CacheResult>) | undefined;

function defaultDependencies(): CacheHandlerDeps {
  const settings = loadCacheSettings();
  const region = settings.region;
  const metrics = new Metrics({ namespace: 'Estate/Runners', serviceName: 'runner-cache' });
  metrics.setDefaultDimensions({ region });
  const secrets = new SecretsManagerClient({ region });
  return {
    settings,
    index: new DynamoDbCacheIndex(new DynamoDBClient({ region }), settings.table),
    presigner: new S3Presigner(),
    tokens: new CacheTokenKeys(secretsManagerStageReader(secrets, settings.tokenSecretId), {
      onStale: (error) => logger.warn('cache token keys not read; the previous ones stay in use', { error }),
    }),
    nowMs: Date.now,
    logger,
    metrics,
  };
}

/** `GET|PUT /cache/{hash}` (HTTP API, payload 2.0) and the cache bucket's `ObjectCreated:*` records. */
export async function handler(event: unknown): Promise<CacheResult> {
  instance ??= createCacheHandler(defaultDependencies());
  return instance(event);
}
