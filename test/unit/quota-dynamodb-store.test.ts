import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { DynamodbLimiterStore } from '../../runtime/quota/dynamodb-store';
import type { BucketWrite } from '../../runtime/quota/store';

/** A client that records each command's input and answers with what the test scripts. */
function fakeClient(answer: (input: UpdateItemCommandInput) => unknown) {
  const sent: UpdateItemCommandInput[] = [];
  const client = {
    send: async (command: { input: UpdateItemCommandInput }) => {
      sent.push(command.input);
      return answer(command.input);
    },
  } as unknown as DynamoDBClient;
  return { client, sent };
}

const conflict = (item: Record<string, unknown>) =>
  new ConditionalCheckFailedException({
    message: 'The conditional request failed',
    $metadata: {},
    Item: item as never,
  });

const write = (overrides: Partial<BucketWrite> = {}): BucketWrite => ({
  entity: 'tenant-1',
  resource: 'requests',
  expectedVersion: 4,
  bucket: { tokens: 1000, refilledAt: 5000, rate: 30_000 },
  counters: { window: 7, demand: [1, 0, 0, 0, 0], consumed: [1, 0] },
  trip: 'trip-a',
  ...overrides,
});

describe('DynamodbLimiterStore', () => {
  it("reads a retried bucket write that finds its own trip as written (the SDK's first attempt landed)", async () => {
    const { client } = fakeClient(() => {
      throw conflict({ v: { N: '5' }, lt: { S: 'trip-a' } });
    });
    expect(await new DynamodbLimiterStore(client, 'limits').writeBucket(write())).toBe(true);
  });

  it("reads another writer's bucket write as a lost race", async () => {
    const { client } = fakeClient(() => {
      throw conflict({ v: { N: '5' }, lt: { S: 'trip-b' } });
    });
    expect(await new DynamodbLimiterStore(client, 'limits').writeBucket(write())).toBe(false);
  });

  it('never lets an item that holds a limit expire, and lets one without expire only if none was added since', async () => {
    const { client, sent } = fakeClient(() => ({}));
    const store = new DynamodbLimiterStore(client, 'limits');
    await store.writeBucket(write());
    expect(sent[0]?.UpdateExpression).toMatch(/ REMOVE #ttl$/);
    await store.writeBucket(write({ expiresAtSec: 99 }));
    expect(sent[1]?.UpdateExpression).toContain('#ttl = :ttl');
    expect(sent[1]?.ConditionExpression).toBe(
      'v = :expected AND attribute_not_exists(op) AND attribute_not_exists(st) AND attribute_not_exists(se)',
    );
    expect(sent.every((input) => input.ExpressionAttributeNames?.['#ttl'] === 'ttl')).toBe(true);
  });

  it('writes an override only over the one read, never touching an operator value', async () => {
    const { client, sent } = fakeClient(() => ({}));
    const store = new DynamodbLimiterStore(client, 'limits');
    await store.writeOverride('tenant-1', 'requests', { epoch: 9, prior: 1, share: 2 }, 8);
    await store.writeOverride('tenant-1', 'requests', { epoch: 9, prior: 1, share: 2 }, undefined);
    expect(sent.map((input) => input.ConditionExpression)).toEqual([
      'se = :read',
      'attribute_not_exists(se)',
    ]);
    for (const input of sent)
      expect(input.UpdateExpression).toBe('SET se = :se, sp = :sp, ss = :ss REMOVE #ttl');
  });

  it('reports an override another pass changed as changed', async () => {
    const { client } = fakeClient(() => {
      throw conflict({ se: { N: '10' } });
    });
    const store = new DynamodbLimiterStore(client, 'limits');
    expect(await store.writeOverride('t', 'requests', { epoch: 9, prior: 1, share: 2 }, 8)).toBe('changed');
  });
});
