import type { SQSEvent } from 'aws-lambda';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CrdtTypeMismatchError } from '../../runtime/crdt';
import { encodeEnvelope, type Envelope } from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import type { SyncContext } from '../../runtime/sync/lambda-context';

const envelope = (document: string): string =>
  encodeEnvelope({
    origin: 'us-east-1',
    document,
    kind: 'delta',
    hlc: { wallMs: 1, logical: 0, replica: 'us-east-1' },
    body: new Map([['count', { type: 'gcounter', state: { 'us-east-1': 1 } }]]),
  });

const event = (...bodies: string[]): SQSEvent =>
  ({
    Records: bodies.map((body, i) => ({ messageId: `m${i}`, body, eventSource: 'aws:sqs' })),
  }) as unknown as SQSEvent;

function context(receive: (e: Envelope) => Promise<unknown>) {
  const deadLettered: Array<{ body?: string; reason?: string }> = [];
  const ctx = {
    config: { SYNC_DEAD_LETTER_QUEUE_URL: 'http://dlq' },
    replica: { receive },
    sqs: {
      send: async (command: {
        input: { MessageBody?: string; MessageAttributes?: { reason?: { StringValue?: string } } };
      }) => {
        deadLettered.push({
          body: command.input.MessageBody,
          reason: command.input.MessageAttributes?.reason?.StringValue,
        });
        return {};
      },
    },
    metrics: new Metrics({ namespace: 'test', serviceName: 'test' }),
  } as unknown as SyncContext;
  return { ctx, deadLettered };
}

describe('processInbox', () => {
  beforeAll(() => {
    process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  });

  it('acknowledges what merged and reports only what failed for redelivery', async () => {
    const { ctx } = context(async (e) => {
      if (e.document === 'flaky') throw new Error('ProvisionedThroughputExceededException');
    });
    const response = await processInbox(ctx, event(envelope('ok'), envelope('flaky'), envelope('ok-too')));
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
  });

  it('dead-letters undecodable messages with the reason instead of retrying or dropping them', async () => {
    const { ctx, deadLettered } = context(async () => 'merged');
    const response = await processInbox(ctx, event('not json', '{"v":2}', envelope('ok')));
    expect(response.batchItemFailures).toEqual([]);
    expect(deadLettered).toEqual([
      { body: 'not json', reason: 'not valid JSON' },
      { body: '{"v":2}', reason: 'unsupported protocol version 2; expected 1' },
    ]);
  });

  it('dead-letters a delta whose type clashes with the stored field', async () => {
    const { ctx, deadLettered } = context(async () => {
      throw new CrdtTypeMismatchError('count', 'gcounter', 'orset');
    });
    await expect(processInbox(ctx, event(envelope('doc')))).resolves.toEqual({ batchItemFailures: [] });
    expect(deadLettered[0]?.reason).toBe(
      'cannot merge count: it is a gcounter on one side and a orset on the other',
    );
  });

  it('retries a poison message whose dead-lettering failed, rather than lose it', async () => {
    const { ctx } = context(async () => 'merged');
    (ctx.sqs as unknown as { send: () => Promise<never> }).send = () => Promise.reject(new Error('SQS down'));
    await expect(processInbox(ctx, event('garbage'))).resolves.toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }],
    });
  });
});
