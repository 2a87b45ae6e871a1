import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { classifyFailure, type Failure } from './failures';

/** The largest SQS message (body plus attributes) the project's queues take, as they are created. */
export const SQS_MAX_MESSAGE_BYTES = 262_144;

export interface QueueConsumer {
  readonly sqs: SQSClient;
  /** Where messages that can never be processed go, with their reason. */
  readonly deadLetterQueueUrl: string;
  /**
   * The queue's redrive `maxReceiveCount`: a transient failure on that delivery is dead-lettered here with
   * its reason rather than moved on by SQS without one.
   */
  readonly maxReceiveCount: number;
  readonly logger: Logger;
  /** Called for each failed record, once its fate is known. */
  readonly onFailure?: (failure: Failure, outcome: 'dead-lettered' | 'retried') => void;
  /** The queue consumed: a transient failure is redelivered after a backoff set on it. */
  readonly queueUrl?: string;
  /** Randomness for the backoff's jitter. Default: Math.random. */
  readonly random?: () => number;
}

/** Redelivery backoff: 30 s doubling per delivery, at most 15 minutes, half of it jittered. */
const BACKOFF_BASE_SEC = 30;
const BACKOFF_CAP_SEC = 15 * 60;

export function backoffSeconds(delivery: number, random: () => number): number {
  const ceiling = Math.min(BACKOFF_CAP_SEC, BACKOFF_BASE_SEC * 2 ** Math.max(0, delivery - 1));
  return Math.ceil(ceiling / 2 + random() * (ceiling / 2));
}

/** Sets when a transiently failed message comes back; on failure it comes back at the queue's timeout. */
async function delayRedelivery(consumer: QueueConsumer, record: SQSRecord, delivery: number): Promise<void> {
  if (!consumer.queueUrl) return;
  try {
    await consumer.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: consumer.queueUrl,
        ReceiptHandle: record.receiptHandle,
        VisibilityTimeout: backoffSeconds(delivery, consumer.random ?? Math.random),
      }),
    );
  } catch {
    // the message comes back after the queue's visibility timeout instead
  }
}

type Attributes = Record<string, { DataType: 'String'; StringValue: string }>;

/** SQS counts a message's body and each attribute's name, type and value. */
function messageBytes(body: string, attributes: Attributes): number {
  let bytes = Buffer.byteLength(body, 'utf8');
  for (const [name, value] of Object.entries(attributes))
    bytes += Buffer.byteLength(name) + value.DataType.length + Buffer.byteLength(value.StringValue);
  return bytes;
}

/**
 * Sends a copy of `record` to the dead-letter queue with the failure's code and reason as attributes (the
 * body is kept, never logged). Returns false, sending nothing, when the copy would not fit the queue.
 */
async function deadLetter(consumer: QueueConsumer, record: SQSRecord, failure: Failure): Promise<boolean> {
  const attributes: Attributes = {
    reason: { DataType: 'String', StringValue: failure.reason },
    reasonCode: { DataType: 'String', StringValue: failure.code },
    sourceMessageId: { DataType: 'String', StringValue: record.messageId },
  };
  if (messageBytes(record.body, attributes) > SQS_MAX_MESSAGE_BYTES) return false;
  await consumer.sqs.send(
    new SendMessageCommand({
      QueueUrl: consumer.deadLetterQueueUrl,
      MessageBody: record.body,
      MessageAttributes: attributes,
    }),
  );
  return true;
}

/**
 * Processes an SQS batch record by record (Powertools' batch processor, partial batch responses). Each
 * failure is classified: a permanent one goes to the dead-letter queue at once with its reason; a transient
 * one is reported as a batch item failure and redelivered after a capped exponential backoff with jitter,
 * until the last delivery, which is dead-lettered with its reason. A message too large to carry a reason is left to the queue's redrive policy (the reason
 * is in the log, by message id). Logs carry message ids, codes and reasons, never bodies.
 */
export async function consumeQueue(
  event: SQSEvent,
  handle: (record: SQSRecord) => Promise<void>,
  consumer: QueueConsumer,
): Promise<SQSBatchResponse> {
  const processRecord = async (record: SQSRecord): Promise<void> => {
    try {
      await handle(record);
    } catch (error) {
      const failure = classifyFailure(error);
      const delivery = Number(record.attributes?.ApproximateReceiveCount) || 1;
      const base = { messageId: record.messageId, code: failure.code, reason: failure.reason, delivery };
      if (failure.permanent || delivery >= consumer.maxReceiveCount) {
        const final: Failure = failure.permanent
          ? failure
          : { ...failure, reason: `failed on ${delivery} deliveries; the last: ${failure.reason}` };
        if (await deadLetter(consumer, record, final)) {
          consumer.logger.warn('message dead-lettered', { ...base, reason: final.reason });
          consumer.onFailure?.(final, 'dead-lettered');
          return;
        }
        consumer.logger.error(
          'message too large to dead-letter with its reason; the queue redrives it',
          base,
        );
      } else {
        await delayRedelivery(consumer, record, delivery);
        consumer.logger.info('message will be redelivered', base);
      }
      consumer.onFailure?.(failure, 'retried');
      throw error;
    }
  };
  return processPartialResponse(event, processRecord, new BatchProcessor(EventType.SQS), {
    throwOnFullBatchFailure: false,
  });
}
