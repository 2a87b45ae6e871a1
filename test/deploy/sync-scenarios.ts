import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { documentIn, deliver, pump, receiveAll, writer, type SyncRegion } from '../../scripts/lib/event-pump';
import { invokeDeployed } from '../../scripts/lib/local-estate';
import { emulatorClients, purge } from './topology';

/**
 * The sync service's scenarios on a deployed bus, for any number of regions: the bundled consumer and
 * anti-entropy handlers, the test pumping the inboxes as the event-source mapping would.
 */
export function syncScenarios(endpoint: string, syncRegions: () => SyncRegion[]): void {
  const pumpAll = async (options: { duplicate?: boolean } = {}) => {
    for (const region of syncRegions()) await pump(endpoint, region, options);
  };
  const expectConverged = async (document: string, total: number) => {
    const views = await Promise.all(syncRegions().map((region) => documentIn(endpoint, region, document)));
    for (const view of views) expect(view).toEqual({ encoded: views[0]?.encoded, count: total });
  };
  /** `writers` concurrent writers per region, each adding 1 to `count` `times` times. */
  const writeConcurrently = async (document: string, writers: number, times: number, only?: SyncRegion) => {
    const targets = only ? [only] : syncRegions();
    await Promise.all(
      targets.flatMap((region) =>
        Array.from({ length: writers }, async () => {
          const replica = writer(endpoint, region);
          for (let i = 0; i < times; i++)
            await replica.update(document, { kind: 'increment', field: 'count', by: 1 });
        }),
      ),
    );
    return targets.length * writers * times;
  };

  it('loses no increment from several concurrent writers per region, and converges', async () => {
    const total = await writeConcurrently('concurrent', 4, 10);
    await pumpAll();
    await expectConverged('concurrent', total);
  });

  it('merges every message delivered twice without double counting', async () => {
    const total = await writeConcurrently('duplicated', 2, 5);
    await pumpAll({ duplicate: true });
    await expectConverged('duplicated', total);
  });

  it('converges when messages arrive in reverse order', async () => {
    const total = await writeConcurrently('reversed', 1, 12);
    for (const region of syncRegions()) {
      const messages = await receiveAll(endpoint, region);
      for (const message of [...messages].reverse()) await deliver(endpoint, region, [message]);
    }
    await expectConverged('reversed', total);
  });

  it('heals a partition: a region whose inbox was not drained catches up when it is', async () => {
    const cutOff = syncRegions()[1];
    if (!cutOff) throw new Error('two regions expected');
    const total = await writeConcurrently('partitioned', 2, 5);
    // One region is cut off: every inbox but its own is drained.
    for (const region of syncRegions()) if (region.region !== cutOff.region) await pump(endpoint, region);
    const during = await documentIn(endpoint, cutOff, 'partitioned');
    expect(during.count).toBeLessThan(total);
    await pump(endpoint, cutOff);
    await expectConverged('partitioned', total);
  });

  it('repairs a purged inbox with anti-entropy', async () => {
    const [first, second] = syncRegions();
    if (!first || !second) throw new Error('two regions expected');
    const total = await writeConcurrently('purged', 2, 5, first);
    await purge(emulatorClients(endpoint, second.region).sqs, second.inboxUrl);
    await pumpAll();
    expect((await documentIn(endpoint, second, 'purged')).count).toBe(0);
    const { response } = await invokeDeployed(
      endpoint,
      first.region,
      first.stackDir,
      first.antiEntropyFunction,
      {
        source: 'aws.events',
      },
    );
    expect((response as { documents: number }).documents).toBeGreaterThan(0);
    await pumpAll();
    await expectConverged('purged', total);
  });

  it('dead-letters an undecodable message with its reason, and ignores its own region', async () => {
    const [region] = syncRegions();
    if (!region) throw new Error('a region expected');
    const sqs = emulatorClients(endpoint, region.region).sqs;
    await sqs.send(new SendMessageCommand({ QueueUrl: region.inboxUrl, MessageBody: '{"v":9}' }));
    await writer(endpoint, region).update('own', { kind: 'increment', field: 'count', by: 3 });
    const own = (await receiveAll(endpoint, syncRegions()[1] as SyncRegion))[0];
    // Hand the other region's copy of that delta back to its origin: it must be ignored, not double counted.
    await sqs.send(new SendMessageCommand({ QueueUrl: region.inboxUrl, MessageBody: own?.Body ?? '' }));
    const messages = await receiveAll(endpoint, region);
    await expect(deliver(endpoint, region, messages)).resolves.toBe(0);
    expect((await documentIn(endpoint, region, 'own')).count).toBe(3);
    const deadLetterUrl = region.inboxUrl.replace(/inbox$/, 'inbox-dlq');
    const dead = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: deadLetterUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
      }),
    );
    expect(dead.Messages?.map((m) => [m.Body, m.MessageAttributes?.reason?.StringValue])).toEqual([
      ['{"v":9}', 'unsupported protocol version 9; expected 1'],
    ]);
  });
}
