/**
 * Stands in for one SQS event-source mapping: receives batches from the queue, invokes the mapped function
 * with Lambda's SQS event, deletes what it acknowledged, and leaves the rest to the queue (its visibility
 * timeout, then its redrive policy: the emulator moves a message to the dead-letter queue on the receive after
 * maxReceiveCount, as SQS does). At most `concurrency` invocations run at once.
 *
 * Polls are short (WaitTimeSeconds 0), pausing 100 ms to 1 s while the queue stays empty: the emulator serves
 * SQS one request at a time, and a long poll would hold every other SQS and SNS request for its whole wait.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import type { DiscoveredMapping } from './discover';
import type { InvocationOutcome } from './function-host';
import { settleBatch, sqsEventOf, type BatchSettlement } from './sqs-batch';

export interface PollerOptions {
  readonly mapping: DiscoveredMapping;
  readonly queueUrl: string;
  readonly sqs: SQSClient;
  readonly invoke: (event: SQSEvent) => Promise<InvocationOutcome>;
  /** Invocations at once. */
  readonly concurrency: number;
  /**
   * Seconds a failed message stays invisible before it is received again. Lambda leaves it for the queue's
   * whole visibility timeout (minutes, for the estate's queues); locally a short one keeps retries and
   * dead-lettering quick. Undefined: the queue's (Lambda's behaviour).
   */
  readonly retryVisibilitySec?: number;
  /** The longest pause after empty receives (pauses double from 100 ms up to it). Default 1000 ms. */
  readonly idleMs?: number;
  /** Each settled batch. */
  readonly onBatch?: (report: BatchReport) => void;
  /** An SQS call that failed (the poller carries on after a pause). */
  readonly onError?: (error: Error) => void;
}

export interface BatchReport extends BatchSettlement {
  readonly mapping: string;
  readonly outcome: InvocationOutcome;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolveSleep) => {
    if (signal.aborted) return resolveSleep();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolveSleep();
    }
    signal.addEventListener('abort', done);
  });

/** Entries of at most 10 (SQS's batch limit). */
function chunks<T>(items: readonly T[], size = 10): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class SqsPoller {
  private readonly abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private loop?: Promise<void>;

  constructor(private readonly options: PollerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops receiving and waits for the batches in flight. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await Promise.all([...this.inFlight]);
  }

  private get concurrency(): number {
    // A FIFO queue's order holds only with one batch at a time (Lambda runs one per message group).
    return this.options.mapping.queue.fifo ? 1 : Math.max(1, this.options.concurrency);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    const maxIdleMs = this.options.idleMs ?? 1_000;
    let idleMs = 100;
    while (!signal.aborted) {
      if (this.inFlight.size >= this.concurrency) {
        await Promise.race(this.inFlight);
        continue;
      }
      let batch: Message[];
      try {
        batch = await this.receiveBatch(signal);
      } catch (error) {
        if (signal.aborted) break;
        this.options.onError?.(error as Error);
        await sleep(2_000, signal);
        continue;
      }
      if (batch.length === 0) {
        await sleep(idleMs, signal);
        idleMs = Math.min(maxIdleMs, idleMs * 2);
        continue;
      }
      idleMs = 100;
      const work = this.process(batch).finally(() => this.inFlight.delete(work));
      this.inFlight.add(work);
    }
  }

  /** Up to the batch size, gathering for the mapping's batching window when the first receive fell short. */
  private async receiveBatch(signal: AbortSignal): Promise<Message[]> {
    const { mapping } = this.options;
    const deadline = Date.now() + mapping.maximumBatchingWindowSec * 1000;
    const batch: Message[] = [];
    for (;;) {
      const received = await this.options.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.options.queueUrl,
          MaxNumberOfMessages: Math.min(10, mapping.batchSize - batch.length),
          WaitTimeSeconds: 0,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: signal },
      );
      batch.push(...(received.Messages ?? []));
      if (batch.length === 0 || batch.length >= mapping.batchSize || Date.now() >= deadline || signal.aborted)
        return batch;
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())), signal);
    }
  }

  private async process(batch: Message[]): Promise<void> {
    const { mapping, sqs, queueUrl } = this.options;
    const outcome = await this.options.invoke(
      sqsEventOf(batch, { arn: mapping.queue.arn, region: mapping.queue.region }),
    );
    const settlement = settleBatch(
      batch,
      outcome.ok ? { ok: true, payload: outcome.payload } : { ok: false, errorType: outcome.error.errorType },
      mapping.reportBatchItemFailures,
    );
    try {
      for (const chunk of chunks(settlement.acknowledged)) {
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: chunk.map((message, i) => ({
              Id: String(i),
              ReceiptHandle: message.ReceiptHandle ?? '',
            })),
          }),
        );
      }
      const retry = this.options.retryVisibilitySec;
      if (retry !== undefined) {
        for (const chunk of chunks(settlement.failed)) {
          await sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: queueUrl,
              Entries: chunk.map((message, i) => ({
                Id: String(i),
                ReceiptHandle: message.ReceiptHandle ?? '',
                VisibilityTimeout: retry,
              })),
            }),
          );
        }
      }
    } catch (error) {
      this.options.onError?.(error as Error);
    }
    this.options.onBatch?.({ ...settlement, mapping: mapping.address, outcome });
  }
}
