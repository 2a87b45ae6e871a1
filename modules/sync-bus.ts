import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { SqsQueuePolicy } from '@cdktf/provider-aws/lib/sqs-queue-policy';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

export interface SyncBusProps {
  /**
   * Name shared by every region's bus, e.g. `dev-sync` (1-61 letters, digits, `-`, `_`, so every queue name
   * fits SQS's 80 characters): topic `<name>`, inbox `<name>-inbox`, its dead-letter queue
   * `<name>-inbox-dead-letters`, the subscriptions' redrive queue `<name>-undelivered`.
   */
  readonly name: string;
  /** This region. */
  readonly region: string;
  /** Every other region of the environment: their inboxes subscribe to this topic, their topics feed this inbox. */
  readonly peerRegions: readonly string[];
  /** Account of every region's bus. */
  readonly accountId: string;
  /**
   * Key for the topic and the queues; must let sns.amazonaws.com use it (KmsKey `serviceUsers`): SNS encrypts
   * what it delivers to the inboxes and what it moves to the redrive queue with it.
   */
  readonly kmsKey: KmsKey;
  /** Deliveries of a message before it moves to the inbox's dead-letter queue. Default: 5. */
  readonly maxReceiveCount?: number;
  /**
   * Inbox visibility timeout, seconds (0-43,200): 6 x the consumer's timeout + its batching window
   * (`SyncService.inboxVisibilityTimeoutSec`), which SyncService checks. Default: 61 (a 10 s consumer, 1 s window).
   */
  readonly visibilityTimeoutSec?: number;
  /**
   * Ignore drift of the inbox's redrive policy. Only for the emulator, which echoes the policy with spaces
   * that the provider reads as a change on every plan. Default: false.
   */
  readonly ignoreRedrivePolicyDrift?: boolean;
}

const arn = (service: 'sns' | 'sqs', region: string, accountId: string, resource: string) =>
  `arn:aws:${service}:${region}:${accountId}:${resource}`;

/** Days the dead-letter and redrive queues keep a message: SQS's most. */
const DEAD_LETTER_RETENTION_SEC = 14 * 24 * 3600;

/**
 * What a subscription to `peer`'s inbox delivers: messages addressed to `peer` (attribute `to`) and messages
 * addressed to no one (no `to`: deltas, full states, digests). Every message the sync publishes carries
 * `origin` and `kind`, so `exists: false` has attributes to match against (SNS never matches it on none).
 */
export function peerFilterPolicy(peer: string): Record<string, unknown> {
  return { $or: [{ to: [peer] }, { to: [{ exists: false }] }] };
}

/**
 * One region's end of the cross-region sync bus: an SNS topic it publishes to, and an SQS inbox that every
 * other region's topic delivers to (raw delivery). This stack subscribes the peers' inboxes to its own
 * topic, by their deterministic ARNs, so each region deploys alone and N regions give N x (N-1)
 * subscriptions; each subscription lets through only what is addressed to its peer or to no one, and moves
 * what SNS could not deliver after its retries to this region's redrive queue (`<name>-undelivered`; SNS
 * wants it in the topic's region and account). The inbox admits exactly the peers' topics, redrives to a
 * dead-letter queue, and everything is encrypted with the region's key.
 */
export class SyncBus extends Construct {
  /** The name shared by every region's bus: the topic's, and the prefix of the queues'. */
  readonly name: string;
  readonly topic: SnsTopic;
  readonly inbox: SqsQueue;
  readonly deadLetterQueue: SqsQueue;
  /** Where SNS moves a message it could not deliver to a peer's inbox (the subscriptions' redrive policy). */
  readonly undeliveredQueue: SqsQueue;
  readonly subscriptions: readonly SnsTopicSubscription[];
  /** ARNs of the peer topics this inbox admits. */
  readonly admittedTopicArns: readonly string[];
  /** Deliveries of a message before the inbox's redrive policy moves it to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** How long a delivered message stays hidden from other consumers. */
  readonly visibilityTimeoutSec: number;

  /** Name of the inbox's dead-letter queue (the redrive command's source). */
  static deadLetterQueueName(name: string): string {
    return `${name}-inbox-dead-letters`;
  }

  static inboxName(name: string): string {
    return `${name}-inbox`;
  }

  /** Name of the subscriptions' redrive queue: what this region's topic could not deliver to a peer. */
  static undeliveredQueueName(name: string): string {
    return `${name}-undelivered`;
  }

  static topicArn(region: string, accountId: string, name: string): string {
    return arn('sns', region, accountId, name);
  }

  static inboxArn(region: string, accountId: string, name: string): string {
    return arn('sqs', region, accountId, SyncBus.inboxName(name));
  }

  constructor(scope: Construct, id: string, props: SyncBusProps) {
    super(scope, id);
    this.name = requireMatch(
      'SyncBus',
      'name',
      props.name,
      /^[a-zA-Z0-9_-]{1,61}$/,
      '1-61 letters, digits, - or _',
    );
    if (props.peerRegions.length === 0)
      fail('SyncBus', 'peerRegions', props.peerRegions, 'at least one other region');
    if (
      props.peerRegions.includes(props.region) ||
      new Set(props.peerRegions).size !== props.peerRegions.length
    ) {
      fail('SyncBus', 'peerRegions', props.peerRegions, `distinct regions other than ${props.region}`);
    }
    this.maxReceiveCount = requireIntInRange(
      'SyncBus',
      'maxReceiveCount',
      props.maxReceiveCount ?? 5,
      1,
      1000,
    );
    const visibilityTimeoutSec = (this.visibilityTimeoutSec = requireIntInRange(
      'SyncBus',
      'visibilityTimeoutSec',
      props.visibilityTimeoutSec ?? 61,
      0,
      43200,
    ));
    const key = props.kmsKey.arn;

    this.topic = new SnsTopic(this, 'Topic', { name: props.name, kmsMasterKeyId: key });
    this.deadLetterQueue = new SqsQueue(this, 'DeadLetters', {
      name: SyncBus.deadLetterQueueName(props.name),
      kmsMasterKeyId: key,
      messageRetentionSeconds: DEAD_LETTER_RETENTION_SEC,
    });
    this.inbox = new SqsQueue(this, 'Inbox', {
      name: SyncBus.inboxName(props.name),
      kmsMasterKeyId: key,
      visibilityTimeoutSeconds: visibilityTimeoutSec,
      messageRetentionSeconds: 4 * 24 * 3600,
      redrivePolicy: JSON.stringify({
        deadLetterTargetArn: this.deadLetterQueue.arn,
        maxReceiveCount: this.maxReceiveCount,
      }),
      ...(props.ignoreRedrivePolicyDrift ? { lifecycle: { ignoreChanges: ['redrive_policy'] } } : {}),
    });

    this.admittedTopicArns = props.peerRegions.map((peer) =>
      SyncBus.topicArn(peer, props.accountId, props.name),
    );
    new SqsQueuePolicy(this, 'InboxPolicy', {
      queueUrl: this.inbox.url,
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PeerTopicsDeliver',
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: this.inbox.arn,
            Condition: { ArnEquals: { 'aws:SourceArn': [...this.admittedTopicArns] } },
          },
        ],
      }),
    });

    this.undeliveredQueue = new SqsQueue(this, 'Undelivered', {
      name: SyncBus.undeliveredQueueName(props.name),
      kmsMasterKeyId: key,
      messageRetentionSeconds: DEAD_LETTER_RETENTION_SEC,
    });
    const undeliveredPolicy = new SqsQueuePolicy(this, 'UndeliveredPolicy', {
      queueUrl: this.undeliveredQueue.url,
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OwnTopicRedrives',
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: this.undeliveredQueue.arn,
            Condition: { ArnEquals: { 'aws:SourceArn': this.topic.arn } },
          },
        ],
      }),
    });

    const redrivePolicy = JSON.stringify({ deadLetterTargetArn: this.undeliveredQueue.arn });
    this.subscriptions = props.peerRegions.map(
      (peer) =>
        new SnsTopicSubscription(this, `To-${peer}`, {
          topicArn: this.topic.arn,
          protocol: 'sqs',
          endpoint: SyncBus.inboxArn(peer, props.accountId, props.name),
          rawMessageDelivery: true,
          filterPolicy: JSON.stringify(peerFilterPolicy(peer)),
          filterPolicyScope: 'MessageAttributes',
          redrivePolicy,
          // SNS may move a message there as soon as the subscription exists: let it send first.
          dependsOn: [undeliveredPolicy],
        }),
    );
  }
}
