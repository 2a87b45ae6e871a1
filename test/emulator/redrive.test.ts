import {
  CreateQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { NO_REASON, redrive } from '../../scripts/lib/redrive';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

const sqs = new SQSClient({
  region: 'eu-central-1',
  endpoint: laneEndpoint(EMULATOR_LANE_ENDPOINT),
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});

async function queue(name: string): Promise<string> {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl as string;
}

async function bodies(url: string): Promise<string[]> {
  const found: string[] = [];
  for (;;) {
    const batch = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'] }),
    );
    if (!batch.Messages?.length) return found.sort();
    for (const m of batch.Messages) {
      expect(m.MessageAttributes?.reason).toBeUndefined(); // the reason stays behind
      found.push(m.Body as string);
    }
  }
}

describe('redrive (npm run redrive)', () => {
  it('moves every dead-lettered message back unchanged, counting them by reason, and empties the dead-letter queue', async () => {
    const from = await queue('redrive-from');
    const to = await queue('redrive-to');
    const reasons = ['unknown-origin', 'unknown-origin', 'clock-ahead'];
    for (const [i, code] of reasons.entries()) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: from,
          MessageBody: `message ${i}`,
          MessageAttributes: {
            reasonCode: { DataType: 'String', StringValue: code },
            reason: { DataType: 'String', StringValue: 'why' },
          },
        }),
      );
    }
    await sqs.send(new SendMessageCommand({ QueueUrl: from, MessageBody: 'moved by the queue itself' }));
    const result = await redrive(sqs, from, to, { waitSeconds: 0 });
    expect(result.moved).toBe(4);
    expect(result.byReason).toEqual(
      new Map([
        ['unknown-origin', 2],
        ['clock-ahead', 1],
        [NO_REASON, 1],
      ]),
    );
    expect(await bodies(to)).toEqual(['message 0', 'message 1', 'message 2', 'moved by the queue itself']);
    expect(await bodies(from)).toEqual([]);
  });

  it('moves messages near the size limit, sending as many per batch as fit', async () => {
    const from = await queue('redrive-large-from');
    const to = await queue('redrive-large-to');
    const large = (i: number) => `${i}`.padEnd(250_000, 'x');
    for (let i = 0; i < 5; i++)
      await sqs.send(new SendMessageCommand({ QueueUrl: from, MessageBody: large(i) }));
    await sqs.send(new SendMessageCommand({ QueueUrl: from, MessageBody: 'small' }));
    await expect(redrive(sqs, from, to, { waitSeconds: 0 })).resolves.toMatchObject({ moved: 6 });
    expect(await bodies(to)).toEqual([...Array.from({ length: 5 }, (_, i) => large(i)), 'small'].sort());
    expect(await bodies(from)).toEqual([]);
  });

  it('moves no more than asked', async () => {
    const from = await queue('redrive-max-from');
    const to = await queue('redrive-max-to');
    for (let i = 0; i < 15; i++)
      await sqs.send(new SendMessageCommand({ QueueUrl: from, MessageBody: `m${i}` }));
    await expect(redrive(sqs, from, to, { max: 12, waitSeconds: 0 })).resolves.toMatchObject({ moved: 12 });
    expect(await bodies(to)).toHaveLength(12);
  });
});
