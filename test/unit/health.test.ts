import {
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
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
type Kind = 'UpdateItem' | 'PutItem' | 'GetItem' | 'DescribeTable';
interface Sent {
  readonly kind: Kind;
  readonly input: {
    TableName?: string;
    Item?: Item;
    Key?: Item;
    ConsistentRead?: boolean;
    UpdateExpression?: string;
    ExpressionAttributeValues?: Item;
    ReturnValues?: string;
  };
  readonly abortSignal: AbortSignal | undefined;
}
/**
 * What the fake answers to one command instead of serving it: an answer, or a rejection to throw.
 * `serve` serves the command from the in-memory table at the moment it is called.
 */
type Override = (sent: Sent, serve: () => unknown) => Promise<unknown>;

const kindOf = (command: unknown): Kind => {
  if (command instanceof UpdateItemCommand) return 'UpdateItem';
  if (command instanceof PutItemCommand) return 'PutItem';
  if (command instanceof GetItemCommand) return 'GetItem';
  if (command instanceof DescribeTableCommand) return 'DescribeTable';
  throw new Error('the fake serves UpdateItem, PutItem, GetItem and DescribeTable only');
};

/**
 * Applies `ADD a :x, ... SET b = :y, ...` to `item` as DynamoDB does, in one step (so atomically), and
 * returns the attributes it changed with their new values (what `ReturnValues: 'UPDATED_NEW'` answers).
 */
function applyUpdate(item: Item, expression: string, values: Item): Item {
  const updated: Item = {};
  const value = (name: string) => {
    const v = values[name];
    if (!v) throw new Error(`the fake: ${name} is not in ExpressionAttributeValues`);
    return v;
  };
  for (const [, action, clause] of expression.matchAll(/\b(ADD|SET)\s+(.*?)(?=\s+\b(?:ADD|SET)\b|$)/g)) {
    for (const part of (clause ?? '').split(',').map((p) => p.trim())) {
      if (action === 'SET') {
        const [, attribute, name] = /^(\w+)\s*=\s*(:\w+)$/.exec(part) ?? [];
        if (!attribute || !name) throw new Error(`the fake cannot SET ${part}`);
        updated[attribute] = value(name);
      } else {
        const [, attribute, name] = /^(\w+)\s+(:\w+)$/.exec(part) ?? [];
        const by = name ? value(name).N : undefined;
        if (!attribute || by === undefined) throw new Error(`the fake cannot ADD ${part}`);
        const current = item[attribute];
        if (current && current.N === undefined)
          throw Object.assign(new Error('An operand in the update expression has an incorrect data type'), {
            name: 'ValidationException',
          });
        updated[attribute] = { N: String(Number(current?.N ?? '0') + Number(by)) };
      }
    }
  }
  Object.assign(item, updated);
  return structuredClone(updated);
}

/**
 * A DynamoDB client recording every command it is sent. UpdateItem (with ADD and SET), PutItem and GetItem
 * serve an in-memory table (the data plane), unless `overrides` answers for them; DescribeTable always says
 * ACTIVE, as the control plane does through a data-plane outage, so a probe that only describes the table
 * passes where it must not.
 */
function fakeDynamodb(overrides: Partial<Record<Exclude<Kind, 'DescribeTable'>, Override>> = {}) {
  const sent: Sent[] = [];
  const items = new Map<string, Item>();
  const at = (table: string | undefined, key: Item) => `${table}|${key.pk?.S}|${key.sk?.S}|${key.region?.S}`;
  const serve = (entry: Sent): unknown => {
    const { TableName, Key = {} } = entry.input;
    if (entry.kind === 'PutItem') {
      const item = structuredClone(entry.input.Item ?? {});
      items.set(at(TableName, item), item);
      return {};
    }
    if (entry.kind === 'UpdateItem') {
      const item = items.get(at(TableName, Key)) ?? structuredClone(Key);
      const updated = applyUpdate(
        item,
        entry.input.UpdateExpression ?? '',
        entry.input.ExpressionAttributeValues ?? {},
      );
      items.set(at(TableName, Key), item);
      return entry.input.ReturnValues === 'UPDATED_NEW' ? { Attributes: updated } : {};
    }
    const item = items.get(at(TableName, Key));
    return item ? { Item: structuredClone(item) } : {};
  };
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
      return override ? override(entry, () => serve(entry)) : serve(entry);
    },
  } as unknown as DynamoDBClient;
  const stored = (table: string, key: Item) => items.get(at(table, key));
  const seed = (table: string, item: Item) => void items.set(at(table, item), structuredClone(item));
  return { client, sent, kinds: () => sent.map((s) => s.kind), stored, seed };
}

/**
 * Holds every command it overrides until the test serves it: `pending` lists them as they are sent, and
 * `serve` answers one from the table at that moment, so a test decides the order the table sees them in.
 */
function held() {
  const pending: { readonly sent: Sent; readonly serve: () => void }[] = [];
  const override: Override = (sent, serve) =>
    new Promise((resolve) => pending.push({ sent, serve: () => resolve(serve()) }));
  return { pending, override };
}
/** Lets every promise that can settle, settle (the probes move on to their next command). */
const settle = () => new Promise((resolve) => setImmediate(resolve));
const named = (name: string) => Object.assign(new Error(name), { name });
/** What AWS answers when the role may not act: the message quotes ARNs and the account id. */
const awsError = (name: string, status: number) =>
  Object.assign(
    new Error(
      'User: arn:aws:sts::123456789012:assumed-role/dev-health-eu-central-1/x is not authorized to perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:eu-central-1:123456789012:table/dev-region-state',
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
    probeDynamodbDataPlane(client, 'dev-region-state', 'eu-central-1', timeoutMs, () => now.getTime());
  const served = {
    dependency: 'dynamodb:dev-region-state',
    healthy: true,
    detail: 'wrote and read back the probe item',
  };
  const staleRead = {
    dependency: 'dynamodb:dev-region-state',
    healthy: false,
    detail: 'read did not return the probe just written',
  };
  const probesStored = (dynamodb: ReturnType<typeof fakeDynamodb>) =>
    dynamodb.stored('dev-region-state', key)?.probes;

  it("adds one to the region's probe count, reads it back strongly consistent, and passes on its count", async () => {
    const dynamodb = fakeDynamodb();
    let t = now.getTime();
    const result = await probeDynamodbDataPlane(
      dynamodb.client,
      'dev-region-state',
      'eu-central-1',
      500,
      () => (t += 7) - 7,
    );
    expect(result).toEqual({ ...served, latencyMs: 7 });
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
    expect(dynamodb.sent[0]?.input).toEqual({
      TableName: 'dev-region-state',
      Key: key,
      UpdateExpression: 'ADD probes :one SET checkedAt = :at, expiresAt = :expires',
      ExpressionAttributeValues: {
        ':one': { N: '1' },
        ':at': { S: now.toISOString() },
        ':expires': { N: String(nowSec + 300) },
      },
      ReturnValues: 'UPDATED_NEW',
    });
    expect(dynamodb.sent[1]?.input).toEqual({
      TableName: 'dev-region-state',
      Key: key,
      ConsistentRead: true,
    });
    expect(dynamodb.stored('dev-region-state', key)).toEqual({
      ...key,
      probes: { N: '1' },
      checkedAt: { S: now.toISOString() },
      expiresAt: { N: String(nowSec + 300) },
    });
  });

  it('counts every probe: each one after the first passes on a higher count', async () => {
    const dynamodb = fakeDynamodb();
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await probeWith(dynamodb.client));
    expect(results.map((r) => r.healthy)).toEqual([true, true, true]);
    expect(probesStored(dynamodb)).toEqual({ N: '3' });
  });

  it('passes on an item a nonce-writing probe left behind: the count starts there at one', async () => {
    const dynamodb = fakeDynamodb();
    dynamodb.seed('dev-region-state', { ...key, nonce: { S: 'an-older-probe' }, expiresAt: { N: '1' } });
    await expect(probeWith(dynamodb.client)).resolves.toMatchObject(served);
    expect(probesStored(dynamodb)).toEqual({ N: '1' });
  });

  it("passes two probes whose writes both land before either reads (the other's write only raises the count)", async () => {
    const table = held();
    const dynamodb = fakeDynamodb({ UpdateItem: table.override, GetItem: table.override });
    const a = probeWith(dynamodb.client);
    const b = probeWith(dynamodb.client);
    await settle();
    const [writeA, writeB] = table.pending;
    expect([writeA?.sent.kind, writeB?.sent.kind]).toEqual(['UpdateItem', 'UpdateItem']);
    writeA?.serve(); // A writes 1
    writeB?.serve(); // B writes 2
    await settle();
    const reads = table.pending.slice(2);
    const readOf = (write: typeof writeA) =>
      reads.find((r) => r.sent.abortSignal === write?.sent.abortSignal);
    expect(reads.map((r) => r.sent.kind)).toEqual(['GetItem', 'GetItem']);
    readOf(writeA)?.serve(); // A reads 2, not the 1 it wrote
    readOf(writeB)?.serve();
    await expect(Promise.all([a, b])).resolves.toMatchObject([served, served]);
    expect(probesStored(dynamodb)).toEqual({ N: '2' });
  });

  // Every order the table can see two concurrent probes' write and read in (each probe writes, then reads).
  it.each([
    ['A write', 'A read', 'B write', 'B read'],
    ['A write', 'B write', 'A read', 'B read'],
    ['A write', 'B write', 'B read', 'A read'],
    ['B write', 'A write', 'A read', 'B read'],
    ['B write', 'A write', 'B read', 'A read'],
    ['B write', 'B read', 'A write', 'A read'],
  ])('passes both concurrent probes served in the order %s, %s, %s, %s', async (...order) => {
    const table = held();
    const dynamodb = fakeDynamodb({ UpdateItem: table.override, GetItem: table.override });
    const probes = { A: probeWith(dynamodb.client), B: probeWith(dynamodb.client) };
    await settle();
    const signals = { A: table.pending[0]?.sent.abortSignal, B: table.pending[1]?.sent.abortSignal };
    for (const step of order) {
      const [who, what] = step.split(' ') as ['A' | 'B', 'write' | 'read'];
      const kind = what === 'write' ? 'UpdateItem' : 'GetItem';
      const command = table.pending.find((p) => p.sent.abortSignal === signals[who] && p.sent.kind === kind);
      expect(command).toBeDefined();
      command?.serve();
      await settle();
    }
    await expect(Promise.all([probes.A, probes.B])).resolves.toMatchObject([served, served]);
  });

  it.each([
    ['a lower count', { Item: { ...key, probes: { N: '0' } } }],
    ['no item', {}],
    ['an item without a count', { Item: key }],
    ['an item with the nonce and no count', { Item: { ...key, nonce: { S: 'an-older-probe' } } }],
    ['a count that is not a number', { Item: { ...key, probes: { S: '1' } } }],
  ])('fails when the read returns %s: the write was not seen', async (_what, answer) => {
    const dynamodb = fakeDynamodb({ GetItem: () => Promise.resolve(answer) });
    await expect(probeWith(dynamodb.client)).resolves.toEqual({ ...staleRead, latencyMs: 0 });
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
  });

  it('fails when a later read returns less than an earlier probe wrote', async () => {
    const dynamodb = fakeDynamodb({
      GetItem: () => Promise.resolve({ Item: { ...key, probes: { N: '6' } } }),
    });
    dynamodb.seed('dev-region-state', { ...key, probes: { N: '6' } });
    await expect(probeWith(dynamodb.client)).resolves.toMatchObject(staleRead); // wrote 7, read 6
  });

  it.each([
    ['no attributes', {}],
    ['no count', { Attributes: { checkedAt: { S: now.toISOString() } } }],
    ['a count of zero', { Attributes: { probes: { N: '0' } } }],
  ])('fails when the write answers with %s, never reading', async (_what, answer) => {
    const dynamodb = fakeDynamodb({ UpdateItem: () => Promise.resolve(answer) });
    await expect(probeWith(dynamodb.client)).resolves.toMatchObject({
      healthy: false,
      detail: 'write did not return the probe count',
    });
    expect(dynamodb.kinds()).toEqual(['UpdateItem']);
  });

  it.each([
    ['a missing table', named('ResourceNotFoundException'), 'table not found'],
    ['access denied', awsError('AccessDeniedException', 400), 'AccessDeniedException (HTTP 400)'],
    ['throttling', awsError('ThrottlingException', 400), 'ThrottlingException (HTTP 400)'],
    ['a 500', awsError('InternalServerError', 500), 'InternalServerError (HTTP 500)'],
    ['a thrown string', 'boom', 'non-error thrown'],
  ])('fails on %s in the write, never reading', async (_what, error, detail) => {
    const dynamodb = fakeDynamodb({ UpdateItem: fail(error) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ dependency: 'dynamodb:dev-region-state', healthy: false, detail });
    expect(dynamodb.kinds()).toEqual(['UpdateItem']);
  });

  it.each([
    ['a missing table', named('ResourceNotFoundException'), 'table not found'],
    ['access denied', awsError('AccessDeniedException', 400), 'AccessDeniedException (HTTP 400)'],
    ['a 500', awsError('InternalServerError', 500), 'InternalServerError (HTTP 500)'],
  ])('fails on %s in the read after a write that succeeded', async (_what, error, detail) => {
    const dynamodb = fakeDynamodb({ GetItem: fail(error) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ healthy: false, detail });
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
  });

  it('describes a failure by error name and status, never by the message', async () => {
    const dynamodb = fakeDynamodb({ UpdateItem: fail(awsError('AccessDeniedException', 400)) });
    const result = await probeWith(dynamodb.client);
    expect(result).toMatchObject({ healthy: false, detail: 'AccessDeniedException (HTTP 400)' });
    expect(JSON.stringify(result)).not.toMatch(/arn:|123456789012|not authorized/);
  });

  it.each(['TimeoutError', 'AbortError'])(
    'fails with the timeout when the write ends in %s, never reading',
    async (name) => {
      const dynamodb = fakeDynamodb({ UpdateItem: fail(named(name)) });
      const result = await probeWith(dynamodb.client, 250);
      expect(result).toMatchObject({ healthy: false, detail: 'no answer within 250 ms' });
      expect(dynamodb.kinds()).toEqual(['UpdateItem']);
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
    const dynamodb = fakeDynamodb({
      UpdateItem: (sent, serve) => answerAfterDeadline(sent, serve).then(serve),
      GetItem: honourDeadline,
    });
    const result = await probeWith(dynamodb.client, 20);
    expect(result).toMatchObject({ healthy: false, detail: 'no answer within 20 ms' });
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
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
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
    expect(dynamodb.sent[0]?.input).toMatchObject({
      TableName: 'dev-region-state',
      Key: { pk: { S: 'health#eu-central-1' }, sk: { S: 'probe' } },
      ExpressionAttributeValues: {
        ':at': { S: now.toISOString() },
        ':expires': { N: String(nowSec + 300) },
      },
    });
  });

  it('answers 503 naming the state table when it is gone', async () => {
    const dynamodb = fakeDynamodb({ UpdateItem: fail(named('ResourceNotFoundException')) });
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
    expect(response.body).not.toMatch(/probe|nonce|count|health#/);
  });
});

describe('checkHealth with what AWS may answer', () => {
  it.each([
    ['access denied', 'UpdateItem', awsError('AccessDeniedException', 400)],
    ['throttling', 'UpdateItem', awsError('ThrottlingException', 400)],
    ['a 500', 'UpdateItem', awsError('InternalServerError', 500)],
    ['a thrown string', 'UpdateItem', 'boom'],
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
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem']);
    expect(Object.keys(JSON.parse(response.body)).sort()).toEqual(PUBLIC_FIELDS);
    expect(response.body).not.toMatch(/probe|nonce|count|latency|dynamodb:/);
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
    expect(dynamodb.kinds()).toEqual(['UpdateItem', 'GetItem', 'PutItem']);
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
    const dynamodb = fakeDynamodb({ UpdateItem: fail(awsError('InternalServerError', 500)) });
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
