import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { assessHealth, verdictStatusCode, type ProbeResult } from '../../runtime/health/core';
import { probeDynamodbTable } from '../../runtime/health/dynamodb-probe';
import { checkHealth, reportHealth, type HealthDependencies } from '../../runtime/health/handler';

const probe = (dependency: string, healthy: boolean): ProbeResult => ({
  dependency,
  healthy,
  detail: healthy ? 'ok' : 'down',
  latencyMs: 3,
});
const now = new Date('2026-11-23T12:00:00Z');

/** A DynamoDB client whose DescribeTable answers with `answer` (or throws it). */
function fakeDynamodb(answer: () => Promise<unknown>): DynamoDBClient {
  return { send: answer } as unknown as DynamoDBClient;
}
const named = (name: string) => Object.assign(new Error(name), { name });

describe('assessHealth', () => {
  it('is healthy when every probe passed', () => {
    const verdict = assessHealth('eu-central-1', [probe('dynamodb:a', true), probe('s3:b', true)], now);
    expect(verdict).toMatchObject({
      status: 'healthy',
      region: 'eu-central-1',
      failing: [],
      checkedAt: now.toISOString(),
    });
    expect(verdictStatusCode(verdict)).toBe(200);
  });

  it('names every failing dependency, in probe order', () => {
    const verdict = assessHealth('us-east-1', [probe('x', false), probe('y', true), probe('z', false)], now);
    expect(verdict.status).toBe('unhealthy');
    expect(verdict.failing).toEqual(['x', 'z']);
    expect(verdictStatusCode(verdict)).toBe(503);
  });

  it('is unhealthy when nothing was probed', () => {
    const verdict = assessHealth('us-east-1', [], now);
    expect(verdictStatusCode(verdict)).toBe(503);
    expect(verdict.failing).toEqual(['(no dependencies probed)']);
  });
});

describe('probeDynamodbTable', () => {
  it('passes for an ACTIVE table and reports the latency the clock saw', async () => {
    let t = 100;
    const result = await probeDynamodbTable(
      fakeDynamodb(async () => ({ Table: { TableStatus: 'ACTIVE' } })),
      't',
      500,
      () => (t += 7),
    );
    expect(result).toEqual({ dependency: 'dynamodb:t', healthy: true, detail: 'table ACTIVE', latencyMs: 7 });
  });

  it('fails for a table being deleted', async () => {
    const result = await probeDynamodbTable(
      fakeDynamodb(async () => ({ Table: { TableStatus: 'DELETING' } })),
      't',
      500,
    );
    expect(result).toMatchObject({ healthy: false, detail: 'table DELETING' });
  });

  it('fails naming a missing table', async () => {
    const result = await probeDynamodbTable(
      fakeDynamodb(() => Promise.reject(named('ResourceNotFoundException'))),
      't',
      500,
    );
    expect(result).toMatchObject({ dependency: 'dynamodb:t', healthy: false, detail: 'table not found' });
  });

  it('fails with the timeout when the table does not answer in time', async () => {
    const result = await probeDynamodbTable(
      fakeDynamodb(() => Promise.reject(named('TimeoutError'))),
      't',
      250,
    );
    expect(result).toMatchObject({ healthy: false, detail: 'no answer within 250 ms' });
  });
});

describe('checkHealth', () => {
  const deps = (dynamodb: DynamoDBClient): HealthDependencies => ({
    config: { AWS_REGION: 'eu-central-1', STATE_TABLE_NAME: 'dev-region-state', PROBE_TIMEOUT_MS: 1000 },
    dynamodb,
    now: () => now,
  });

  it('answers 200 with the verdict when the state table serves', async () => {
    const response = await checkHealth(
      deps(fakeDynamodb(async () => ({ Table: { TableStatus: 'ACTIVE' } }))),
    );
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    expect(JSON.parse(response.body)).toMatchObject({ status: 'healthy', region: 'eu-central-1' });
  });

  it('answers 503 naming the state table when it is gone', async () => {
    const response = await checkHealth(
      deps(fakeDynamodb(() => Promise.reject(named('ResourceNotFoundException')))),
    );
    expect(response.statusCode).toBe(503);
    expect(JSON.parse(response.body)).toMatchObject({
      status: 'unhealthy',
      failing: ['dynamodb:dev-region-state'],
    });
  });
});

describe('checkHealth with what AWS may answer', () => {
  const deps = (dynamodb: DynamoDBClient): HealthDependencies => ({
    config: { AWS_REGION: 'eu-central-1', STATE_TABLE_NAME: 'dev-region-state', PROBE_TIMEOUT_MS: 1000 },
    dynamodb,
    now: () => now,
  });
  const awsError = (name: string, status: number) =>
    Object.assign(
      new Error(
        'User: arn:aws:sts::123456789012:assumed-role/dev-health-eu-central-1/x is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:eu-central-1:123456789012:table/dev-region-state',
      ),
      { name, $metadata: { httpStatusCode: status } },
    );

  it.each([
    ['access denied', awsError('AccessDeniedException', 400)],
    ['throttling', awsError('ThrottlingException', 400)],
    ['a 500', awsError('InternalServerError', 500)],
    ['a thrown string', 'boom' as unknown as Error],
  ])(
    'answers 503 with only the failing dependency on %s: no ARN, account id or message',
    async (_what, error) => {
      const response = await checkHealth(deps(fakeDynamodb(() => Promise.reject(error))));
      expect(response.statusCode).toBe(503);
      expect(Object.keys(JSON.parse(response.body)).sort()).toEqual([
        'checkedAt',
        'failing',
        'region',
        'status',
      ]);
      expect(JSON.parse(response.body).failing).toEqual(['dynamodb:dev-region-state']);
      expect(response.body).not.toMatch(/arn:|123456789012|not authorized|boom/);
    },
  );

  it('answers 200 with the same four fields and nothing of the probes', async () => {
    const response = await checkHealth(
      deps(fakeDynamodb(async () => ({ Table: { TableStatus: 'ACTIVE' } }))),
    );
    expect(Object.keys(JSON.parse(response.body)).sort()).toEqual([
      'checkedAt',
      'failing',
      'region',
      'status',
    ]);
  });

  it('describes a failed probe by error name and status only', async () => {
    const result = await probeDynamodbTable(
      fakeDynamodb(() => Promise.reject(awsError('AccessDeniedException', 400))),
      't',
      500,
    );
    expect(result.detail).toBe('AccessDeniedException (HTTP 400)');
  });
});

describe('reportHealth (the schedule)', () => {
  it("writes the region's verdict to the region-status table, expiring five minutes after the check", async () => {
    const sent: Array<{ input: { TableName?: string; Item?: Record<string, unknown> } }> = [];
    const dynamodb = {
      send: async (command: { input: { TableName?: string; Item?: Record<string, unknown> } }) => {
        sent.push(command);
        return 'TableName' in command.input && !command.input.Item
          ? { Table: { TableStatus: 'ACTIVE' } }
          : {};
      },
    } as unknown as DynamoDBClient;
    const verdict = await reportHealth({
      config: {
        AWS_REGION: 'us-east-1',
        STATE_TABLE_NAME: 't',
        REGION_STATUS_TABLE_NAME: 'dev-region-status',
        PROBE_TIMEOUT_MS: 1000,
      },
      dynamodb,
      now: () => now,
    });
    expect(verdict.status).toBe('healthy');
    const put = sent.find((c) => c.input.Item);
    expect(put?.input).toEqual({
      TableName: 'dev-region-status',
      Item: {
        region: { S: 'us-east-1' },
        status: { S: 'healthy' },
        checkedAt: { S: now.toISOString() },
        failing: { L: [] },
        expiresAt: { N: String(now.getTime() / 1000 + 300) },
      },
    });
  });

  it('refuses to run without a region-status table rather than drop the report', async () => {
    const dynamodb = fakeDynamodb(async () => ({ Table: { TableStatus: 'ACTIVE' } }));
    await expect(
      reportHealth({
        config: { AWS_REGION: 'us-east-1', STATE_TABLE_NAME: 't', PROBE_TIMEOUT_MS: 1000 },
        dynamodb,
        now: () => now,
      }),
    ).rejects.toThrow('REGION_STATUS_TABLE_NAME is not set');
  });
});
