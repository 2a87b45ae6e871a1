import { LambdaEventSourceMapping } from '@cdktf/provider-aws/lib/lambda-event-source-mapping';
import type { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { Construct } from 'constructs';
import type { BundledFunction } from './bundled-function';
import type { PolicyStatement } from './lib/policy';
import { requireIntInRange } from './lib/validate';

/**
 * What a consumer of `queue` needs (runtime/lib/queue-consumer.ts): receive, delete, delay a redelivery, and
 * send a message that can never be processed to `deadLetterQueue` with its reason.
 */
export function queueConsumerStatements(
  queueSid: string,
  queue: SqsQueue,
  deadLetterQueue: SqsQueue,
): PolicyStatement[] {
  return [
    {
      sid: queueSid,
      actions: [
        'sqs:ReceiveMessage',
        'sqs:DeleteMessage',
        'sqs:ChangeMessageVisibility',
        'sqs:GetQueueAttributes',
      ],
      resources: [queue.arn],
    },
    { sid: 'DeadLetterWithReason', actions: ['sqs:SendMessage'], resources: [deadLetterQueue.arn] },
  ];
}

export interface QueueTriggerProps {
  readonly queue: SqsQueue;
  /** Function invoked, through its `live` alias. Its role needs the queue's receive and delete rights. */
  readonly consumer: BundledFunction;
  /** Messages per invocation (1-10). Default: 10. */
  readonly batchSize?: number;
  /** Seconds to gather a batch. Default: 1. */
  readonly batchingWindowSec?: number;
  /**
   * Invocations the mapping runs at once (2-1000): bounds a burst against what the consumer calls. Default:
   * Lambda's (up to the function's concurrency). Not set on a disabled mapping (the emulator's).
   */
  readonly maximumConcurrency?: number;
  /**
   * Create the mapping enabled. Off only on the emulator, where something else pumps the queue (and the
   * alias it targets is read back as a version, so that drift is ignored). Default: true.
   */
  readonly enabled?: boolean;
}

/**
 * An SQS event-source mapping with partial batch responses: only the records a consumer reports as failed
 * are redelivered (and, after the queue's maxReceiveCount, dead-lettered).
 */
export class QueueTrigger extends Construct {
  readonly mapping: LambdaEventSourceMapping;
  /** Seconds the mapping gathers a batch: a record may wait this long after it was received, before its run. */
  readonly batchingWindowSec: number;
  /** Invocations the mapping runs at once; undefined: Lambda's (or a disabled mapping, which sets none). */
  readonly maximumConcurrency?: number;

  constructor(scope: Construct, id: string, props: QueueTriggerProps) {
    super(scope, id);
    const batchSize = requireIntInRange('QueueTrigger', 'batchSize', props.batchSize ?? 10, 1, 10);
    const window = (this.batchingWindowSec = requireIntInRange(
      'QueueTrigger',
      'batchingWindowSec',
      props.batchingWindowSec ?? 1,
      0,
      300,
    ));
    const maximumConcurrency =
      props.maximumConcurrency === undefined
        ? undefined
        : requireIntInRange('QueueTrigger', 'maximumConcurrency', props.maximumConcurrency, 2, 1000);
    if (props.enabled !== false) this.maximumConcurrency = maximumConcurrency;
    this.mapping = new LambdaEventSourceMapping(this, 'Mapping', {
      eventSourceArn: props.queue.arn,
      functionName: props.consumer.alias.arn,
      batchSize,
      maximumBatchingWindowInSeconds: window,
      functionResponseTypes: ['ReportBatchItemFailures'],
      ...(this.maximumConcurrency !== undefined ? { scalingConfig: { maximumConcurrency } } : {}),
      // The mapping polls as the function's role: create it once the role may read the queue.
      dependsOn: [props.consumer.policy],
      ...(props.enabled === false ? { enabled: false, lifecycle: { ignoreChanges: ['function_name'] } } : {}),
    });
  }
}
