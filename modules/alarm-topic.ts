import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import type { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireMatch } from './lib/validate';

/** Where an alarm notification goes. */
export interface AlarmSubscription {
  readonly protocol: 'email' | 'https' | 'sqs' | 'lambda';
  readonly endpoint: string;
}

export interface AlarmTopicProps {
  /** Topic name, the same in every region, e.g. `dev-alarms`. */
  readonly name: string;
  /** Key of the topic's region; must let cloudwatch.amazonaws.com use it (KmsKey `serviceUsers`). */
  readonly kmsKey: KmsKey;
  /** Who is notified. Default: nobody yet (alarms still change state, and the topic is there to subscribe to). */
  readonly subscriptions?: readonly AlarmSubscription[];
  /** Provider of the topic's region, when the stack holds several. Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
}

/**
 * An environment's alarm topic in one region: every alarm of the region (CloudWatch alarm actions must
 * name a topic of their own region) notifies it, and the environment's subscriptions hear all of them.
 * Encrypted with the region's key.
 */
export class AlarmTopic extends Construct {
  readonly topic: SnsTopic;

  /** The topic's ARN, known before it exists (regional stacks refer to the global stack's topics by it). */
  static arn(region: string, accountId: string, name: string): string {
    return `arn:aws:sns:${region}:${accountId}:${name}`;
  }

  constructor(scope: Construct, id: string, props: AlarmTopicProps) {
    super(scope, id);
    requireMatch('AlarmTopic', 'name', props.name, /^[a-zA-Z0-9_-]{1,256}$/, '1-256 letters, digits, - or _');
    const subscriptions = props.subscriptions ?? [];
    const endpoints = subscriptions.map((s) => `${s.protocol}:${s.endpoint}`);
    if (new Set(endpoints).size !== endpoints.length)
      fail('AlarmTopic', 'subscriptions', endpoints, 'each protocol and endpoint once');
    this.topic = new SnsTopic(this, 'Topic', {
      name: props.name,
      kmsMasterKeyId: props.kmsKey.arn,
      provider: props.provider,
    });
    subscriptions.forEach(
      (subscription, index) =>
        new SnsTopicSubscription(this, `Subscription${index}`, {
          topicArn: this.topic.arn,
          protocol: subscription.protocol,
          endpoint: subscription.endpoint,
          provider: props.provider,
        }),
    );
  }
}
