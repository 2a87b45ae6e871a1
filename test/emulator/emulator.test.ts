import {
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  GetItemCommand,
} from '@aws-sdk/client-dynamodb';
import { startMoto } from '../../scripts/lib/moto';
import { probeDynamodbDataPlane } from '../../runtime/health/dynamodb-probe';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

const endpoint = laneEndpoint(EMULATOR_LANE_ENDPOINT);
const dynamodb = new DynamoDBClient({
  region: 'eu-central-1',
  endpoint,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});

describe('the emulator lane', () => {
  it('serves the AWS APIs on a loopback port', () => {
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('says how to install moto_server when it is missing', async () => {
    await expect(startMoto('/nonexistent/moto_server')).rejects.toThrow(
      'moto_server (the AWS emulator) is not installed: install it with pip install "moto[server]"',
    );
  });
});

describe('probeDynamodbDataPlane against DynamoDB', () => {
  it("passes once it reads back the region's item it wrote, and names the table once it is gone", async () => {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: 'probe-me',
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
    await expect(probeDynamodbDataPlane(dynamodb, 'probe-me', 'eu-central-1', 2_000)).resolves.toMatchObject({
      dependency: 'dynamodb:probe-me',
      healthy: true,
      detail: 'wrote and read back the probe item',
    });
    const stored = await dynamodb.send(
      new GetItemCommand({
        TableName: 'probe-me',
        Key: { pk: { S: 'health#eu-central-1' }, sk: { S: 'probe' } },
        ConsistentRead: true,
      }),
    );
    expect(Number(stored.Item?.probes?.N)).toBeGreaterThan(0);
    expect(stored.Item?.expiresAt?.N).toMatch(/^\d+$/);
    // Concurrent probes (Route 53 checkers, the schedule, several instances) each see at least their own count.
    const before = Number(stored.Item?.probes?.N);
    const concurrent = await Promise.all([
      probeDynamodbDataPlane(dynamodb, 'probe-me', 'eu-central-1', 2_000),
      probeDynamodbDataPlane(dynamodb, 'probe-me', 'eu-central-1', 2_000),
    ]);
    expect(concurrent.map((r) => [r.healthy, r.detail])).toEqual([
      [true, 'wrote and read back the probe item'],
      [true, 'wrote and read back the probe item'],
    ]);
    const after = await dynamodb.send(
      new GetItemCommand({
        TableName: 'probe-me',
        Key: { pk: { S: 'health#eu-central-1' }, sk: { S: 'probe' } },
        ConsistentRead: true,
      }),
    );
    expect(Number(after.Item?.probes?.N)).toBe(before + 2);
    await dynamodb.send(new DeleteTableCommand({ TableName: 'probe-me' }));
    await expect(probeDynamodbDataPlane(dynamodb, 'probe-me', 'eu-central-1', 2_000)).resolves.toMatchObject({
      healthy: false,
      detail: 'table not found',
    });
  });

  it('fails within its timeout when DynamoDB does not answer', async () => {
    const silent = new DynamoDBClient({
      region: 'eu-central-1',
      endpoint: 'http://127.0.0.1:9', // discard port: nothing listens
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
    const result = await probeDynamodbDataPlane(silent, 'any', 'eu-central-1', 300);
    expect(result.healthy).toBe(false);
    expect(result.latencyMs).toBeLessThan(5_000);
  });
});
