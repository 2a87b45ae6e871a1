import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../lib/config';
import { classifyFailure, type Failure } from '../../lib/failures';
import { jsonResponse, type HttpResponse } from '../../lib/http';
import { createLogger } from '../../lib/logger';
import { type RunnerConfig, functionRunnerConfig } from '../config';
import type { RegionViewSource, RouteDecision } from '../model';
import { DynamodbRegionViews } from '../region-views';
import {
  DEFAULT_DEADLINE_MS,
  outcomeResponse,
  routeDelivery,
  type ClaimLedger,
  type JobLookup,
  type PlacementStore,
  type QueueSender,
  type RouterEvents,
  type RouterOutcome,
} from '../router';
import {
  DynamodbClaimLedger,
  DynamodbJobLookup,
  DynamodbPlacementStore,
  RegionalClients,
  SqsQueueSender,
} from '../router-adapters';
import type { Delivery, Refusal, WebhookRequest } from '../webhook';
import {
  readAuthenticatedDelivery,
  WebhookSecretSource,
  type SecretStage,
  type WebhookSecrets,
} from '../webhook-secret';

/**
 * `POST /webhook` on the regional HTTP API: a GitHub delivery in, a runner queue message out (webhook.ts
 * reads and authenticates it, router.ts routes it). Every delivery is counted by outcome
 * (`Deliveries`, dimension `outcome`) and every routing decision by reason (`Decisions`, dimension
 * `reason`), in the `Estate/Runners` namespace; its log lines carry the delivery id as correlation id.
 *
 * Settings (environment):
 * - `AWS_REGION`: the region the function runs in (one of the configuration's regions);
 * - `RUNNERS_CONFIG`: the runner configuration, JSON (runtime/runners/config.ts);
 * - `WEBHOOK_SECRET_ID`: the webhook secret's name or ARN in Secrets Manager (webhook-secret.ts);
 * - `WEBHOOK_SECRET_CACHE_SEC`: how long the secret is cached, default 300;
 * - `IDEMPOTENCY_TABLE`, `WORKFLOWS_TABLE`, `REGION_STATUS_TABLE` (global tables), `STATE_TABLE` (regional);
 * - `RUNNER_QUEUE_PREFIX`, `ACCOUNT_ID`: runner queues are `<prefix>-<runner type>` in that account.
 *
 * Every SDK client of the router (DynamoDB and SQS in each region, Secrets Manager) gives up on a call
 * after 1 s to connect and 2.5 s for the answer, and tries it twice at most (`ROUTER_SDK_OPTIONS`): a hung
 * call cannot hold a delivery past its deadline (router.ts: 6 s, then its claims are released within 1 s
 * and it answers 500) nor the function past its timeout (10 s).
 */

/** The router's SDK clients: bounded calls (see above). `throwOnRequestTimeout`: a timeout is an error. */
export const ROUTER_SDK_OPTIONS = {
  maxAttempts: 2,
  requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_500, throwOnRequestTimeout: true },
} as const;

export type RouterSdkOptions = {
  readonly maxAttempts: number;
  readonly requestHandler: {
    readonly connectionTimeout: number;
    readonly requestTimeout: number;
    readonly throwOnRequestTimeout: boolean;
  };
};

/** The router's SDK clients, each made with `sdk` (one DynamoDB and one SQS client per region). */
export function routerClients(region: string, sdk: RouterSdkOptions = ROUTER_SDK_OPTIONS) {
  const options = { maxAttempts: sdk.maxAttempts, requestHandler: { ...sdk.requestHandler } };
  const dynamodb = new RegionalClients((r) => new DynamoDBClient({ region: r, ...options }));
  const sqs = new RegionalClients(
    (r) => new SQSClient({ region: r, useQueueUrlAsEndpoint: false, ...options }),
  );
  return {
    dynamodb: (r: string) => dynamodb.of(r),
    sqs: (r: string) => sqs.of(r),
    secretsManager: new SecretsManagerClient({ region, ...options }),
  };
}

const required = (what: string) => z.string().check(z.minLength(1, `expected ${what}`));

const settingsSchema = z.object({
  AWS_REGION: required('the region the function runs in'),
  RUNNERS_CONFIG: required('the runner configuration as JSON'),
  WEBHOOK_SECRET_ID: required("the webhook secret's name or ARN"),
  WEBHOOK_SECRET_CACHE_SEC: z._default(
    z.coerce
      .number()
      .check(z.int(), z.gte(1), z.lte(3_600, 'expected the secret cache time in seconds, 1 to 3600')),
    300,
  ),
  IDEMPOTENCY_TABLE: required("the idempotency global table's name"),
  WORKFLOWS_TABLE: required("the runner-workflows global table's name"),
  REGION_STATUS_TABLE: required("the region-status global table's name"),
  STATE_TABLE: required("the region's state table name"),
  RUNNER_QUEUE_PREFIX: required('the runner queue name prefix'),
  ACCOUNT_ID: z.string().check(z.regex(/^\d{12}$/, 'expected the 12-digit account id of the runner queues')),
});

export type RouterSettings = Omit<z.output<typeof settingsSchema>, 'RUNNERS_CONFIG'> & {
  readonly config: RunnerConfig;
};

/** The router's settings; every problem named at once, no value quoted. */
export function loadRouterSettings(env: NodeJS.ProcessEnv = process.env): RouterSettings {
  const { RUNNERS_CONFIG, ...settings } = loadConfig(settingsSchema, env);
  const problems: string[] = [];
  const config = functionRunnerConfig(RUNNERS_CONFIG, settings.AWS_REGION, problems);
  if (!config) throw new HandlerConfigError(problems);
  return { ...settings, config };
}

/** What the handler tells its log and metrics: outcomes, reasons, field names; never a value. */
export interface RouterTelemetry extends RouterEvents {
  /**
   * A delivery's log context starts: the delivery id is its correlation id (`correlation_id` on every line
   * until `end`). Told for every delivery that was signed and whose id is well-formed, refused ones too.
   */
  begin(deliveryId: string): void;
  refused(refusal: Refusal): void;
  ignored(reason: string): void;
  outcome(outcome: RouterOutcome): void;
  /** The delivery could not be read (the webhook secret unavailable). */
  unreadable(failure: Failure): void;
  /** A region's view could not be read (it routes as `out`); `reason` is bounded and value-free. */
  regionUnreadable(region: string, reason: string): void;
  /** A webhook secret's staging label could not be read or parsed; the other one served. */
  secretUnreadable?(stage: SecretStage, failure: Failure): void;
  end(): void;
}

/** Telemetry through Powertools: one EMF line per counted event, JSON log lines. */
export function powertoolsTelemetry(logger: Logger, metrics: Metrics): RouterTelemetry {
  const count = (name: string, dimension: string, value: string) => {
    const single = metrics.singleMetric();
    single.addDimension(dimension, value);
    single.addMetric(name, MetricUnit.Count, 1);
  };
  const delivery = (outcome: string) => count('Deliveries', 'outcome', outcome);
  return {
    begin: (deliveryId) => logger.setCorrelationId(deliveryId),
    refused: (refusal) => {
      delivery(`refused:${refusal.code}`);
      logger.warn('delivery refused', { status: refusal.status, code: refusal.code, reason: refusal.reason });
    },
    ignored: (reason) => {
      delivery('ignored');
      logger.debug('delivery ignored', { reason });
    },
    decided: (decision: RouteDecision, job) => {
      count('Decisions', 'reason', decision.reason);
      logger.info('job routed', {
        jobId: job.jobId,
        runId: job.runId,
        repository: job.repository,
        region: decision.region,
        home: decision.home,
        runnerType: decision.runnerType,
        reason: decision.reason,
      });
    },
    sideFailure: (step, region, failure) => {
      count('SideFailures', 'step', step);
      logger.warn('best-effort step failed', { step, region, code: failure.code, reason: failure.reason });
    },
    claimTakenOver: (region) => {
      // Not `region`: the metrics' default dimension is the router's own region.
      count('ClaimsTakenOver', 'claimRegion', region);
      logger.warn('pending claim taken over: its router died holding it', { claimRegion: region });
    },
    secretUnreadable: (stage, failure) => {
      count('WebhookSecretUnreadable', 'stage', stage);
      logger.warn('webhook secret stage unusable: not verifying with it', {
        stage,
        code: failure.code,
        reason: failure.reason,
      });
    },
    outcome: (outcome) => {
      delivery(outcome.kind);
      if (outcome.kind === 'failed')
        logger.error('delivery failed; claims released', {
          code: outcome.failure.code,
          reason: outcome.failure.reason,
          permanent: outcome.failure.permanent,
        });
      else logger.info('delivery handled', { outcome: outcome.kind });
    },
    regionUnreadable: (region, reason) => {
      count('RegionsUnreadable', 'unreadableRegion', region);
      logger.warn('region view unreadable: routed as out', { region, reason });
    },
    unreadable: (failure) => {
      delivery('unreadable');
      logger.error('delivery unreadable', { code: failure.code, reason: failure.reason });
    },
    end: () => logger.removeKeys(['correlation_id']),
  };
}

export interface RouterHandlerDeps {
  readonly region: string;
  readonly config: RunnerConfig;
  readonly secrets: WebhookSecrets;
  readonly ledger: ClaimLedger;
  readonly placements: PlacementStore;
  readonly jobs: JobLookup;
  readonly queues: QueueSender;
  readonly views: RegionViewSource;
  /** Epoch ms. */
  readonly now: () => number;
  /** Default: Powertools, service `runner-router`, namespace `Estate/Runners`. */
  readonly telemetry?: RouterTelemetry;
  /** router.ts's limits (defaults there: 6 s, 30 s, 1 s). */
  readonly deadlineMs?: number;
  readonly claimLeaseMs?: number;
  readonly settleBudgetMs?: number;
  readonly newOwner?: () => string;
}

export type RouterHandler = (event: WebhookRequest) => Promise<HttpResponse>;

export function defaultTelemetry(region: string): RouterTelemetry {
  return powertoolsTelemetry(
    createLogger('runner-router'),
    new Metrics({ namespace: 'Estate/Runners', serviceName: 'runner-router', defaultDimensions: { region } }),
  );
}

/** The handler over the dependencies given (tests and the bench inject in-memory ones). */
export function createRouterHandler(deps: RouterHandlerDeps): RouterHandler {
  const telemetry = deps.telemetry ?? defaultTelemetry(deps.region);
  const routerDeps = { ...deps, events: telemetry };
  const deadlineMs = deps.deadlineMs ?? DEFAULT_DEADLINE_MS;
  return async (event) => {
    // The deadline counts from the delivery's arrival: reading the webhook secret spends it too.
    const arrived = performance.now();
    try {
      let delivery: Delivery;
      try {
        delivery = await readAuthenticatedDelivery(event, deps.secrets, deps.config);
      } catch (error) {
        telemetry.unreadable(classifyFailure(error));
        return jsonResponse(500, { status: 'failed', reason: 'internal error; redeliver later' });
      }
      if (delivery.kind === 'refused') {
        // Signed with a well-formed id (its body refused): its lines carry the id. Before that, none is trusted.
        if (delivery.deliveryId !== undefined) telemetry.begin(delivery.deliveryId);
        telemetry.refused(delivery);
        return jsonResponse(delivery.status, { status: 'refused', reason: delivery.reason });
      }
      telemetry.begin(delivery.deliveryId);
      if (delivery.kind === 'ignored') {
        telemetry.ignored(delivery.reason);
        return jsonResponse(202, { status: 'ignored', reason: delivery.reason });
      }
      const left = Math.max(0, Math.floor(deadlineMs - (performance.now() - arrived)));
      const outcome = await routeDelivery(delivery, { ...routerDeps, deadlineMs: left });
      telemetry.outcome(outcome);
      return outcomeResponse(outcome);
    } finally {
      telemetry.end();
    }
  };
}

/**
 * The region views (another module's class): built here only, so a change to its options is made in one
 * place.
 */
function regionViews(
  settings: RouterSettings,
  clients: { dynamodb: (region: string) => DynamoDBClient; sqs: (region: string) => SQSClient },
  now: () => number,
  telemetry: RouterTelemetry,
): RegionViewSource {
  return new DynamodbRegionViews({
    config: settings.config,
    localRegion: settings.AWS_REGION,
    accountId: settings.ACCOUNT_ID,
    queuePrefix: settings.RUNNER_QUEUE_PREFIX,
    regionStatusTable: settings.REGION_STATUS_TABLE,
    stateTable: settings.STATE_TABLE,
    dynamodb: clients.dynamodb,
    sqs: clients.sqs,
    now,
    onRegionUnreadable: (region, reason) => telemetry.regionUnreadable(region, reason),
  });
}

/**
 * The dependencies on AWS, from the environment. `sdk`: the clients' limits (tests shorten them);
 * `telemetry`: default Powertools.
 */
export function awsRouterDeps(
  settings: RouterSettings = loadRouterSettings(),
  options: { readonly sdk?: RouterSdkOptions; readonly telemetry?: RouterTelemetry } = {},
): RouterHandlerDeps {
  const region = settings.AWS_REGION;
  const now = () => Date.now();
  const clients = routerClients(region, options.sdk);
  const local = clients.dynamodb(region);
  const telemetry = options.telemetry ?? defaultTelemetry(region);
  return {
    region,
    config: settings.config,
    secrets: WebhookSecretSource.fromSecretsManager(clients.secretsManager, settings.WEBHOOK_SECRET_ID, {
      ttlMs: settings.WEBHOOK_SECRET_CACHE_SEC * 1000,
      now,
      onUnreadable: (stage, failure) => telemetry.secretUnreadable?.(stage, failure),
    }),
    ledger: new DynamodbClaimLedger({
      dynamodb: clients.dynamodb,
      tableName: settings.IDEMPOTENCY_TABLE,
      localRegion: region,
      now,
    }),
    placements: new DynamodbPlacementStore({ dynamodb: local, tableName: settings.WORKFLOWS_TABLE, now }),
    jobs: new DynamodbJobLookup({ dynamodb: local, tableName: settings.WORKFLOWS_TABLE, now }),
    queues: new SqsQueueSender({
      sqs: clients.sqs,
      accountId: settings.ACCOUNT_ID,
      queuePrefix: settings.RUNNER_QUEUE_PREFIX,
    }),
    views: regionViews(settings, clients, now, telemetry),
    now,
    telemetry,
  };
}

// For callers that hold the bundle only (the bundled-router tests): the secret cache with a reader of theirs.
export { WebhookSecretSource } from '../webhook-secret';

let defaultHandler: RouterHandler | undefined;

/** `POST /webhook` (API Gateway HTTP API, payload format 2.0). */
export async function handler(event: APIGatewayProxyEventV2): Promise<HttpResponse> {
  defaultHandler ??= createRouterHandler(awsRouterDeps());
  return defaultHandler(event);
}
