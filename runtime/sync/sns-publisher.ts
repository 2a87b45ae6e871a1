import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { PermanentError } from '../lib/failures';
import { encodeEnvelope, type Envelope } from './envelope';
import { MAX_MESSAGE_BYTES } from './limits';
import type { Publisher } from './replica';

/** Publishes envelopes to the region's sync topic; every other region's inbox is subscribed to it. */
export class SnsPublisher implements Publisher {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
  ) {}

  async publish(envelope: Envelope): Promise<void> {
    const message = encodeEnvelope(envelope);
    const attributes = {
      origin: { DataType: 'String', StringValue: envelope.origin },
      kind: { DataType: 'String', StringValue: envelope.kind },
    };
    const bytes =
      Buffer.byteLength(message, 'utf8') +
      Object.entries(attributes).reduce(
        (sum, [name, value]) =>
          sum + name.length + value.DataType.length + Buffer.byteLength(value.StringValue),
        0,
      );
    if (bytes > MAX_MESSAGE_BYTES)
      throw new PermanentError(
        'message-too-large',
        `a sync message would be ${bytes} bytes; SNS takes ${MAX_MESSAGE_BYTES}`,
      );
    await this.client.send(
      new PublishCommand({ TopicArn: this.topicArn, Message: message, MessageAttributes: attributes }),
    );
  }
}
