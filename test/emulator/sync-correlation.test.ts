import { captureOutput } from '../../runtime/lib/leak-check';
import { createLogger } from '../../runtime/lib/logger';
import { CHANGE_ID, SnsPublisher, SyncReplica } from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';
import {
  closeRegions,
  drainQueue,
  emulatedRegions,
  sqsRecord,
  testClock,
  type EmulatedRegion,
} from '../support/sync-emulator';

/*
 * A change's correlation id on the emulator (moto): published by the real SnsPublisher as an SNS message
 * attribute, delivered raw to the peer's SQS inbox (as modules/sync-bus.ts subscribes it), read by the
 * inbox and logged with the merge.
 */

jest.setTimeout(120_000);

const endpoint = laneEndpoint(EMULATOR_LANE_ENDPOINT);
const EU = 'eu-central-1';
const US = 'us-east-1';
const START = Math.floor(Date.now() / 1000) * 1000;

const regions: EmulatedRegion[] = [];
afterAll(() => closeRegions(regions));

describe('a change traced through SNS and SQS on the emulator', () => {
  it('arrives in the peer with its correlationId attribute, and its merge is logged under the id it was published with', async () => {
    const clock = testClock(START);
    const [eu, us] = (await emulatedRegions([EU, US], {
      endpoint,
      suffix: `corr${START.toString(36)}`,
      clock,
    })) as [EmulatedRegion, EmulatedRegion];
    regions.push(eu, us);
    // A writer of eu-central-1 as a Lambda would make it: the region's table and topic, its own logger.
    const writer = new SyncReplica({
      region: EU,
      peers: [US],
      store: eu.store,
      publisher: new SnsPublisher(eu.sns, eu.topicArn),
      now: clock.now,
      logger: createLogger('sync-writer'),
    });
    const output = captureOutput();
    try {
      await writer.update('room-7', { kind: 'add', field: 'members', element: 'ana' });
      const messages = await drainQueue(us.sqs, us.inboxUrl);
      expect(messages).toHaveLength(1);
      const attribute = messages[0]?.MessageAttributes?.correlationId;
      expect(attribute?.DataType).toBe('String');
      expect(attribute?.StringValue).toMatch(CHANGE_ID);
      const response = await processInbox(us.ctx, { Records: messages.map((m) => sqsRecord(m, US)) });
      expect(response.batchItemFailures).toEqual([]);
    } finally {
      output.restore();
    }
    const lines = output.lines
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const published = lines.find((line) => line.message === 'change published');
    const merged = lines.find((line) => line.message === 'change merged');
    expect(published?.correlation_id).toEqual(expect.stringMatching(CHANGE_ID));
    expect(merged).toMatchObject({ correlation_id: published?.correlation_id, origin: EU, kind: 'delta' });
    expect((await us.replica.read('room-7')).get('members')).toBeDefined();
  });
});
