import { CreateTableCommand, DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startMoto } from '../../scripts/lib/moto';
import { probeDynamodbTable } from '../../runtime/health/dynamodb-probe';
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

describe('probeDynamodbTable against DynamoDB', () => {
  it('passes while the table serves and names it once it is gone', async () => {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: 'probe-me',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      }),
    );
    await expect(probeDynamodbTable(dynamodb, 'probe-me', 2_000)).resolves.toMatchObject({
      dependency: 'dynamodb:probe-me',
      healthy: true,
      detail: 'table ACTIVE',
    });
    await dynamodb.send(new DeleteTableCommand({ TableName: 'probe-me' }));
    await expect(probeDynamodbTable(dynamodb, 'probe-me', 2_000)).resolves.toMatchObject({
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
    const result = await probeDynamodbTable(silent, 'any', 300);
    expect(result.healthy).toBe(false);
    expect(result.latencyMs).toBeLessThan(5_000);
  });
});
