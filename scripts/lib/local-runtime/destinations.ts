/**
 * Sending to what EventBridge targets and Lambda destinations name by ARN: an SQS queue (its URL from the
 * stacks' state, else asked of the emulator) or an SNS topic, with one client per region.
 */
import { randomUUID } from 'node:crypto';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetQueueUrlCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { DiscoveredQueue } from './discover';

/** The emulator's credentials. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' } as const;

type QueueRef = Pick<DiscoveredQueue, 'arn' | 'region' | 'name'> & { readonly url?: string };

export class Destinations {
  private readonly sqsClients = new Map<string, SQSClient>();
  private readonly snsClients = new Map<string, SNSClient>();
  private readonly urls = new Map<string, Promise<string>>();

  constructor(
    private readonly endpoint: string,
    private readonly queues: readonly DiscoveredQueue[],
  ) {}

  sqs(region: string): SQSClient {
    let client = this.sqsClients.get(region);
    if (!client) {
      client = new SQSClient({ region, endpoint: this.endpoint, credentials: EMULATOR_CREDENTIALS });
      this.sqsClients.set(region, client);
    }
    return client;
  }

  private sns(region: string): SNSClient {
    let client = this.snsClients.get(region);
    if (!client) {
      client = new SNSClient({ region, endpoint: this.endpoint, credentials: EMULATOR_CREDENTIALS });
      this.snsClients.set(region, client);
    }
    return client;
  }

  /** A queue's URL: the state's, else GetQueueUrl (once). */
  queueUrl(queue: QueueRef): Promise<string> {
    if (queue.url) return Promise.resolve(queue.url);
    let url = this.urls.get(queue.arn);
    if (!url) {
      url = this.sqs(queue.region)
        .send(
          new GetQueueUrlCommand({ QueueName: queue.name, QueueOwnerAWSAccountId: queue.arn.split(':')[4] }),
        )
        .then((answer) => answer.QueueUrl as string);
      this.urls.set(queue.arn, url);
    }
    return url;
  }

  private queueByArn(arn: string): QueueRef {
    const known = this.queues.find((queue) => queue.arn === arn);
    if (known) return known;
    const [, , , region = '', , name = ''] = arn.split(':');
    return { arn, region, name };
  }

  /** Sends `body` to the queue or topic `arn` names. */
  async send(arn: string, body: string, messageGroupId?: string): Promise<void> {
    const service = arn.split(':')[2];
    if (service === 'sqs') {
      const queue = this.queueByArn(arn);
      await this.sqs(queue.region).send(
        new SendMessageCommand({
          QueueUrl: await this.queueUrl(queue),
          MessageBody: body,
          ...(arn.endsWith('.fifo')
            ? { MessageGroupId: messageGroupId ?? 'default', MessageDeduplicationId: randomUUID() }
            : {}),
        }),
      );
      return;
    }
    if (service === 'sns') {
      await this.sns(arn.split(':')[3] as string).send(new PublishCommand({ TopicArn: arn, Message: body }));
      return;
    }
    throw new Error(`delivering to ${service ?? 'an unknown service'} is not served locally`);
  }
}
