import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { SqsQueuePolicy } from '@cdktf/provider-aws/lib/sqs-queue-policy';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

export interface SyncBusProps {
  /** Name shared by every region's bus, e.g. `dev-sync`: topic `<name>`, inbox `<name>-inbox`. */
  readonly name: string;
  /** This region. */
  readonly region: string;
  /** Every other region of the environment: their inboxes subscribe to this topic, their topics feed this inbox. */
  readonly peerRegions: readonly string[];
  /** Account of every region's bus. */
  readonly accountId: string;
  /** Key for the topic and both queues; must let sns.amazonaws.com use it (KmsKey `serviceUsers`). */
  readonly kmsKey: KmsKey;
  /** Deliveries of a message before it moves to the inbox's dead-letter queue. Default: 5. */
  readonly maxReceiveCount?: number;
  /** Inbox visibility timeout, at least the consumer's timeout. Default: 60. */
  readonly visibilityTimeoutSec?: number;
  /**
   * Ignore drift of the inbox's redrive policy. Only for the emulator, which echoes the policy with spaces
   * that the provider reads as a change on every plan. Default: false.
   */
  readonly ignoreRedrivePolicyDrift?: boolean;
}

const arn = (service: 'sns' | 'sqs', region: string, accountId: string, resource: string) =>
  `arn:aws:${service}:${region}:${accountId}:${resource}`;

/**
 * One region's end of the cross-region sync bus: an SNS topic it publishes to, and an SQS inbox that every
 * other region's topic delivers to (raw delivery). This stack subscribes the peers' inboxes to its own
 * topic, by their deterministic ARNs, so each region deploys alone and N regions give N x (N-1)
 * subscriptions. The inbox admits exactly the peers' topics, redrives to a dead-letter queue, and
 * everything is encrypted with the region's key.
 */
export class SyncBus extends Construct {
  readonly topic: SnsTopic;
  readonly inbox: SqsQueue;
  readonly deadLetterQueue: SqsQueue;
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

  static topicArn(region: string, accountId: string, name: string): string {
    return arn('sns', region, accountId, name);
  }

  static inboxArn(region: string, accountId: string, name: string): string {
    return arn('sqs', region, accountId, SyncBus.inboxName(name));
  }

  constructor(scope: Construct, id: string, props: SyncBusProps) {
    super(scope, id);
    requireMatch('SyncBus', 'name', props.name, /^[a-zA-Z0-9_-]{1,70}$/, '1-70 letters, digits, - or _');
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
      props.visibilityTimeoutSec ?? 60,
      0,
      43200,
    ));
    const key = props.kmsKey.arn;

    this.topic = new SnsTopic(this, 'Topic', { name: props.name, kmsMasterKeyId: key });
    this.deadLetterQueue = new SqsQueue(this, 'DeadLetters', {
      name: SyncBus.deadLetterQueueName(props.name),
      kmsMasterKeyId: key,
      messageRetentionSeconds: 14 * 24 * 3600,
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

    this.subscriptions = props.peerRegions.map(
      (peer) =>
        new SnsTopicSubscription(this, `To-${peer}`, {
          topicArn: this.topic.arn,
          protocol: 'sqs',
          endpoint: SyncBus.inboxArn(peer, props.accountId, props.name),
          rawMessageDelivery: true,
        }),
    );
  }
}
