import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { CrdtTypeMismatchError } from '../../crdt';
import { createLogger } from '../../lib/logger';
import { decodeEnvelope, EnvelopeError } from '../envelope';
import { createSyncContext, type SyncContext } from '../lambda-context';

const logger = createLogger('sync-inbox');
let context: SyncContext | undefined;

/**
 * Moves a message that can never merge (undecodable, or a type clash) to the dead-letter queue with the
 * reason, so it is neither retried forever nor lost. The body is kept but never logged.
 */
async function deadLetter(ctx: SyncContext, record: SQSRecord, reason: string): Promise<void> {
  await ctx.sqs.send(
    new SendMessageCommand({
      QueueUrl: ctx.config.SYNC_DEAD_LETTER_QUEUE_URL,
      MessageBody: record.body,
      MessageAttributes: {
        reason: { DataType: 'String', StringValue: reason.slice(0, 1024) },
        sourceMessageId: { DataType: 'String', StringValue: record.messageId },
      },
    }),
  );
  logger.warn('sync message dead-lettered', { messageId: record.messageId, reason });
}

async function consume(ctx: SyncContext, record: SQSRecord): Promise<void> {
  let envelope;
  try {
    envelope = decodeEnvelope(record.body);
  } catch (error) {
    if (error instanceof EnvelopeError) return deadLetter(ctx, record, error.reason);
    throw error;
  }
  try {
    await ctx.replica.receive(envelope);
  } catch (error) {
    if (error instanceof CrdtTypeMismatchError) return deadLetter(ctx, record, error.message);
    throw error; // transient (throttling, contention): this record is retried, the rest of the batch is not
  }
}

/**
 * Merges every delivered delta into the region's state. Only records that merged (or were dead-lettered)
 * are acknowledged; the others come back as batch item failures and are redelivered.
 */
export async function processInbox(ctx: SyncContext, event: SQSEvent): Promise<SQSBatchResponse> {
  try {
    return await processPartialResponse(
      event,
      (record: SQSRecord) => consume(ctx, record),
      new BatchProcessor(EventType.SQS),
      {
        throwOnFullBatchFailure: false,
      },
    );
  } finally {
    ctx.metrics.publishStoredMetrics();
  }
}

/** SQS event-source mapping of the region's sync inbox (ReportBatchItemFailures on). */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  context ??= createSyncContext();
  return processInbox(context, event);
}
