/**
 * What a Lambda SQS event-source mapping hands its function and what it makes of the answer: the SQS event of
 * a batch of received messages, and which of them to delete (acknowledged) and which to leave for
 * redelivery. Pure.
 */
import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSMessageAttribute, SQSRecord, SQSRecordAttributes } from 'aws-lambda';

export interface QueueIdentity {
  readonly arn: string;
  readonly region: string;
}

function recordAttributes(message: Message): SQSRecordAttributes {
  const attributes = message.Attributes ?? {};
  const pick = (name: string) => (attributes as Record<string, string | undefined>)[name];
  const optional = (name: string, key: keyof SQSRecordAttributes) => {
    const value = pick(name);
    return value === undefined ? {} : { [key]: value };
  };
  return {
    ApproximateReceiveCount: pick('ApproximateReceiveCount') ?? '1',
    SentTimestamp: pick('SentTimestamp') ?? '',
    SenderId: pick('SenderId') ?? '',
    ApproximateFirstReceiveTimestamp: pick('ApproximateFirstReceiveTimestamp') ?? '',
    ...optional('AWSTraceHeader', 'AWSTraceHeader'),
    ...optional('SequenceNumber', 'SequenceNumber'),
    ...optional('MessageGroupId', 'MessageGroupId'),
    ...optional('MessageDeduplicationId', 'MessageDeduplicationId'),
    ...optional('DeadLetterQueueSourceArn', 'DeadLetterQueueSourceArn'),
  } as SQSRecordAttributes;
}

/** SQS's attribute shape to Lambda's (camel-cased, with the empty lists Lambda always sends). */
function recordMessageAttribute(value: MessageAttributeValue): SQSMessageAttribute {
  return {
    ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
    ...(value.BinaryValue !== undefined
      ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }
      : {}),
    stringListValues: value.StringListValues ?? [],
    binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(item).toString('base64')),
    dataType: (value.DataType ?? 'String') as SQSMessageAttribute['dataType'],
  };
}

/** The event Lambda hands a function for messages received from a queue. */
export function sqsEventOf(messages: readonly Message[], queue: QueueIdentity): SQSEvent {
  return {
    Records: messages.map((message): SQSRecord => ({
      messageId: message.MessageId ?? '',
      receiptHandle: message.ReceiptHandle ?? '',
      body: message.Body ?? '',
      attributes: recordAttributes(message),
      messageAttributes: Object.fromEntries(
        Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
          name,
          recordMessageAttribute(value),
        ]),
      ),
      md5OfBody: message.MD5OfBody ?? '',
      ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
      eventSource: 'aws:sqs',
      eventSourceARN: queue.arn,
      awsRegion: queue.region,
    })),
  };
}

/** What becomes of a batch once the function answered. */
export interface BatchSettlement {
  /** Deleted from the queue. */
  readonly acknowledged: readonly Message[];
  /** Left on the queue: visible again once their visibility timeout passes (and dead-lettered in time). */
  readonly failed: readonly Message[];
  /** Why anything failed, for the log. */
  readonly reason?: string;
}

/**
 * Lambda's rules: a function error fails the whole batch; with ReportBatchItemFailures a successful answer
 * fails exactly the records listed in `batchItemFailures` (null, absent or empty: none), and an answer whose
 * list is malformed or names a record not in the batch fails the whole batch; without it, success deletes all.
 */
export function settleBatch(
  messages: readonly Message[],
  outcome:
    { readonly ok: true; readonly payload: unknown } | { readonly ok: false; readonly errorType: string },
  reportBatchItemFailures: boolean,
): BatchSettlement {
  if (!outcome.ok)
    return { acknowledged: [], failed: messages, reason: `function error (${outcome.errorType})` };
  if (!reportBatchItemFailures) return { acknowledged: messages, failed: [] };
  const payload = outcome.payload;
  if (payload === null || payload === undefined || typeof payload !== 'object')
    return { acknowledged: messages, failed: [] };
  const failures = (payload as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { acknowledged: messages, failed: [] };
  const whole = (reason: string): BatchSettlement => ({ acknowledged: [], failed: messages, reason });
  if (!Array.isArray(failures)) return whole('batchItemFailures is not a list');
  const ids = new Set(messages.map((message) => message.MessageId));
  const failedIds = new Set<string>();
  for (const failure of failures as unknown[]) {
    const id =
      typeof failure === 'object' && failure !== null
        ? (failure as { itemIdentifier?: unknown }).itemIdentifier
        : undefined;
    if (typeof id !== 'string' || id === '' || !ids.has(id))
      return whole('batchItemFailures names no record of the batch');
    failedIds.add(id);
  }
  if (failedIds.size === 0) return { acknowledged: messages, failed: [] };
  return {
    acknowledged: messages.filter((message) => !failedIds.has(message.MessageId ?? '')),
    failed: messages.filter((message) => failedIds.has(message.MessageId ?? '')),
    reason: `${failedIds.size} of ${messages.length} records reported failed`,
  };
}
