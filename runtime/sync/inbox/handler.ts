import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createLogger } from '../../lib/logger';
import { consumeQueue } from '../../lib/queue-consumer';
import { decodeEnvelope } from '../envelope';
import { createSyncContext, type SyncContext } from '../lambda-context';

const logger = createLogger('sync-inbox');
let context: SyncContext | undefined;

/**
 * Merges every delivered message into the region's state. Only records that merged (or were dead-lettered
 * with their reason) are acknowledged; transient failures come back as batch item failures.
 */
export async function processInbox(ctx: SyncContext, event: SQSEvent): Promise<SQSBatchResponse> {
  try {
    return await consumeQueue(
      event,
      async (record: SQSRecord) => {
        await ctx.replica.receive(decodeEnvelope(record.body));
      },
      {
        sqs: ctx.sqs,
        queueUrl: ctx.config.SYNC_INBOX_URL,
        deadLetterQueueUrl: ctx.config.SYNC_DEAD_LETTER_QUEUE_URL,
        maxReceiveCount: ctx.config.SYNC_MAX_RECEIVE_COUNT,
        logger,
        onFailure: (_failure, outcome) =>
          ctx.metrics.addMetric(
            outcome === 'dead-lettered' ? 'DeadLettered' : 'Redelivered',
            MetricUnit.Count,
            1,
          ),
      },
    );
  } finally {
    ctx.metrics.publishStoredMetrics();
  }
}

/** SQS event-source mapping of the region's sync inbox (ReportBatchItemFailures on). */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  context ??= createSyncContext(logger);
  return processInbox(context, event);
}
