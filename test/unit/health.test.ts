import {
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { assessHealth, verdictStatusCode, type ProbeResult } from '../../runtime/health/core';
import { probeDynamodbDataPlane } from '../../runtime/health/dynamodb-probe';
import { checkHealth, reportHealth, type HealthDependencies } from '../../runtime/health/handler';
import { HEALTH_ITEM_PREFIX, healthItemKey } from '../../runtime/health/probe-item';

const probe = (dependency: string, healthy: boolean): ProbeResult => ({
  dependency,
  healthy,
  detail: healthy ? 'ok' : 'down',
  latencyMs: 3,
});
const now = new Date('2026-11-23T12:00:00Z');
const nowSec = now.getTime() / 1000;

type Item = Record<string, AttributeValue>;
type Kind = 'PutItem' | 'GetItem' | 'DescribeTable';
interface Sent {
  readonly kind: Kind;
  readonly input: {
    TableName?: string;
    Item?: Item;
    Key?: Item;
    ConsistentRead?: boolean;
  };
  readonly abortSignal: AbortSignal | undefined;
}
/** What the fake answers to one command instead of serving it: an answer, or a rejection to throw. */
type Override = (sent: Sent) => Promise<unknown>;

const kindOf = (command: unknown): Kind => {
  if (command instanceof PutItemCommand) return 'PutItem';
  if (command instanceof GetItemCommand) return 'GetItem';
  if (command instanceof DescribeTableCommand) return 'DescribeTable';
  throw new Error('the fake serves PutItem, GetItem and DescribeTable only');
};

/**
 * A DynamoDB client recording every command it is sent. PutItem and GetItem serve an in-memory table (the
 * data plane), unless `overrides` answers for them; DescribeTable always says ACTIVE, as the control plane
 * does through a data-plane outage, so a probe that only describes the table passes where it must not.
 */
function fakeDynamodb(overrides: Partial<Record<'PutItem' | 'GetItem', Override>> = {}) {
  const sent: Sent[] = [];
  const items = new Map<string, Item>();
  const at = (table: string | undefined, key: Item) => `${table}|${key.pk?.S}|${key.sk?.S}|${key.region?.S}`;
  const client = {
    send: async (command: { input: Sent['input'] }, options?: { abortSignal?: AbortSignal }) => {
      const entry: Sent = {
        kind: kindOf(command),
        input: structuredClone(command.input),
        abortSignal: options?.abortSignal,
      };
      sent.push(entry);
      if (entry.kind === 'DescribeTable') return { Table: { TableStatus: 'ACTIVE' } };
      const override = overrides[entry.kind];
      if (override) return override(entry);
      if (entry.kind === 'PutItem') {
        const item = entry.input.Item ?? {};
        items.set(at(entry.input.TableName, item), item);
        return {};
      }
      const item = items.get(at(entry.input.TableName, entry.input.Key ?? {}));
      return item ? { Item: item } : {};
    },
  } as unknown as DynamoDBClient;
  return { client, sent, kinds: () => sent.map((s) => s.kind) };
}
const named = (name: string) => Object.assign(new Error(name), { name });
/** What AWS answers when the role may not act: the message quotes ARNs and the account id. */
const awsError = (name: string, status: number) =>
  Object.assign(
    new Error(
      'User: arn:aws:sts::123456789012:assumed-role/dev-health-eu-central-1/x is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:eu-central-1:123456789012:table/dev-region-state',
    ),
    { name, $metadata: { httpStatusCode: status } },
  );
const fail =
  (error: unknown): Override =>
  () =>
    Promise.reject(error);
/** Answers only once the shared deadline has passed, as a DynamoDB that accepted the request late. */
const answerAfterDeadline: Override = ({ abortSignal }) =>
  new Promise((resolve) => abortSignal?.addEventListener('abort', () => resolve({})));
/** Refuses to start once the deadline has passed, as the SDK does with an aborted signal. */
const honourDeadline: Override = ({ abortSignal }) =>
  abortSignal?.aborted ? Promise.reject(abortSignal.reason) : Promise.resolve({});

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

describe('healthItemKey', () => {
  it("is the region's own key, which no sync document (pk doc#<document>, sk crdt) can have", () => {
    const key = healthItemKey('eu-central-1');
    expect(key).toEqual({ pk: 'health#eu-central-1', sk: 'probe' });
    expect(HEALTH_ITEM_PREFIX).toBe('health#');
    expect(key.pk.startsWith('doc#')).toBe(false);
    expect(key.sk).not.toBe('crdt');
  });

  it('refuses an empty region rather than share one key between regions', () => {
    expect(() => healthItemKey('')).toThrow('expected a region');
  });
});

describe('probeDynamodbDataPlane', () => {
  const key = { pk: { S: 'health#eu-central-1' }, sk: { S: 'probe' } };
  const probeWith = (client: DynamoDBClient, timeoutMs = 500) =>
    probeDynamodbDataPlane(
      client,
      'dev-region-state',
      'eu-central-1',
      timeoutMs,
      () => now.getTime(),
      () => 'nonce-1',
    );

  it("writes the region's probe item, reads it back strongly consistent, and passes on its nonce", async () => {
    const dynamodb = fakeDynamodb();
    let t = now.getTime();
    const result = await probeDynamodbDataPlane(
      dynamodb.client,
      'dev-region-state',
      'eu-central-1',
      500,
      () => (t += 7) - 7,
      () => 'nonce-1',
    );
    expect(result).toEqual({
      dependency: 'dynamodb:dev-region-state',
      healthy: true,
      detail: 'wrote and read back the probe item',
      latencyMs: 7,
    });
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
    expect(dynamodb.sent[0]?.input).toEqual({
      TableName: 'dev-region-state',
      Item: {
        ...key,
        nonce: { S: 'nonce-1' },
        checkedAt: { S: now.toISOString() },
        expiresAt: { N: String(nowSec + 300) },
      },
    });
    expect(dynamodb.sent[1]?.input).toEqual({
      TableName: 'dev-region-state',
      Key: key,
      ConsistentRead: true,
    });
  });

  it('writes a fresh random nonce on every probe', async () => {
    const dynamodb = fakeDynamodb();
    const first = await probeDynamodbDataPlane(dynamodb.client, 't', 'us-east-1', 500);
    const second = await probeDynamodbDataPlane(dynamodb.client, 't', 'us-east-1', 500);
    expect([first.healthy, second.healthy]).toEqual([true, true]);
    const nonces = dynamodb.sent.filter((s) => s.kind === 'PutItem').map((s) => s.input.Item?.nonce?.S);
    expect(nonces).toHaveLength(2);
    for (const nonce of nonces)
      expect(nonce).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(nonces[0]).not.toBe(nonces[1]);
  });

  it.each([
    ['another nonce', { Item: { ...key, nonce: { S: 'an-older-probe' } } }],
    ['no item', {}],
    ['an item without a nonce', { Item: key }],
  ])('fails when the read returns %s: the write was not seen', async (_what, answer) => {
    const dynamodb = fakeDynamodb({ GetItem: () => Promise.resolve(answer) });
    const result = await probeWith(dynamodb.client);
    expect(result).toEqual({
      dependency: 'dynamodb:dev-region-state',
      healthy: false,
      detail: 'read did not return the probe just written',
      latencyMs: 0,
    });
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
  });

  it.each([
    ['a missing table', named('ResourceNotFoundException'), 'table not found'],
    ['access denied', awsError('AccessDeniedException', 400), 'AccessDeniedException (HTTP 400)'],
    ['throttling', awsError('ThrottlingException', 400), 'ThrottlingException (HTTP 400)'],
    ['a 500', awsError('InternalServerError', 500), 'InternalServerError (HTTP 500)'],
    ['a thrown string', 'boom', 'non-error thrown'],
  ])('fails on %s in the write, never reading', async (_what, error, detail) => {
    const dynamodb = fakeDynamodb({ PutItem: fail(error) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ dependency: 'dynamodb:dev-region-state', healthy: false, detail });
    expect(dynamodb.kinds()).toEqual(['PutItem']);
  });

  it.each([
    ['a missing table', named('ResourceNotFoundException'), 'table not found'],
    ['access denied', awsError('AccessDeniedException', 400), 'AccessDeniedException (HTTP 400)'],
    ['a 500', awsError('InternalServerError', 500), 'InternalServerError (HTTP 500)'],
  ])('fails on %s in the read after a write that succeeded', async (_what, error, detail) => {
    const dynamodb = fakeDynamodb({ GetItem: fail(error) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ healthy: false, detail });
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
  });

  it('describes a failure by error name and status, never by the message', async () => {
    const dynamodb = fakeDynamodb({ PutItem: fail(awsError('AccessDeniedException', 400)) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ healthy: false, detail: 'AccessDeniedException (HTTP 400)' });
    expect(JSON.stringify(result)).not.toMatch(/arn:|123456789012|not authorized/);
  });

  it.each(['TimeoutError', 'AbortError'])(
    'fails with the timeout when the write ends in %s, never reading',
    async (name) => {
      const dynamodb = fakeDynamodb({ PutItem: fail(named(name)) });
      const result = await probeWith(dynamodb.client, 250);
      expect(result).toMatchObject({ healthy: false, detail: 'no answer within 250 ms' });
      expect(dynamodb.kinds()).toEqual(['PutItem']);
    },
  );

  it('fails with the timeout when the read does not answer in time', async () => {
    const dynamodb = fakeDynamodb({
      GetItem: ({ abortSignal }) =>
        new Promise((_resolve, reject) =>
          abortSignal?.addEventListener('abort', () => reject(abortSignal.reason)),
        ),
    });
    const result = await probeWith(dynamodb.client, 20);
    expect(result).toMatchObject({ healthy: false, detail: 'no answer within 20 ms' });
  });

  it('gives the write and the read one deadline: a write that used it up leaves the read none', async () => {
    const dynamodb = fakeDynamodb({ PutItem: answerAfterDeadline, GetItem: honourDeadline });
    const result = await probeWith(dynamodb.client, 20);
    expect(result).toMatchObject({ healthy: false, detail: 'no answer within 20 ms' });
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
    const [write, read] = dynamodb.sent;
    expect(write?.abortSignal).toBeInstanceOf(AbortSignal);
    expect(read?.abortSignal).toBe(write?.abortSignal);
  });
});

const deps = (dynamodb: DynamoDBClient): HealthDependencies => ({
  config: { AWS_REGION: 'eu-central-1', STATE_TABLE_NAME: 'dev-region-state', PROBE_TIMEOUT_MS: 1000 },
  dynamodb,
  now: () => now,
});
const PUBLIC_FIELDS = ['checkedAt', 'failing', 'region', 'status'];

describe('checkHealth', () => {
  it("answers 200 once the region's probe item is written and read back", async () => {
    const dynamodb = fakeDynamodb();
    const response = await checkHealth(deps(dynamodb.client));
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    expect(JSON.parse(response.body)).toEqual({
      status: 'healthy',
      region: 'eu-central-1',
      checkedAt: now.toISOString(),
      failing: [],
    });
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
    expect(dynamodb.sent[0]?.input).toMatchObject({
      TableName: 'dev-region-state',
      Item: {
        pk: { S: 'health#eu-central-1' },
        sk: { S: 'probe' },
        checkedAt: { S: now.toISOString() },
        expiresAt: { N: String(nowSec + 300) },
      },
    });
  });

  it('answers 503 naming the state table when it is gone', async () => {
    const dynamodb = fakeDynamodb({ PutItem: fail(named('ResourceNotFoundException')) });
    const response = await checkHealth(deps(dynamodb.client));
    expect(response.statusCode).toBe(503);
    expect(JSON.parse(response.body)).toMatchObject({
      status: 'unhealthy',
      failing: ['dynamodb:dev-region-state'],
    });
  });

  it('answers 503 when the read does not return the write, naming the table and nothing of the probe', async () => {
    const dynamodb = fakeDynamodb({ GetItem: () => Promise.resolve({}) });
    const response = await checkHealth(deps(dynamodb.client));
    expect(response.statusCode).toBe(503);
    expect(Object.keys(JSON.parse(response.body)).sort()).toEqual(PUBLIC_FIELDS);
    expect(JSON.parse(response.body).failing).toEqual(['dynamodb:dev-region-state']);
    expect(response.body).not.toMatch(/probe|nonce|health#/);
  });
});

describe('checkHealth with what AWS may answer', () => {
  it.each([
    ['access denied', 'PutItem', awsError('AccessDeniedException', 400)],
    ['throttling', 'PutItem', awsError('ThrottlingException', 400)],
    ['a 500', 'PutItem', awsError('InternalServerError', 500)],
    ['a thrown string', 'PutItem', 'boom'],
    ['access denied', 'GetItem', awsError('AccessDeniedException', 400)],
    ['a 500', 'GetItem', awsError('InternalServerError', 500)],
  ] as const)(
    'answers 503 with only the failing dependency on %s in %s: no ARN, account id or message',
    async (_what, kind, error) => {
      const dynamodb = fakeDynamodb({ [kind]: fail(error) });
      const response = await checkHealth(deps(dynamodb.client));
      expect(response.statusCode).toBe(503);
      expect(Object.keys(JSON.parse(response.body)).sort()).toEqual(PUBLIC_FIELDS);
      expect(JSON.parse(response.body).failing).toEqual(['dynamodb:dev-region-state']);
      expect(response.body).not.toMatch(/arn:|123456789012|not authorized|boom|Exception|HTTP/);
    },
  );

  it('answers 200 with the same four fields and nothing of the probes', async () => {
    const dynamodb = fakeDynamodb();
    const response = await checkHealth(deps(dynamodb.client));
    expect(response.statusCode).toBe(200);
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem']);
    expect(Object.keys(JSON.parse(response.body)).sort()).toEqual(PUBLIC_FIELDS);
    expect(response.body).not.toMatch(/probe|nonce|latency|dynamodb:/);
  });
});

describe('reportHealth (the schedule)', () => {
  const config = {
    AWS_REGION: 'us-east-1',
    STATE_TABLE_NAME: 't',
    REGION_STATUS_TABLE_NAME: 'dev-region-status',
    PROBE_TIMEOUT_MS: 1000,
  };
  const statusItem = (dynamodb: ReturnType<typeof fakeDynamodb>) =>
    dynamodb.sent.find((s) => s.kind === 'PutItem' && s.input.TableName === 'dev-region-status')?.input;

  it("writes the region's verdict to the region-status table, expiring five minutes after the check", async () => {
    const dynamodb = fakeDynamodb();
    const verdict = await reportHealth({ config, dynamodb: dynamodb.client, now: () => now });
    expect(verdict.status).toBe('healthy');
    expect(dynamodb.kinds()).toEqual(['PutItem', 'GetItem', 'PutItem']);
    expect(statusItem(dynamodb)).toEqual({
      TableName: 'dev-region-status',
      Item: {
        region: { S: 'us-east-1' },
        status: { S: 'healthy' },
        checkedAt: { S: now.toISOString() },
        failing: { L: [] },
        expiresAt: { N: String(nowSec + 300) },
      },
    });
  });

  it('records the region unhealthy when the data plane fails while the table still describes as ACTIVE', async () => {
    const dynamodb = fakeDynamodb({
      PutItem: (sent) =>
        sent.input.TableName === 't'
          ? Promise.reject(awsError('InternalServerError', 500))
          : Promise.resolve({}),
    });
    const verdict = await reportHealth({ config, dynamodb: dynamodb.client, now: () => now });
    expect(verdict.status).toBe('unhealthy');
    expect(statusItem(dynamodb)?.Item).toMatchObject({
      status: { S: 'unhealthy' },
      failing: { L: [{ S: 'dynamodb:t' }] },
    });
  });

  it('refuses to run without a region-status table rather than drop the report', async () => {
    const dynamodb = fakeDynamodb();
    await expect(
      reportHealth({
        config: { AWS_REGION: 'us-east-1', STATE_TABLE_NAME: 't', PROBE_TIMEOUT_MS: 1000 },
        dynamodb: dynamodb.client,
        now: () => now,
      }),
    ).rejects.toThrow('REGION_STATUS_TABLE_NAME is not set');
  });
});
