import type { PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { captureOutput, findLeaks, LEAK_MARKER } from '../../runtime/lib/leak-check';
import { createLogger } from '../../runtime/lib/logger';
import {
  CHANGE_ID,
  correlationOfAttributes,
  encodeEnvelope,
  SnsPublisher,
  type Envelope,
  type SyncReplica,
} from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { inboxContext, sqsEvent } from '../support/inbox-harness';
import { testRegion, type TestRegion } from '../support/sync-harness';

const EU = 'eu-central-1';
const US = 'us-east-1';

/** A region whose writer publishes through the real SnsPublisher (to a recording SNS) and logs as Lambda does. */
function writerRegion(name: string, options: { changeId?: () => string; peers?: readonly string[] } = {}) {
  const sent: PublishCommandInput[] = [];
  const sns = {
    send: async (command: { input: PublishCommandInput }) => void sent.push(command.input),
  } as unknown as SNSClient;
  const region = testRegion(name, {
    publisher: new SnsPublisher(sns, `arn:aws:sns:${name}:123456789012:sync`),
    logger: createLogger('sync-writer'),
    ...options,
  });
  return { region, sent };
}

/** What the peer's inbox gets of a published message: SNS raw delivery to SQS, attributes kept. */
function delivered(input: PublishCommandInput, messageId: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: input.Message as string,
    attributes: { ApproximateReceiveCount: '1' },
    messageAttributes: Object.fromEntries(
      Object.entries(input.MessageAttributes ?? {}).map(([name, value]) => [
        name,
        { dataType: value.DataType, stringValue: value.StringValue },
      ]),
    ),
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${US}:123456789012:sync-inbox`,
    awsRegion: US,
  } as unknown as SQSRecord;
}

/** Runs `fn` and answers the structured log lines (Powertools' JSON) it wrote, metric lines left out. */
async function logged(fn: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> {
  const output = captureOutput();
  try {
    await fn();
  } finally {
    output.restore();
  }
  return output.lines
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.level === 'string' && typeof line.message === 'string');
}

const receiver = (): TestRegion => testRegion(US);
const inbox = (replica: SyncReplica, records: SQSRecord[]) =>
  processInbox(inboxContext(replica).ctx, { Records: records } as SQSEvent);

/** A record of a delta of `eu` with the `correlationId` attribute given as is (hostile values included). */
async function withAttribute(attributes: unknown, messageId: string): Promise<SQSRecord> {
  const eu = testRegion(EU);
  await eu.replica.update(`doc-${messageId}`, { kind: 'increment', field: 'n', by: 1 });
  return {
    ...delivered({ Message: encodeEnvelope(eu.published[0] as Envelope), TopicArn: 'x' }, messageId),
    messageAttributes: attributes,
  } as SQSRecord;
}

describe('a change traced from its publish to its merge in the other regions (correlation_id)', () => {
  it('logs the publish in the region that wrote it and the merge in the peer under one correlation_id', async () => {
    const { region: eu, sent } = writerRegion(EU);
    const us = receiver();
    const lines = await logged(async () => {
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
      expect(sent).toHaveLength(1);
      const response = await inbox(us.replica, [delivered(sent[0] as PublishCommandInput, 'm0')]);
      expect(response.batchItemFailures).toEqual([]);
    });
    const published = lines.find((line) => line.message === 'change published');
    const merged = lines.find((line) => line.message === 'change merged');
    expect(published).toMatchObject({ service: 'sync-writer', origin: EU, kind: 'delta' });
    expect(merged).toMatchObject({ service: 'sync-inbox', origin: EU, kind: 'delta', messageId: 'm0' });
    expect(published?.correlation_id).toEqual(expect.stringMatching(CHANGE_ID));
    expect(merged?.correlation_id).toBe(published?.correlation_id);
    // Carried beside the envelope, as a String message attribute; the envelope itself is unchanged.
    expect(sent[0]?.MessageAttributes?.correlationId).toEqual({
      DataType: 'String',
      StringValue: published?.correlation_id,
    });
    expect(Object.keys(JSON.parse(sent[0]?.Message as string) as object).sort()).toEqual([
      'b',
      'd',
      'h',
      'o',
      'v',
    ]);
    // Neither line names the document or a value.
    expect(
      findLeaks(
        lines.map((line) => JSON.stringify(line)),
        'room-7',
      ),
    ).toEqual([]);
    expect(
      findLeaks(
        lines.map((line) => JSON.stringify(line)),
        'ana',
      ),
    ).toEqual([]);
    expect((await us.replica.read('room-7')).get('members')).toBeDefined();
  });

  it('gives every change its own id, and each line of a batch merged in one write the id of its own record', async () => {
    let n = 0;
    const ids = ['0a1b2c3d-0000-4000-8000-000000000001', '0a1b2c3d-0000-4000-8000-000000000002'];
    const { region: eu, sent } = writerRegion(EU, { changeId: () => ids[n++] as string });
    // A region that is no peer of us-east-1: its change is refused (dead-lettered) under its own id.
    const stranger = writerRegion('ap-southeast-1', {
      changeId: () => '0a1b2c3d-0000-4000-8000-000000000003',
      peers: [EU, US],
    });
    const us = receiver();
    const lines = await logged(async () => {
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'bo' });
      await stranger.region.replica.update('room-7', { kind: 'add', field: 'members', element: 'cy' });
      await inbox(us.replica, [
        delivered(sent[0] as PublishCommandInput, 'm0'),
        delivered(sent[1] as PublishCommandInput, 'm1'),
        delivered(stranger.sent[0] as PublishCommandInput, 'm2'),
      ]);
      // The next batch carries no id: nothing of the last one is left on the logger.
      await inbox(
        us.replica,
        sqsEvent([encodeEnvelope((await eu.replica.fullState('room-7')) as Envelope)]).Records,
      );
    });
    expect(
      lines
        .filter((line) => line.service === 'sync-writer')
        .map((line) => [line.origin, line.correlation_id]),
    ).toEqual([
      [EU, ids[0]],
      [EU, ids[1]],
      ['ap-southeast-1', '0a1b2c3d-0000-4000-8000-000000000003'],
    ]);
    const inboxLines = lines.filter((line) => line.service === 'sync-inbox');
    expect(inboxLines.map((line) => [line.message, line.messageId, line.correlation_id])).toEqual([
      ['change merged', 'm0', ids[0]],
      ['change merged', 'm1', ids[1]],
      ['message dead-lettered', 'm2', '0a1b2c3d-0000-4000-8000-000000000003'],
      ['full state merged', 'm0', undefined],
    ]);
  });

  it('merges a message of an earlier release (no correlationId attribute), logging the merge without an id', async () => {
    const eu = testRegion(EU);
    await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
    const us = receiver();
    const lines = await logged(async () => {
      const response = await inbox(
        us.replica,
        sqsEvent([encodeEnvelope(eu.published[0] as Envelope)]).Records,
      );
      expect(response.batchItemFailures).toEqual([]);
    });
    expect(lines.map((line) => line.message)).toEqual(['change merged']);
    expect(lines[0]).not.toHaveProperty('correlation_id');
    expect((await us.replica.read('room-7')).get('members')).toBeDefined();
  });

  it.each([
    ['huge', { correlationId: { dataType: 'String', stringValue: `${LEAK_MARKER}${'x'.repeat(300_000)}` } }],
    ['not a UUID', { correlationId: { dataType: 'String', stringValue: `${LEAK_MARKER}-1234` } }],
    [
      'upper-case',
      { correlationId: { dataType: 'String', stringValue: '0A1B2C3D-0000-4000-8000-000000000001' } },
    ],
    ['a number', { correlationId: { dataType: 'Number', stringValue: '12345' } }],
    [
      'not a string',
      { correlationId: { dataType: 'String', stringValue: { toString: (): string => LEAK_MARKER } } },
    ],
    ['binary', { correlationId: { dataType: 'Binary', binaryValue: LEAK_MARKER } }],
    ['__proto__', { correlationId: { dataType: 'String', stringValue: '__proto__' } }],
    ['null', { correlationId: null }],
  ])(
    'merges a change whose correlationId attribute is %s without it, warning with the rule, never the value',
    async (_name, attributes) => {
      const record = await withAttribute(attributes, 'm0');
      const us = receiver();
      const output = captureOutput();
      let response;
      try {
        response = await inbox(us.replica, [record]);
      } finally {
        output.restore();
      }
      expect(response.batchItemFailures).toEqual([]);
      expect((await us.replica.read('doc-m0')).get('n')).toBeDefined();
      const lines = output.lines
        .join('')
        .split('\n')
        .filter((line) => line.startsWith('{'));
      const warning = lines.find((line) => line.includes('correlation id ignored'));
      expect(JSON.parse(warning as string)).toMatchObject({
        messageId: 'm0',
        reason: expect.stringMatching(/^correlationId \(message attribute\): expected /),
      });
      expect(lines.some((line) => line.includes('"correlation_id"'))).toBe(false);
      expect(findLeaks(output.lines)).toEqual([]);
      expect(output.lines.join('').length).toBeLessThan(5_000);
    },
  );

  it('reads the attribute through own properties only: `__proto__` and inherited keys are no id', async () => {
    const id = '0a1b2c3d-0000-4000-8000-000000000001';
    const proto = JSON.parse(
      `{"__proto__":{"correlationId":{"dataType":"String","stringValue":"${id}"}}}`,
    ) as unknown;
    const inherited = Object.create({ correlationId: { dataType: 'String', stringValue: id } }) as unknown;
    const inheritedValue = {
      correlationId: Object.create({ dataType: 'String', stringValue: id }) as unknown,
    };
    expect(correlationOfAttributes(proto)).toEqual({ kind: 'none' });
    expect(correlationOfAttributes(inherited)).toEqual({ kind: 'none' });
    expect(correlationOfAttributes(inheritedValue)).toMatchObject({ kind: 'refused' });
    expect(correlationOfAttributes(undefined)).toEqual({ kind: 'none' });
    expect(correlationOfAttributes('correlationId')).toEqual({ kind: 'none' });
    expect(correlationOfAttributes({ correlationId: { dataType: 'String', stringValue: id } })).toEqual({
      kind: 'id',
      id,
    });
    const record = await withAttribute(proto, 'm0');
    const us = receiver();
    const lines = await logged(() => inbox(us.replica, [record]));
    expect(lines.map((line) => line.message)).toEqual(['change merged']);
    expect(lines[0]).not.toHaveProperty('correlation_id');
  });

  it('logs a change saved but not published under its id (the anti-entropy repairs the peers)', async () => {
    const id = '0a1b2c3d-0000-4000-8000-000000000009';
    const eu = testRegion(EU, {
      publisher: { publish: () => Promise.reject(new Error(`SNS unavailable ${LEAK_MARKER}`)) },
      logger: createLogger('sync-writer'),
      changeId: () => id,
    });
    const output = captureOutput();
    try {
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
    } finally {
      output.restore();
    }
    expect(eu.calls.publishFailed).toBe(1);
    const [line] = output.lines
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(JSON.parse(line as string)).toMatchObject({
      level: 'WARN',
      message: 'change saved but not published: the anti-entropy repairs the peers',
      correlation_id: id,
      error: 'Error',
    });
    expect(findLeaks(output.lines)).toEqual([]);
  });

  it('sends the attribute only with a change: a full state goes without one', async () => {
    const { region: eu, sent } = writerRegion(EU);
    await logged(async () => {
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
      await eu.replica.publishFullState(['room-7']);
    });
    expect(sent.map((input) => Object.keys(input.MessageAttributes ?? {}).sort())).toEqual([
      ['correlationId', 'kind', 'origin'],
      ['kind', 'origin'],
    ]);
  });
});
