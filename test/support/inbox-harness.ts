import { Metrics } from '@aws-lambda-powertools/metrics';
import { ChangeMessageVisibilityCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import type { SyncContext, SyncSettings } from '../../runtime/sync/lambda-context';
import type { Envelope, SyncReplica } from '../../runtime/sync';

export interface DeadLettered {
  readonly body?: string;
  readonly reason?: string;
  readonly code?: string;
}

/** An SQS event of `bodies`, each delivered `deliveries` times so far. */
export const sqsEvent = (bodies: readonly string[], deliveries = 1): SQSEvent =>
  ({
    Records: bodies.map((body, i) => ({
      messageId: `m${i}`,
      body,
      eventSource: 'aws:sqs',
      attributes: { ApproximateReceiveCount: String(deliveries) },
    })),
  }) as unknown as SQSEvent;

/**
 * A sync context around `replica` whose SQS client records what is dead-lettered (or fails, if asked). A
 * replica that only has `receive` (a fake) merges a batch's envelopes of a document one by one.
 */
export function inboxContext(
  replica: Pick<SyncReplica, 'receive'> & Partial<Pick<SyncReplica, 'receiveAll'>>,
  options: { sqsDown?: boolean } = {},
) {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const deadLettered: DeadLettered[] = [];
  const backoffs: number[] = [];
  const sqs = {
    send: async (command: {
      input: {
        MessageBody?: string;
        MessageAttributes?: Record<string, { StringValue?: string }>;
        VisibilityTimeout?: number;
      };
    }) => {
      if (options.sqsDown) throw Object.assign(new Error('SQS unavailable'), { name: 'ServiceUnavailable' });
      if (command instanceof ChangeMessageVisibilityCommand) {
        backoffs.push(command.input.VisibilityTimeout ?? -1);
        return {};
      }
      deadLettered.push({
        body: command.input.MessageBody,
        reason: command.input.MessageAttributes?.reason?.StringValue,
        code: command.input.MessageAttributes?.reasonCode?.StringValue,
      });
      return {};
    },
  } as unknown as SQSClient;
  const config = {
    SYNC_INBOX_URL: 'http://inbox',
    SYNC_DEAD_LETTER_QUEUE_URL: 'http://dlq',
    SYNC_MAX_RECEIVE_COUNT: 5,
    SYNC_MERGE_CONCURRENCY: 4,
  } as SyncSettings;
  const receiveAll =
    replica.receiveAll?.bind(replica) ??
    ((envelopes: readonly Envelope[]) =>
      Promise.all(
        envelopes.map((e) =>
          replica.receive(e).then(
            (): 'merged' => 'merged',
            (error: Error) => error,
          ),
        ),
      ));
  const ctx = {
    config,
    replica: { receive: replica.receive.bind(replica), receiveAll } as unknown as SyncReplica,
    sqs,
    metrics: new Metrics({ namespace: 'test', serviceName: 'test' }),
  } as SyncContext;
  return { ctx, deadLettered, backoffs };
}
