import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import type { DiscoveredMapping } from '../../scripts/lib/local-runtime/discover';
import { settleBatch, sqsEventOf } from '../../scripts/lib/local-runtime/sqs-batch';
import { SqsPoller } from '../../scripts/lib/local-runtime/sqs-poller';

const message = (id: string, extra: Partial<Message> = {}): Message => ({
  MessageId: id,
  ReceiptHandle: `rh-${id}`,
  Body: `body ${id}`,
  MD5OfBody: 'md5',
  Attributes: {
    ApproximateReceiveCount: '2',
    SentTimestamp: '1700000000000',
    SenderId: 'AIDA1',
    ApproximateFirstReceiveTimestamp: '1700000000100',
  },
  ...extra,
});
const batch = [message('a'), message('b'), message('c')];
const ids = (messages: readonly Message[]) => messages.map((m) => m.MessageId);

describe('the SQS event Lambda hands a function', () => {
  it('has one record per message, shaped as Lambda shapes them', () => {
    const event = sqsEventOf(
      [
        message('a', {
          MessageAttributes: {
            reason: { DataType: 'String', StringValue: 'x' },
            blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2]) },
          },
          MD5OfMessageAttributes: 'md5attrs',
        }),
      ],
      { arn: 'arn:aws:sqs:eu-west-1:123456789012:inbox', region: 'eu-west-1' },
    );
    expect(event).toEqual({
      Records: [
        {
          messageId: 'a',
          receiptHandle: 'rh-a',
          body: 'body a',
          attributes: {
            ApproximateReceiveCount: '2',
            SentTimestamp: '1700000000000',
            SenderId: 'AIDA1',
            ApproximateFirstReceiveTimestamp: '1700000000100',
          },
          messageAttributes: {
            reason: { stringValue: 'x', stringListValues: [], binaryListValues: [], dataType: 'String' },
            blob: { binaryValue: 'AQI=', stringListValues: [], binaryListValues: [], dataType: 'Binary' },
          },
          md5OfBody: 'md5',
          md5OfMessageAttributes: 'md5attrs',
          eventSource: 'aws:sqs',
          eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:inbox',
          awsRegion: 'eu-west-1',
        },
      ],
    });
  });
});

describe("settling a batch by Lambda's rules", () => {
  it('a function error returns the whole batch', () => {
    const settled = settleBatch(batch, { ok: false, errorType: 'Error' }, true);
    expect([ids(settled.acknowledged), ids(settled.failed)]).toEqual([[], ['a', 'b', 'c']]);
    expect(settled.reason).toMatch(/function error/);
  });

  it('with ReportBatchItemFailures, only the listed records return', () => {
    const settled = settleBatch(
      batch,
      { ok: true, payload: { batchItemFailures: [{ itemIdentifier: 'b' }] } },
      true,
    );
    expect([ids(settled.acknowledged), ids(settled.failed)]).toEqual([['a', 'c'], ['b']]);
  });

  it('an empty, null or absent failure list (or no answer at all) acknowledges everything', () => {
    for (const payload of [{ batchItemFailures: [] }, { batchItemFailures: null }, {}, null, undefined]) {
      expect(ids(settleBatch(batch, { ok: true, payload }, true).acknowledged)).toEqual(['a', 'b', 'c']);
    }
  });

  it('a malformed failure list, or one naming a record not in the batch, returns the whole batch', () => {
    for (const payload of [
      { batchItemFailures: 'b' },
      { batchItemFailures: [{ itemIdentifier: 'z' }] },
      { batchItemFailures: [{ itemIdentifier: '' }] },
      { batchItemFailures: [{}] },
    ]) {
      expect(ids(settleBatch(batch, { ok: true, payload }, true).failed)).toEqual(['a', 'b', 'c']);
    }
  });

  it('without ReportBatchItemFailures, a success acknowledges everything, whatever it answered', () => {
    const settled = settleBatch(
      batch,
      { ok: true, payload: { batchItemFailures: [{ itemIdentifier: 'b' }] } },
      false,
    );
    expect(ids(settled.acknowledged)).toEqual(['a', 'b', 'c']);
  });
});

/** An SQS stand-in: hands out queued messages, records deletions and visibility changes. */
class FakeSqs {
  readonly deleted: string[] = [];
  readonly madeVisible: Array<{ handle: string; seconds: number }> = [];
  receives = 0;
  constructor(readonly waiting: Message[]) {}
  async send(command: { input: Record<string, unknown>; constructor: { name: string } }) {
    const input = command.input;
    switch (command.constructor.name) {
      case 'ReceiveMessageCommand':
        this.receives++;
        return { Messages: this.waiting.splice(0, input.MaxNumberOfMessages as number) };
      case 'DeleteMessageBatchCommand':
        for (const entry of input.Entries as Array<{ ReceiptHandle: string }>)
          this.deleted.push(entry.ReceiptHandle);
        return {};
      case 'ChangeMessageVisibilityBatchCommand':
        for (const entry of input.Entries as Array<{ ReceiptHandle: string; VisibilityTimeout: number }>)
          this.madeVisible.push({ handle: entry.ReceiptHandle, seconds: entry.VisibilityTimeout });
        return {};
      default:
        throw new Error(`unexpected ${command.constructor.name}`);
    }
  }
}

const mapping = (extra: Partial<DiscoveredMapping> = {}): DiscoveredMapping => ({
  address: 'aws_lambda_event_source_mapping.m',
  region: 'eu-west-1',
  queue: {
    address: 'aws_sqs_queue.q',
    region: 'eu-west-1',
    name: 'q',
    arn: 'arn:aws:sqs:eu-west-1:123456789012:q',
    url: 'http://127.0.0.1:1/123456789012/q',
    visibilityTimeoutSec: 30,
    fifo: false,
  },
  target: { functionName: 'fn', qualifier: 'live' },
  batchSize: 2,
  maximumBatchingWindowSec: 0,
  reportBatchItemFailures: true,
  enabled: false,
  ...extra,
});

describe('SqsPoller', () => {
  it('runs at most `concurrency` batches at once, deletes what succeeded and shortens the failed ones', async () => {
    const messages = Array.from({ length: 12 }, (_, i) =>
      message(`m${i}`, { Body: i % 4 === 0 ? 'poison' : 'ok' }),
    );
    const sqs = new FakeSqs([...messages]);
    let running = 0;
    let most = 0;
    const batches: string[][] = [];
    const done = new Promise<void>((resolveDone) => {
      const poller = new SqsPoller({
        mapping: mapping(),
        queueUrl: 'http://127.0.0.1:1/123456789012/q',
        sqs: sqs as unknown as SQSClient,
        concurrency: 3,
        retryVisibilitySec: 1,
        idleMs: 20,
        invoke: async (event: SQSEvent) => {
          running++;
          most = Math.max(most, running);
          batches.push(event.Records.map((r) => r.messageId));
          await new Promise((r) => setTimeout(r, 30));
          running--;
          return {
            ok: true,
            durationMs: 30,
            payload: {
              batchItemFailures: event.Records.filter((r) => r.body === 'poison').map((r) => ({
                itemIdentifier: r.messageId,
              })),
            },
          };
        },
        onBatch: () => {
          if (sqs.deleted.length + sqs.madeVisible.length === messages.length)
            void poller.stop().then(resolveDone);
        },
      });
      poller.start();
    });
    await done;
    expect(most).toBe(3);
    expect(batches.every((batch) => batch.length <= 2)).toBe(true);
    expect(sqs.deleted.sort()).toEqual(
      messages
        .filter((m) => m.Body === 'ok')
        .map((m) => m.ReceiptHandle as string)
        .sort(),
    );
    expect(sqs.madeVisible).toEqual(
      expect.arrayContaining(['rh-m0', 'rh-m4', 'rh-m8'].map((handle) => ({ handle, seconds: 1 }))),
    );
  });

  it("gathers a batch over the mapping's batching window", async () => {
    const sqs = new FakeSqs([message('a')]);
    const seen: string[][] = [];
    const poller = new SqsPoller({
      mapping: mapping({ batchSize: 3, maximumBatchingWindowSec: 1 }),
      queueUrl: 'http://127.0.0.1:1/123456789012/q',
      sqs: sqs as unknown as SQSClient,
      concurrency: 1,
      idleMs: 20,
      invoke: async (event: SQSEvent) => {
        seen.push(event.Records.map((r) => r.messageId));
        return { ok: true, durationMs: 1, payload: null };
      },
    });
    poller.start();
    await new Promise((r) => setTimeout(r, 300));
    sqs.waiting.push(message('b'));
    await new Promise((r) => setTimeout(r, 1_200));
    await poller.stop();
    expect(seen).toEqual([['a', 'b']]);
  });
});
