import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricUnit as Unit } from '@aws-lambda-powertools/metrics/types';
import { createLogger } from '../lib/logger';
import { sanitizedFailure } from '../lib/redact';
import { DynamodbLimiterStore } from './dynamodb-store';
import { loadSyncSettings, type QuotaSyncSettings } from './settings';
import { S3SnapshotStore } from './snapshot-store';
import { runSyncPass, type PassResult, type SyncMetrics } from './sync';

const logger = createLogger('quota-sync');
let container:
  { settings: QuotaSyncSettings; store: DynamodbLimiterStore; snapshots: S3SnapshotStore } | undefined;

function syncMetrics(metrics: Metrics): SyncMetrics {
  const perPeer = (name: string, peer: string, unit: Unit, value: number) => {
    const single = metrics.singleMetric();
    single.addDimension('peer', peer);
    single.addMetric(name, unit, value);
  };
  return {
    peerView: (peer, known, reason) => {
      // 0 or 1 for every peer on every pass, so an alarm tells a known peer from a pass that did not run.
      perPeer('PeerUnknown', peer, MetricUnit.Count, known ? 0 : 1);
      if (!known) logger.warn('peer snapshot unknown: its demand counts as unbounded', { peer, reason });
    },
    snapshotAgeMs: (peer, ms) => perPeer('SnapshotAgeMs', peer, MetricUnit.Milliseconds, ms),
    decodeFailed: (peer, field) => {
      metrics.addMetric('SnapshotDecodeFailures', MetricUnit.Count, 1);
      logger.error('peer snapshot refused', { peer, field });
    },
    unreadableItems: (count) => {
      metrics.addMetric('UnreadableItems', MetricUnit.Count, count);
      logger.error('limiter items unreadable: an operator value outside its type', { count });
    },
    planned: (plan) => {
      for (const [resource, share] of plan.shareByResource) {
        const single = metrics.singleMetric();
        single.addDimension('resource', resource);
        single.addMetric('AllocatedShare', MetricUnit.Count, share);
      }
      metrics.addMetric('EntitiesComputed', MetricUnit.Count, plan.computed);
      metrics.addMetric('GrowsHeldBack', MetricUnit.Count, plan.heldBack);
      metrics.addMetric('OverridesPlanned', MetricUnit.Count, plan.writes.length);
      metrics.addMetric('OperatorExcess', MetricUnit.Count, plan.operatorExcess);
      metrics.addMetric('OverAdmissionEstimate', MetricUnit.Count, plan.overAdmission);
      metrics.addMetric('Configs', MetricUnit.Count, plan.configs);
    },
    overridesWritten: (count, failed) => {
      metrics.addMetric('OverridesWritten', MetricUnit.Count, count);
      metrics.addMetric('OverrideWriteFailures', MetricUnit.Count, failed);
    },
  };
}

/**
 * On schedule, once per sync window in every region: one pass of the quota sync (runtime/quota/sync.ts).
 */
export async function handler(): Promise<PassResult> {
  if (!container) {
    const settings = loadSyncSettings();
    container = {
      settings,
      store: new DynamodbLimiterStore(new DynamoDBClient({ region: settings.region }), settings.tableName),
      snapshots: new S3SnapshotStore(settings.region, settings.buckets),
    };
  }
  const { settings, store, snapshots } = container;
  const metrics = new Metrics({
    namespace: 'Estate/Quota',
    serviceName: 'quota-sync',
    defaultDimensions: { region: settings.region },
  });
  const started = Date.now();
  try {
    const result = await runSyncPass({
      config: settings.config,
      region: settings.region,
      store,
      snapshots,
      metrics: syncMetrics(metrics),
      shadow: settings.shadow,
      peerTimeoutMs: settings.peerTimeoutMs,
    });
    metrics.addMetric('PeersUnknown', MetricUnit.Count, result.peersUnknown);
    metrics.addMetric('PassCompleted', MetricUnit.Count, 1);
    metrics.addMetric('PassDurationMs', MetricUnit.Milliseconds, Date.now() - started);
    logger.info('quota sync pass', { ...result });
    return result;
  } catch (error) {
    metrics.addMetric('PassFailures', MetricUnit.Count, 1);
    throw sanitizedFailure(logger, 'quota sync pass failed', error);
  } finally {
    metrics.publishStoredMetrics();
  }
}
