import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createLogger } from '../lib/logger';
import { consumeQueue } from '../lib/queue-consumer';
import { ConfigSource } from './config-source';
import { DestinationConnector } from './connector';
import { parseTrigger } from './events';
import { WRITES, type Outcome } from './outcomes';
import { handleTrigger, type ReplicatorDeps, type TriggerReport } from './replicator';
import { loadReplicatorSettings, type ReplicatorSettings } from './settings';

const logger = createLogger('secrets-replicator');
const metrics = new Metrics({ namespace: 'Estate/Secrets', serviceName: 'secrets-replicator' });

interface Container {
  readonly settings: ReplicatorSettings;
  readonly deps: ReplicatorDeps;
  readonly sqs: SQSClient;
}
let container: Container | undefined;

function createContainer(): Container {
  const settings = loadReplicatorSettings();
  const region = settings.AWS_REGION;
  const connector = new DestinationConnector(region, `estate-secrets-replicator-${region}`);
  const config = new ConfigSource(
    connector.own(),
    settings.SECRETS_CONFIG_SECRET,
    settings.SECRETS_CONFIG_CHECK_MS,
    {
      loaded: (hash) => logger.info('replicator config loaded', { hash }),
      refused: (issues) => {
        metrics.addMetric('ConfigRefused', MetricUnit.Count, 1);
        logger.error('replicator config refused; the previous one stays in force', { issues });
      },
    },
  );
  metrics.setDefaultDimensions({ region });
  return {
    settings,
    sqs: new SQSClient({ region }),
    deps: {
      self: { region, account: settings.account, roleArn: settings.SECRETS_REPLICATOR_ROLE_ARN },
      source: connector.own(),
      connect: (destination) => connector.connect(destination),
      config,
      parallelism: settings.SECRETS_PARALLELISM,
      resyncParallelism: settings.SECRETS_RESYNC_PARALLELISM,
      retry: { attempts: 4, baseMs: 200, capMs: 5000 },
      now: () => Date.now(),
    },
  };
}

/** A resync's failures logged in full up to this many (a log event holds 256 KB); all are counted. */
const FAILURES_LOGGED = 20;

/** Names, outcomes and bounded reasons only: values never reach a log line or a metric. */
function report(result: TriggerReport): void {
  if (result.kind === 'ignored') {
    logger.debug('event ignored', { reason: result.reason });
    return;
  }
  if (result.kind === 'resync') {
    metrics.addMetric('ResyncSecrets', MetricUnit.Count, result.secrets);
    for (const [outcome, n] of Object.entries(result.outcomes))
      if (n) metrics.addMetric(`Outcome.${outcome}`, MetricUnit.Count, n);
    // Not retried as a whole: a failed destination of a resync counts (and alarms) like any other.
    if (result.failures.length > 0)
      metrics.addMetric('DestinationFailures', MetricUnit.Count, result.failures.length);
    const written = Object.entries(result.outcomes)
      .filter(([outcome]) => WRITES.has(outcome as Outcome))
      .reduce((sum, [, n]) => sum + (n ?? 0), 0);
    if (written) metrics.addMetric('DestinationsWritten', MetricUnit.Count, written);
    logger.info('resync', {
      secrets: result.secrets,
      outcomes: result.outcomes,
      failureCount: result.failures.length,
      failures: result.failures.slice(0, FAILURES_LOGGED),
    });
    return;
  }
  for (const r of result.results) metrics.addMetric(`Outcome.${r.outcome}`, MetricUnit.Count, 1);
  const written = result.results.filter((r) => WRITES.has(r.outcome)).length;
  if (written) metrics.addMetric('DestinationsWritten', MetricUnit.Count, written);
  logger.info('secret replicated', {
    secret: result.secret,
    action: result.action,
    reason: result.reason,
    results: result.results,
  });
}

/**
 * The replicator's queue (EventBridge: CloudTrail-recorded Secrets Manager calls and the resync schedule).
 * A message whose destinations all succeeded is acknowledged; one with a failed destination is redelivered
 * after a backoff, and dead-lettered with the failed destinations named once its deliveries run out.
 */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  container ??= createContainer();
  const { settings, deps, sqs } = container;
  try {
    return await consumeQueue(
      event,
      async (record) => report(await handleTrigger(parseTrigger(record.body, deps.self), deps)),
      {
        sqs,
        queueUrl: settings.SECRETS_QUEUE_URL,
        deadLetterQueueUrl: settings.SECRETS_DEAD_LETTER_QUEUE_URL,
        maxReceiveCount: settings.SECRETS_MAX_RECEIVE_COUNT,
        logger,
        onFailure: (failure, outcome) => {
          metrics.addMetric(
            outcome === 'dead-lettered' ? 'DeadLettered' : 'Redelivered',
            MetricUnit.Count,
            1,
          );
          if (failure.code === 'destinations-failed')
            metrics.addMetric('DestinationFailures', MetricUnit.Count, 1);
        },
      },
    );
  } finally {
    metrics.publishStoredMetrics();
  }
}
