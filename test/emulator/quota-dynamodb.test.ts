import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { epochStart, type AllocationConfig } from '../../runtime/quota/config';
import { DynamodbLimiterStore } from '../../runtime/quota/dynamodb-store';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

const dynamodb = new DynamoDBClient({
  region: 'eu-central-1',
  endpoint: laneEndpoint(EMULATOR_LANE_ENDPOINT),
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const CONFIG: AllocationConfig = {
  windowSec: 60,
  activationDelayMs: 2100,
  regions: [
    { region: 'eu-central-1', weight: 1 },
    { region: 'us-east-1', weight: 2 },
  ],
  resources: [{ name: 'requests', limit: 90_000, burstSec: 1, floors: [] }],
};
const TABLE = 'quota-limits-emulator';

describe('the limiter on a DynamoDB table (the real adapter, the emulator)', () => {
  let store: DynamodbLimiterStore;
  beforeAll(async () => {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    store = new DynamodbLimiterStore(dynamodb, TABLE);
  });

  it('admits a second of its static share, refuses beyond, and admits again as the bucket refills', async () => {
    // No sync has run: eu-central-1's static share is 30 units/s (weights 1:2), its bucket one second of it.
    let t = epochStart(CONFIG, 29_000_000) + 5000;
    const quota = new QuotaLimiter({ store, config: CONFIG, region: 'eu-central-1', now: () => t });
    expect(await quota.consume('tenant-1', 'requests', 30)).toMatchObject({ admitted: true, limit: 30_000 });
    expect((await quota.consume('tenant-1', 'requests', 1)).admitted).toBe(false);
    for (let second = 1; second <= 3; second++) {
      t += 1000;
      expect((await quota.consume('tenant-1', 'requests', 30)).admitted).toBe(true);
      expect((await quota.consume('tenant-1', 'requests', 1)).admitted).toBe(false);
    }
    const item = await store.read('tenant-1', 'requests');
    expect(item?.bucket).toMatchObject({ tokens: 0, rate: 30_000 });
    expect(item?.counters?.consumed[0]).toBe(120_000);
  });

  it("enforces an operator's value over everything, and keeps its item from expiring", async () => {
    let t = epochStart(CONFIG, 29_000_000) + 5000;
    const quota = new QuotaLimiter({ store, config: CONFIG, region: 'eu-central-1', now: () => t });
    await quota.consume('tenant-2', 'requests', 1);
    expect((await store.read('tenant-2', 'requests'))?.operator).toBeUndefined();
    await dynamodb.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { pk: { S: 'tenant-2' }, sk: { S: 'requests' } },
        UpdateExpression: 'SET op = :v',
        ExpressionAttributeValues: { ':v': { N: '5000' } },
      }),
    );
    t += 2000;
    const fresh = new QuotaLimiter({ store, config: CONFIG, region: 'eu-central-1', now: () => t });
    expect(await fresh.consume('tenant-2', 'requests', 5)).toMatchObject({
      admitted: true,
      source: 'operator',
    });
    const { Item } = await dynamodb.send(
      new GetItemCommand({ TableName: TABLE, Key: { pk: { S: 'tenant-2' }, sk: { S: 'requests' } } }),
    );
    // An operator added the value without touching `ttl`: the next bucket write removed it.
    expect(Item?.ttl).toBeUndefined();
    expect(Item?.op?.N).toBe('5000');
  });
});
