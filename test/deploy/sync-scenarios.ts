import {
  DeleteItemCommand,
  PutItemCommand,
  QueryCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import {
  GetFunctionConfigurationCommand,
  LambdaClient,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { readField } from '../../runtime/crdt';
import { DocumentTooLargeError, MAX_DOCUMENT_BYTES } from '../../runtime/sync';
import { documentIn, deliver, pump, receiveAll, writer, type SyncRegion } from '../../scripts/lib/event-pump';
import { invokeDeployed } from '../../scripts/lib/local-estate';
import { redrive } from '../../scripts/lib/redrive';
import { emulatorClients, purge } from './topology';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

/** Drains a region's sync dead-letter queue: each message's body, reason code and reason. */
async function deadLettered(sqs: SQSClient, region: SyncRegion) {
  const found: Array<{ body?: string; code?: string; reason?: string }> = [];
  for (;;) {
    const batch = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: region.deadLetterUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 0,
        WaitTimeSeconds: 0,
      }),
    );
    if (!batch.Messages?.length) return found;
    for (const m of batch.Messages)
      found.push({
        body: m.Body,
        code: m.MessageAttributes?.reasonCode?.StringValue,
        reason: m.MessageAttributes?.reason?.StringValue,
      });
    await purge(sqs, region.deadLetterUrl);
  }
}

/**
 * The sync service's scenarios on a deployed bus, for any number of regions: the bundled consumer and
 * anti-entropy handlers, the test pumping the inboxes as the event-source mapping would.
 */
export function syncScenarios(endpoint: string, syncRegions: () => SyncRegion[]): void {
  // Digests are compared once a document was quiet this long in both regions (deployed: a minute).
  const overrides = { SYNC_SETTLE_MS: '1000' };
  const pumpAll = async (options: { duplicate?: boolean } = {}) => {
    for (const region of syncRegions()) await pump(endpoint, region, { ...options, overrides });
  };
  /** Pumps every inbox until a round delivers nothing: digests, then pulls, then full states. */
  const pumpUntilQuiet = async () => {
    for (let round = 0; round < 10; round++) {
      let delivered = 0;
      for (const region of syncRegions()) {
        const messages = await receiveAll(endpoint, region);
        delivered += messages.length;
        if (messages.length > 0) await deliver(endpoint, region, messages, { overrides });
      }
      if (delivered === 0) return;
    }
    throw new Error('the inboxes did not become quiet');
  };
  /** One anti-entropy pass of `region` once everything written is quiet, and the repairs it starts. */
  const antiEntropy = async (region: SyncRegion) => {
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const { response } = await invokeDeployed(
      endpoint,
      region.region,
      region.stackDir,
      region.antiEntropyFunction,
      { source: 'aws.events' },
      overrides,
    );
    await pumpUntilQuiet();
    return response as { messages: number; changed: number; swept: number };
  };
  const expectConverged = async (document: string, total: number) => {
    const views = await Promise.all(syncRegions().map((region) => documentIn(endpoint, region, document)));
    for (const view of views) expect(view).toEqual({ encoded: views[0]?.encoded, count: total });
  };
  const field = async (region: SyncRegion, document: string, name: string) => {
    const value = (await writer(endpoint, region).read(document)).get(name);
    return value ? readField(value) : undefined;
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
  const pair = () => {
    const [first, second] = syncRegions();
    if (!first || !second) throw new Error('two regions expected');
    return [first, second] as const;
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
    const [, cutOff] = pair();
    const total = await writeConcurrently('partitioned', 2, 5);
    for (const region of syncRegions()) if (region.region !== cutOff.region) await pump(endpoint, region);
    expect((await documentIn(endpoint, cutOff, 'partitioned')).count).toBeLessThan(total);
    await pump(endpoint, cutOff);
    await expectConverged('partitioned', total);
  });

  it('repairs a purged inbox with anti-entropy', async () => {
    const [first, second] = pair();
    const total = await writeConcurrently('purged', 2, 5, first);
    await purge(emulatorClients(endpoint, second.region).sqs, second.inboxUrl);
    await pumpAll();
    expect((await documentIn(endpoint, second, 'purged')).count).toBe(0);
    expect((await antiEntropy(first)).messages).toBeGreaterThan(0);
    await expectConverged('purged', total);
  });

  it('dead-letters an undecodable message and one claiming its own region, each with its reason', async () => {
    const [region, other] = pair();
    const sqs = emulatorClients(endpoint, region.region).sqs;
    await deadLettered(sqs, region);
    await sqs.send(new SendMessageCommand({ QueueUrl: region.inboxUrl, MessageBody: '{"v":1}' }));
    await writer(endpoint, region).update('own', { kind: 'increment', field: 'count', by: 3 });
    const own = (await receiveAll(endpoint, other))[0];
    // Hand the other region's copy of that delta back to its origin: refused, not double counted.
    await sqs.send(new SendMessageCommand({ QueueUrl: region.inboxUrl, MessageBody: own?.Body ?? '' }));
    await expect(deliver(endpoint, region, await receiveAll(endpoint, region))).resolves.toBe(0);
    expect((await documentIn(endpoint, region, 'own')).count).toBe(3);
    expect((await deadLettered(sqs, region)).map((m) => [m.body, m.code, m.reason]).sort()).toEqual(
      [
        ['{"v":1}', 'invalid-envelope', 'v (version): unsupported; expected 2 to 3'],
        [own?.Body, 'own-origin', 'o (origin): names this region; its own messages never come back'],
      ].sort(),
    );
    await pumpAll();
  });

  it('never lets a poison message block its document: the next message for it merges', async () => {
    const [first, second] = pair();
    const sqs = emulatorClients(endpoint, second.region).sqs;
    await writer(endpoint, first).update('poisoned', { kind: 'increment', field: 'count', by: 2 });
    const [good] = await receiveAll(endpoint, second);
    const poison = JSON.stringify({ ...JSON.parse(good?.Body ?? '{}'), b: { m: { count: { t: 'pn' } } } });
    await sqs.send(new SendMessageCommand({ QueueUrl: second.inboxUrl, MessageBody: poison }));
    await sqs.send(new SendMessageCommand({ QueueUrl: second.inboxUrl, MessageBody: good?.Body ?? '' }));
    await pump(endpoint, second);
    expect((await documentIn(endpoint, second, 'poisoned')).count).toBe(2);
    expect((await deadLettered(sqs, second)).map((m) => m.code)).toEqual(['invalid-envelope']);
    await pumpAll();
  });

  it('refuses, at write, a change that would make a document too large, and keeps the document as it was', async () => {
    const [first] = pair();
    const replica = writer(endpoint, first);
    await replica.update('oversized', { kind: 'set', field: 'small', value: 'kept' });
    const error = await replica
      .update('oversized', { kind: 'set', field: 'huge', value: 'x'.repeat(MAX_DOCUMENT_BYTES) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentTooLargeError);
    expect((error as DocumentTooLargeError).document).toBe('oversized');
    expect(await field(first, 'oversized', 'small')).toBe('kept');
    expect(await field(first, 'oversized', 'huge')).toBeUndefined();
    await pumpAll();
  });

  it('redrives a dead-lettered message after the fix, and converges', async () => {
    const [first, second] = pair();
    const lambda = new LambdaClient({ region: second.region, endpoint, credentials });
    const inbox = await lambda.send(
      new GetFunctionConfigurationCommand({ FunctionName: second.inboxFunction }),
    );
    const variables = inbox.Environment?.Variables ?? {};
    // A misconfiguration: the second region does not list the first as a peer.
    const without = second.peers.filter((r) => r !== first.region).join(',') || 'ap-east-1';
    const configure = (peers: string) =>
      lambda.send(
        new UpdateFunctionConfigurationCommand({
          FunctionName: second.inboxFunction,
          Environment: { Variables: { ...variables, SYNC_PEER_REGIONS: peers } },
        }),
      );
    await configure(without);
    try {
      await writer(endpoint, first).update('redriven', { kind: 'increment', field: 'count', by: 6 });
      await pump(endpoint, second);
      const sqs = emulatorClients(endpoint, second.region).sqs;
      const dead = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: second.deadLetterUrl,
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ['All'],
          VisibilityTimeout: 0, // a look: the message stays for the redrive
        }),
      );
      expect(dead.Messages?.map((m) => m.MessageAttributes?.reasonCode?.StringValue)).toEqual([
        'unknown-origin',
      ]);
      expect((await documentIn(endpoint, second, 'redriven')).count).toBe(0);
    } finally {
      await configure(variables.SYNC_PEER_REGIONS ?? '');
    }
    const sqs = emulatorClients(endpoint, second.region).sqs;
    const moved = await redrive(sqs, second.deadLetterUrl, second.inboxUrl, { waitSeconds: 0 });
    expect(moved).toEqual({ moved: 1, byReason: new Map([['unknown-origin', 1]]) });
    await pumpAll();
    await expectConverged('redriven', 6);
  });

  it('keeps the other fields repairing when two regions create a field as different types', async () => {
    const [first, second] = pair();
    await writer(endpoint, first).update('clash', { kind: 'increment', field: 'f', by: 4 });
    await writer(endpoint, second).update('clash', { kind: 'add', field: 'f', element: 'x' });
    await writer(endpoint, first).update('clash', {
      kind: 'set',
      field: 'label',
      value: 'from the first region',
    });
    // The label's delta is lost on the way to the second region.
    await purge(emulatorClients(endpoint, second.region).sqs, second.inboxUrl);
    await pumpAll();
    await antiEntropy(first);
    await antiEntropy(second);
    for (const region of syncRegions()) {
      expect({ region: region.region, f: await field(region, 'clash', 'f') }).toEqual({
        region: region.region,
        f: 4,
      });
      expect(await field(region, 'clash', 'label')).toBe('from the first region');
    }
    for (const region of syncRegions())
      expect(await deadLettered(emulatorClients(endpoint, region.region).sqs, region)).toEqual([]);
  });

  it('loses no update when a region’s document goes back to an older state (its items restored)', async () => {
    const [eu] = pair();
    const dynamodb = emulatorClients(endpoint, eu.region).dynamodb;
    const items = async () =>
      (
        await dynamodb.send(
          new QueryCommand({
            TableName: eu.stateTable,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': { S: 'doc#restored' } },
            ConsistentRead: true,
          }),
        )
      ).Items ?? [];
    const sameProcess = writer(endpoint, eu);
    await sameProcess.update('restored', { kind: 'increment', field: 'n', by: 5 });
    await sameProcess.update('restored', { kind: 'add', field: 's', element: 'x' });
    const snapshot = await items();
    await sameProcess.update('restored', { kind: 'increment', field: 'n', by: 5 });
    await sameProcess.update('restored', { kind: 'add', field: 's', element: 'y' });
    await pumpAll();
    for (const item of await items())
      await dynamodb.send(
        new DeleteItemCommand({
          TableName: eu.stateTable,
          Key: { pk: item.pk as AttributeValue, sk: item.sk as AttributeValue },
        }),
      );
    for (const item of snapshot)
      await dynamodb.send(new PutItemCommand({ TableName: eu.stateTable, Item: item }));
    await sameProcess.update('restored', { kind: 'increment', field: 'n', by: 7 }); // the same process
    await writer(endpoint, eu).update('restored', { kind: 'add', field: 's', element: 'z' }); // a new one
    await pumpAll();
    for (const region of syncRegions()) await antiEntropy(region);
    for (const region of syncRegions()) {
      expect({ region: region.region, n: await field(region, 'restored', 'n') }).toEqual({
        region: region.region,
        n: 17,
      });
      expect(await field(region, 'restored', 's')).toEqual(['x', 'y', 'z']);
    }
  });
}
