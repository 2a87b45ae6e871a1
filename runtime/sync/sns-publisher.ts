import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { PermanentError } from '../lib/failures';
import { encodeControl, type ControlMessage } from './control-messages';
import { encodeEnvelope, type Envelope } from './envelope';
import { MAX_INLINE_STATE_BYTES, MAX_MESSAGE_BYTES } from './limits';
import { CORRELATION_ATTRIBUTE } from './correlation';
import type { Publisher, PublishOptions } from './replica';
import type { StateObjects } from './state-objects';

type Attributes = Record<string, { DataType: 'String'; StringValue: string }>;

/** SNS counts a message's body and each attribute's name, type and value. */
const messageBytes = (message: string, attributes: Attributes) =>
  Buffer.byteLength(message, 'utf8') +
  Object.entries(attributes).reduce(
    (sum, [name, value]) => sum + name.length + value.DataType.length + Buffer.byteLength(value.StringValue),
    0,
  );

/** Publishes anti-entropy's messages (digests, pulls, references to full states). */
export interface ControlPublisher {
  publishControl(message: ControlMessage, to?: string): Promise<void>;
}

/**
 * Publishes to the region's sync topic; every other region's inbox is subscribed to it (a pull, addressed
 * with the `to` attribute, reaches only its region). A full state too large for a message is put in the
 * region's bucket and travels as a reference; a delta never does (a change's delta fits by its limits).
 * A change's correlation id goes as the `correlationId` attribute (correlation.ts says why not in the
 * envelope); the attributes fit the room `MESSAGE_RESERVE_BYTES` keeps beside the body.
 */
export class SnsPublisher implements Publisher, ControlPublisher {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
    private readonly objects?: StateObjects,
  ) {}

  async publish(envelope: Envelope, to?: string, options: PublishOptions = {}): Promise<void> {
    const message = encodeEnvelope(envelope);
    if (
      envelope.kind === 'state' &&
      Buffer.byteLength(message, 'utf8') > MAX_INLINE_STATE_BYTES &&
      this.objects
    ) {
      const stored = await this.objects.put(message);
      const { origin, hlc, document } = envelope;
      await this.publishControl({ kind: 'reference', origin, hlc, document, ...stored }, to);
      return;
    }
    await this.send(message, {
      origin: attribute(envelope.origin),
      kind: attribute(envelope.kind),
      ...addressed(to),
      ...(options.correlationId === undefined
        ? {}
        : { [CORRELATION_ATTRIBUTE]: attribute(options.correlationId) }),
    });
  }

  /** Publishes a control message: a pull to the region it asks, others to `to` if given, else every peer. */
  async publishControl(message: ControlMessage, to?: string): Promise<void> {
    await this.send(encodeControl(message), {
      origin: attribute(message.origin),
      kind: attribute(message.kind),
      ...addressed(message.kind === 'pull' ? message.to : to),
    });
  }

  private async send(message: string, attributes: Attributes): Promise<void> {
    const bytes = messageBytes(message, attributes);
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

const attribute = (value: string) => ({ DataType: 'String' as const, StringValue: value });

/** The `to` attribute the subscriptions' filter policies deliver by: one region, or (absent) every peer. */
const addressed = (to: string | undefined): Attributes => (to === undefined ? {} : { to: attribute(to) });
