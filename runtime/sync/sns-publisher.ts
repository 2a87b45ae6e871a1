import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { encodeEnvelope, type Envelope } from './envelope';
import type { Publisher } from './replica';

/** Publishes envelopes to the region's sync topic; every other region's inbox is subscribed to it. */
export class SnsPublisher implements Publisher {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
  ) {}

  async publish(envelope: Envelope): Promise<void> {
    await this.client.send(
      new PublishCommand({
        TopicArn: this.topicArn,
        Message: encodeEnvelope(envelope),
        MessageAttributes: {
          origin: { DataType: 'String', StringValue: envelope.origin },
          kind: { DataType: 'String', StringValue: envelope.kind },
        },
      }),
    );
  }
}
