import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import pLimit from 'p-limit';
import { createLogger } from '../../lib/logger';
import { consumeQueue } from '../../lib/queue-consumer';
import { decodeEnvelope, EnvelopeError, type Envelope } from '../envelope';
import { createSyncContext, type SyncContext } from '../lambda-context';
import { MAX_REFERENCED_STATE_BYTES } from '../state-objects';
import { checkSender } from '../trust';
import { decodeMessage, type SyncMessage } from '../messages';

const logger = createLogger('sync-inbox');
let context: SyncContext | undefined;

type Work = () => Promise<void>;

/**
 * What each record of a batch takes to process. Deltas and full states of one document merge together, in
 * one load and one save (the first record of the document to run starts it, the others wait for it);
 * documents, digests and pulls run in parallel, at most `SYNC_MERGE_CONCURRENCY` at once.
 */
function plan(ctx: SyncContext, records: readonly SQSRecord[]): Map<string, Work> {
  const limit = pLimit(ctx.config.SYNC_MERGE_CONCURRENCY);
  const work = new Map<string, Work>();
  const groups = new Map<string, Array<{ envelope: Envelope; messageId: string }>>();
  const decoded = new Map<string, SyncMessage>();
  for (const record of records) {
    let message: SyncMessage;
    try {
      message = decodeMessage(record.body);
    } catch (error) {
      work.set(record.messageId, () => Promise.reject(error));
      continue;
    }
    decoded.set(record.messageId, message);
    if (message.kind === 'delta' || message.kind === 'state') {
      const group = groups.get(message.document) ?? [];
      group.push({ envelope: message, messageId: record.messageId });
      groups.set(message.document, group);
    }
  }
  for (const group of groups.values()) {
    let merged: Promise<Array<'merged' | Error>> | undefined;
    group.forEach(({ messageId }, i) =>
      work.set(messageId, async () => {
        merged ??= limit(() => ctx.replica.receiveAll(group.map(({ envelope }) => envelope)));
        const outcome = (await merged)[i];
        if (outcome instanceof Error) throw outcome;
      }),
    );
  }
  for (const [messageId, message] of decoded) {
    if (message.kind === 'digests')
      work.set(messageId, () => limit(async () => void (await ctx.antiEntropy.compare(message))));
    if (message.kind === 'pull')
      work.set(messageId, () => limit(async () => void (await ctx.antiEntropy.answer(message))));
    if (message.kind === 'reference')
      work.set(messageId, () =>
        limit(async () => {
          // Who sent it is checked before anything is fetched.
          checkSender(message.origin, message.hlc, ctx.replica.policy, Date.now());
          const envelope = decodeEnvelope(await ctx.objects.get(message), MAX_REFERENCED_STATE_BYTES);
          if (
            envelope.origin !== message.origin ||
            envelope.document !== message.document ||
            envelope.kind !== 'state'
          )
            throw new EnvelopeError('r (reference): the object is not the full state the reference names');
          await ctx.replica.receive(envelope);
        }),
      );
  }
  return work;
}

/**
 * Merges every delivered message into the region's state, answers peers' digests and pulls. Only records
 * that were processed (or dead-lettered with their reason) are acknowledged; transient failures come back
 * as batch item failures.
 */
export async function processInbox(ctx: SyncContext, event: SQSEvent): Promise<SQSBatchResponse> {
  const work = plan(ctx, event.Records);
  try {
    return await consumeQueue(event, (record: SQSRecord) => (work.get(record.messageId) as Work)(), {
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
    });
  } finally {
    ctx.metrics.publishStoredMetrics();
  }
}

/** SQS event-source mapping of the region's sync inbox (ReportBatchItemFailures on). */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  context ??= createSyncContext(logger);
  return processInbox(context, event);
}
