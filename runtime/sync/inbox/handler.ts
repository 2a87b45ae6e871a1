import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import pLimit from 'p-limit';
import { BatchCorrelation, createLogger } from '../../lib/logger';
import { consumeQueue } from '../../lib/queue-consumer';
import { correlationOfAttributes } from '../correlation';
import { decodeEnvelope, EnvelopeError, type Envelope } from '../envelope';
import { createSyncContext, type SyncContext } from '../lambda-context';
import { MAX_REFERENCED_STATE_BYTES } from '../state-objects';
import { checkSender } from '../trust';
import { decodeMessage, type SyncMessage } from '../messages';

const logger = createLogger('sync-inbox');
let context: SyncContext | undefined;

type Work = () => Promise<void>;

/**
 * One line per message merged, under the change's correlation id when it came with one (as the region that
 * wrote it logged its publish): who sent it and what it was, never the document or a value.
 */
function merged(correlation: BatchCorrelation, messageId: string, envelope: Envelope): void {
  logger.info(envelope.kind === 'delta' ? 'change merged' : 'full state merged', {
    ...correlation.keysOf(messageId),
    messageId,
    origin: envelope.origin,
    kind: envelope.kind,
  });
}

/**
 * Each record's correlation id, from its `correlationId` message attribute (correlation.ts). One that is
 * not well-formed is left out with a warning naming the rule (never the value); the message is processed
 * all the same: a trace id is no reason to hold back a change.
 */
function correlate(records: readonly SQSRecord[], correlation: BatchCorrelation): void {
  for (const record of records) {
    const read = correlationOfAttributes(record.messageAttributes);
    if (read.kind === 'id') correlation.set(record.messageId, read.id);
    else if (read.kind === 'refused')
      logger.warn('correlation id ignored: the message is processed without it', {
        messageId: record.messageId,
        reason: read.reason,
      });
  }
}

/**
 * What each record of a batch takes to process. Deltas and full states of one document merge together, in
 * one load and one save (the first record of the document to run starts it, the others wait for it);
 * documents, digests and pulls run in parallel, at most `SYNC_MERGE_CONCURRENCY` at once.
 */
function plan(
  ctx: SyncContext,
  records: readonly SQSRecord[],
  correlation: BatchCorrelation,
): Map<string, Work> {
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
    let outcomes: Promise<Array<'merged' | Error>> | undefined;
    group.forEach(({ messageId, envelope }, i) =>
      work.set(messageId, async () => {
        outcomes ??= limit(() => ctx.replica.receiveAll(group.map((member) => member.envelope)));
        const outcome = (await outcomes)[i];
        if (outcome instanceof Error) throw outcome;
        merged(correlation, messageId, envelope);
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
          merged(correlation, messageId, envelope);
        }),
      );
  }
  return work;
}

/**
 * Merges every delivered message into the region's state, answers peers' digests and pulls. Only records
 * that were processed (or dead-lettered with their reason) are acknowledged; transient failures come back
 * as batch item failures. Every line about a record that came with a correlation id carries it
 * (`correlation_id`): its merge, and its redelivery or dead-lettering. Records run at once, so the id goes
 * on each line, never appended to the shared logger; lines of a document's merge as a whole (a type clash,
 * fields refused for a limit) belong to no one record and carry none.
 */
export async function processInbox(ctx: SyncContext, event: SQSEvent): Promise<SQSBatchResponse> {
  const correlation = new BatchCorrelation();
  correlate(event.Records, correlation);
  const work = plan(ctx, event.Records, correlation);
  try {
    return await consumeQueue(event, (record: SQSRecord) => (work.get(record.messageId) as Work)(), {
      sqs: ctx.sqs,
      queueUrl: ctx.config.SYNC_INBOX_URL,
      deadLetterQueueUrl: ctx.config.SYNC_DEAD_LETTER_QUEUE_URL,
      maxReceiveCount: ctx.config.SYNC_MAX_RECEIVE_COUNT,
      logger: correlation.logger(logger),
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
