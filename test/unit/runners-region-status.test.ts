import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { isDeepStrictEqual } from 'node:util';
import {
  AUDIT_ENTRIES,
  ConcurrentChangeError,
  LastActiveRegionError,
  RegionStatusTable,
  StatusesUnreadError,
  UnknownRegionError,
} from '../../runtime/runners/region-status';

type Item = Record<string, AttributeValue>;
/** A copy made in this realm (structuredClone's objects have another realm's prototypes under jest). */
const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
interface Condition {
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
}

/**
 * The region-status table in memory (key `region`), honouring the conditions the code writes:
 * `attribute_exists(#a)`, `attribute_not_exists(#a)` and `#a = :v`, joined by AND. Anything else throws.
 */
class FakeStatusTable {
  readonly items = new Map<string, Item>();
  readonly sent: string[] = [];
  /** Runs before each write is checked: a test plays another writer here. */
  beforeWrite: (() => void) | undefined;
  unprocessedOnce: string[] = [];
  /** Rounds that leave `unprocessedOnce` unprocessed (then it is cleared). */
  unprocessedRounds = 1;

  readonly client = {
    send: async (command: unknown) => this.send(command),
  } as unknown as DynamoDBClient;

  put(item: Item) {
    this.items.set(item.region?.S ?? '', clone(item));
  }

  private holds(item: Item | undefined, condition: Condition): boolean {
    const names = condition.ExpressionAttributeNames ?? {};
    const values = condition.ExpressionAttributeValues ?? {};
    const name = (token: string) => names[token] ?? token;
    return (condition.ConditionExpression ?? '').split(' AND ').every((atom) => {
      const exists = /^attribute_exists\((#\w+)\)$/.exec(atom);
      if (exists) return item?.[name(exists[1] ?? '')] !== undefined;
      const absent = /^attribute_not_exists\((#\w+)\)$/.exec(atom);
      if (absent) return item?.[name(absent[1] ?? '')] === undefined;
      const equals = /^(#\w+) = (:\w+)$/.exec(atom);
      if (equals) return isDeepStrictEqual(item?.[name(equals[1] ?? '')], values[equals[2] ?? '']);
      throw new Error(`fake table: unsupported condition ${atom}`);
    });
  }

  private async send(command: unknown): Promise<unknown> {
    await Promise.resolve();
    if (command instanceof BatchGetItemCommand) {
      this.sent.push('BatchGetItem');
      const [table, request] = Object.entries(command.input.RequestItems ?? {})[0] ?? [];
      const keys = (request?.Keys ?? []).map((key) => key.region?.S ?? '');
      const held = keys.filter((key) => this.unprocessedOnce.includes(key));
      if (--this.unprocessedRounds <= 0) this.unprocessedOnce = [];
      const answered = keys.filter((key) => !held.includes(key));
      return {
        Responses: {
          [table ?? '']: answered.flatMap((key) => {
            const item = this.items.get(key);
            return item ? [clone(item)] : [];
          }),
        },
        ...(held.length > 0
          ? { UnprocessedKeys: { [table ?? '']: { Keys: held.map((key) => ({ region: { S: key } })) } } }
          : {}),
      };
    }
    if (command instanceof PutItemCommand) {
      this.sent.push('PutItem');
      this.beforeWrite?.();
      const item = command.input.Item ?? {};
      const key = item.region?.S ?? '';
      if (!this.holds(this.items.get(key), command.input))
        throw new ConditionalCheckFailedException({ message: 'conditional', $metadata: {} });
      this.put(item);
      return {};
    }
    if (command instanceof TransactWriteItemsCommand) {
      this.sent.push('TransactWriteItems');
      this.beforeWrite?.();
      const actions = command.input.TransactItems ?? [];
      const codes = actions.map((action) => {
        const put = action.Put;
        const check = action.ConditionCheck;
        const key = put ? (put.Item?.region?.S ?? '') : (check?.Key?.region?.S ?? '');
        return this.holds(this.items.get(key), put ?? check ?? {}) ? 'None' : 'ConditionalCheckFailed';
      });
      if (codes.some((code) => code !== 'None'))
        throw new TransactionCanceledException({
          message: 'cancelled',
          $metadata: {},
          CancellationReasons: codes.map((Code) => ({ Code })),
        });
      for (const action of actions) if (action.Put?.Item) this.put(action.Put.Item);
      return {};
    }
    throw new Error('fake table: unexpected command');
  }
}

const NOW_MS = Date.parse('2030-01-01T00:00:00Z');
const NOW_SEC = NOW_MS / 1000;
const REGIONS = ['eu-central-1', 'us-east-1', 'ap-southeast-2'];
const ALICE = 'arn:aws:sts::123456789012:assumed-role/operator/alice';
const BOB = 'arn:aws:sts::123456789012:assumed-role/operator/bob';

const health = (region: string, status: string, expiresAt = NOW_SEC + 120): Item => ({
  region: { S: region },
  status: { S: status },
  checkedAt: { S: '2029-12-31T23:59:30.000Z' },
  failing: { L: status === 'healthy' ? [] : [{ S: 'dynamodb:state' }] },
  expiresAt: { N: String(expiresAt) },
});

const operator = (region: string, status: string, version: number, audit = 0): Item => ({
  region: { S: `operator:${region}` },
  status: { S: status },
  changedBy: { S: ALICE },
  changedAt: { S: '2029-12-01T00:00:00.000Z' },
  reason: { S: 'earlier' },
  audit: {
    L: Array.from({ length: audit }, (_, i) => ({
      M: { status: { S: status }, by: { S: ALICE }, at: { S: `t${i}` }, reason: { S: `change ${i}` } },
    })),
  },
  version: { N: String(version) },
});

function setup(regions = REGIONS, random = () => 0.5) {
  const table = new FakeStatusTable();
  for (const region of regions) table.put(health(region, 'healthy'));
  const sleeps: number[] = [];
  const statuses = new RegionStatusTable({
    client: table.client,
    tableName: 'dev-region-status',
    regions,
    now: () => NOW_MS,
    retry: { attempts: 4, baseMs: 1, capMs: 1, sleep: async () => undefined },
    unprocessedRetry: {
      attempts: 4,
      baseMs: 100,
      capMs: 300,
      random,
      sleep: async (ms) => {
        sleeps.push(ms);
        table.sent.push(`sleep ${ms}`);
      },
    },
  });
  return { table, statuses, sleeps };
}

describe('RegionStatusTable.readStatuses', () => {
  it('reads every region in one batch and makes a missing, expired or unhealthy verdict out', async () => {
    const { table, statuses } = setup(['eu-central-1', 'us-east-1', 'ap-southeast-2', 'eu-west-1']);
    table.items.delete('us-east-1');
    table.put(health('ap-southeast-2', 'healthy', NOW_SEC - 1));
    table.put(health('eu-west-1', 'unhealthy'));
    const read = await statuses.readStatuses(['eu-central-1', 'us-east-1', 'ap-southeast-2', 'eu-west-1']);
    expect(table.sent).toEqual(['BatchGetItem']);
    expect([...read.values()].map((r) => [r.region, r.health.state, r.status])).toEqual([
      ['eu-central-1', 'healthy', 'active'],
      ['us-east-1', 'missing', 'out'],
      ['ap-southeast-2', 'expired', 'out'],
      ['eu-west-1', 'unhealthy', 'out'],
    ]);
  });

  it('reads a verdict expiring this very second, or with no expiry at all, as expired', async () => {
    const { table, statuses } = setup();
    table.put(health('eu-central-1', 'healthy', NOW_SEC));
    const noExpiry = health('us-east-1', 'healthy');
    delete noExpiry.expiresAt;
    table.put(noExpiry);
    const read = await statuses.readStatuses(['eu-central-1', 'us-east-1']);
    expect(read.get('eu-central-1')?.health.state).toBe('expired');
    expect(read.get('us-east-1')?.health.state).toBe('expired');
  });

  it("takes the operator's word for a healthy region, active when the operator never spoke", async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'draining', 3));
    const read = await statuses.readStatuses(REGIONS);
    expect(read.get('eu-central-1')).toMatchObject({
      status: 'active',
      operator: { status: 'active', version: 0 },
    });
    expect(read.get('us-east-1')).toMatchObject({
      status: 'draining',
      operator: { status: 'draining', changedBy: ALICE, reason: 'earlier', version: 3 },
    });
  });

  it('makes an unhealthy region out whatever the operator says', async () => {
    const { table, statuses } = setup();
    table.put(health('us-east-1', 'unhealthy'));
    table.put(operator('us-east-1', 'active', 1));
    expect((await statuses.readStatuses(REGIONS)).get('us-east-1')?.status).toBe('out');
  });

  it('reads an operator status it does not know as draining, and says so', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'paused', 2));
    expect((await statuses.readStatuses(REGIONS)).get('us-east-1')).toMatchObject({
      status: 'draining',
      operator: { status: 'draining', unreadable: true },
    });
  });

  it('asks again for the keys the table left unprocessed, after a jittered backoff', async () => {
    const { table, statuses } = setup();
    table.unprocessedOnce = ['us-east-1'];
    const read = await statuses.readStatuses(REGIONS);
    expect(table.sent).toEqual(['BatchGetItem', 'sleep 50', 'BatchGetItem']);
    expect(read.get('us-east-1')?.status).toBe('active');
  });

  it('backs off exponentially with full jitter, capped, between rounds of unprocessed keys', async () => {
    const { table, statuses, sleeps } = setup(REGIONS, () => 0.999);
    table.unprocessedOnce = ['us-east-1', 'operator:eu-central-1'];
    table.unprocessedRounds = 3;
    const read = await statuses.readStatuses(REGIONS);
    expect(table.sent.filter((name) => name === 'BatchGetItem')).toHaveLength(4);
    // ceilings 100, 200, 300 (capped), each scaled by the jitter
    expect(sleeps).toEqual([99, 199, 299]);
    expect(read.get('us-east-1')?.status).toBe('active');
    const jittered = setup(REGIONS, () => 0);
    jittered.table.unprocessedOnce = ['us-east-1'];
    await jittered.statuses.readStatuses(REGIONS);
    expect(jittered.sleeps).toEqual([0]);
  });

  it('gives up, retryable, when keys stay unprocessed through every round', async () => {
    const { table, statuses, sleeps } = setup();
    table.unprocessedOnce = ['us-east-1'];
    table.unprocessedRounds = 10;
    await expect(statuses.readStatuses(REGIONS)).rejects.toBeInstanceOf(StatusesUnreadError);
    expect(table.sent.filter((name) => name === 'BatchGetItem')).toHaveLength(4);
    expect(sleeps).toEqual([50, 100, 150]);
  });
});

describe('RegionStatusTable.drain and restore', () => {
  it('writes the operator item with who, when, why, an audit entry and the next version, never an expiry', async () => {
    const { table, statuses } = setup();
    const change = await statuses.drain('us-east-1', { arn: ALICE }, 'maintenance');
    expect(change).toMatchObject({ region: 'us-east-1', from: 'active', to: 'draining', changed: true });
    expect(table.items.get('operator:us-east-1')).toEqual({
      region: { S: 'operator:us-east-1' },
      status: { S: 'draining' },
      changedBy: { S: ALICE },
      changedAt: { S: '2030-01-01T00:00:00.000Z' },
      reason: { S: 'maintenance' },
      audit: {
        L: [
          {
            M: {
              status: { S: 'draining' },
              by: { S: ALICE },
              at: { S: '2030-01-01T00:00:00.000Z' },
              reason: { S: 'maintenance' },
            },
          },
        ],
      },
      version: { N: '1' },
    });
    expect((await statuses.readStatuses(REGIONS)).get('us-east-1')?.status).toBe('draining');
  });

  it("records the caller's source identity and organisation beside the ARN, in the item and its audit", async () => {
    const { table, statuses } = setup();
    const actor = { arn: ALICE, sourceIdentity: 'alice@example.com', principalOrgId: 'o-a1b2c3d4e5' };
    const change = await statuses.drain('us-east-1', actor, 'maintenance');
    expect(change.operator).toMatchObject({
      changedBy: ALICE,
      sourceIdentity: 'alice@example.com',
      principalOrgId: 'o-a1b2c3d4e5',
    });
    const item = table.items.get('operator:us-east-1');
    expect(item).toMatchObject({
      changedBy: { S: ALICE },
      sourceIdentity: { S: 'alice@example.com' },
      principalOrgId: { S: 'o-a1b2c3d4e5' },
    });
    expect(item?.audit?.L?.[0]?.M).toMatchObject({
      by: { S: ALICE },
      sourceIdentity: { S: 'alice@example.com' },
      principalOrgId: { S: 'o-a1b2c3d4e5' },
    });
    // Read back, and kept in the audit when a later caller has neither.
    await statuses.restore('us-east-1', { arn: BOB }, 'done');
    const read = (await statuses.readStatuses(REGIONS)).get('us-east-1');
    expect(read?.operator.audit).toEqual([
      {
        status: 'draining',
        by: ALICE,
        sourceIdentity: 'alice@example.com',
        principalOrgId: 'o-a1b2c3d4e5',
        at: '2030-01-01T00:00:00.000Z',
        reason: 'maintenance',
      },
      { status: 'active', by: BOB, at: '2030-01-01T00:00:00.000Z', reason: 'done' },
    ]);
    expect(read?.operator.changedBy).toBe(BOB);
    expect(read?.operator.sourceIdentity).toBeUndefined();
    expect(table.items.get('operator:us-east-1')?.sourceIdentity).toBeUndefined();
  });

  it('restores a drained region, the audit newest last', async () => {
    const { table, statuses } = setup();
    await statuses.drain('us-east-1', { arn: ALICE }, 'maintenance');
    const change = await statuses.restore('us-east-1', { arn: BOB }, 'done');
    expect(change).toMatchObject({ from: 'draining', to: 'active', changed: true });
    const item = table.items.get('operator:us-east-1');
    expect(item?.version).toEqual({ N: '2' });
    expect(item?.audit?.L?.map((entry) => [entry.M?.status?.S, entry.M?.by?.S, entry.M?.reason?.S])).toEqual([
      ['draining', ALICE, 'maintenance'],
      ['active', BOB, 'done'],
    ]);
  });

  it('replaces an operator item carrying an expiresAt with one that has none (a drain never expires)', async () => {
    const { table, statuses } = setup();
    table.put({ ...operator('us-east-1', 'active', 4), expiresAt: { N: String(NOW_SEC + 60) } });
    await statuses.drain('us-east-1', { arn: ALICE }, 'maintenance');
    expect(table.items.get('operator:us-east-1')?.expiresAt).toBeUndefined();
    expect(table.items.get('operator:us-east-1')?.version).toEqual({ N: '5' });
  });

  it('answers a repeated drain or a restore of an active region as unchanged and writes nothing', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'draining', 3));
    expect(await statuses.drain('us-east-1', { arn: BOB }, 'again')).toMatchObject({
      changed: false,
      from: 'draining',
    });
    expect(await statuses.restore('eu-central-1', { arn: BOB }, 'again')).toMatchObject({
      changed: false,
      to: 'active',
    });
    expect(table.sent.filter((name) => name !== 'BatchGetItem')).toEqual([]);
    expect(table.items.get('operator:us-east-1')?.version).toEqual({ N: '3' });
  });

  it('keeps the last 50 audit entries, dropping the oldest', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'active', 50, AUDIT_ENTRIES));
    await statuses.drain('us-east-1', { arn: ALICE }, 'the newest');
    const audit = table.items.get('operator:us-east-1')?.audit?.L ?? [];
    expect(audit).toHaveLength(AUDIT_ENTRIES);
    expect(audit[0]?.M?.reason?.S).toBe('change 1');
    expect(audit[AUDIT_ENTRIES - 1]?.M?.reason?.S).toBe('the newest');
  });

  it('refuses to drain the last operator-active region, naming it and writing nothing', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'draining', 1));
    table.put(operator('ap-southeast-2', 'draining', 1));
    const refusal = statuses.drain('eu-central-1', { arn: ALICE }, 'maintenance');
    await expect(refusal).rejects.toBeInstanceOf(LastActiveRegionError);
    await expect(refusal).rejects.toMatchObject({
      code: 'last-active-region',
      reason: expect.stringContaining('eu-central-1'),
    });
    expect(table.items.has('operator:eu-central-1')).toBe(false);
  });

  it('refuses to drain the only configured region', async () => {
    const { statuses } = setup(['eu-central-1']);
    await expect(statuses.drain('eu-central-1', { arn: ALICE }, 'maintenance')).rejects.toBeInstanceOf(
      LastActiveRegionError,
    );
  });

  it('counts operator status, not health: a drain leaving only an unhealthy operator-active region passes', async () => {
    const { table, statuses } = setup(['eu-central-1', 'us-east-1']);
    table.put(health('us-east-1', 'unhealthy'));
    await expect(statuses.drain('eu-central-1', { arn: ALICE }, 'maintenance')).resolves.toMatchObject({
      changed: true,
    });
  });

  it('lets exactly one of two concurrent drains of the last two active regions through the same region pass', async () => {
    const { table, statuses } = setup(['eu-central-1', 'us-east-1']);
    const results = await Promise.allSettled([
      statuses.drain('eu-central-1', { arn: ALICE }, 'first'),
      statuses.drain('us-east-1', { arn: BOB }, 'second'),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused?.status === 'rejected' && refused.reason).toBeInstanceOf(LastActiveRegionError);
    const read = await statuses.readStatuses(['eu-central-1', 'us-east-1']);
    expect([...read.values()].filter((r) => r.operator.status === 'active')).toHaveLength(1);
    expect(table.sent.filter((name) => name === 'TransactWriteItems')).toHaveLength(2);
  });

  it('conditions the drain on every other operator-active region being unchanged since read', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'active', 7));
    table.put(operator('ap-southeast-2', 'draining', 2));
    let first = true;
    table.beforeWrite = () => {
      if (!first) return;
      first = false;
      // Another operator, through this region, drains us-east-1 between the read and the write.
      table.put(operator('us-east-1', 'draining', 8));
    };
    await expect(statuses.drain('eu-central-1', { arn: ALICE }, 'maintenance')).rejects.toBeInstanceOf(
      LastActiveRegionError,
    );
    expect(table.sent).toEqual(['BatchGetItem', 'TransactWriteItems', 'BatchGetItem']);
  });

  it('reads again and retries when the region changed under it, keeping the other writer’s entry', async () => {
    const { table, statuses } = setup();
    table.put(operator('us-east-1', 'draining', 1, 1));
    let raced = false;
    table.beforeWrite = () => {
      if (raced) return;
      raced = true;
      table.put({ ...operator('us-east-1', 'draining', 2, 2), reason: { S: 'other writer' } });
    };
    const change = await statuses.restore('us-east-1', { arn: BOB }, 'done');
    expect(change.operator.version).toBe(3);
    expect(table.sent).toEqual(['BatchGetItem', 'PutItem', 'BatchGetItem', 'PutItem']);
    expect(table.items.get('operator:us-east-1')?.audit?.L).toHaveLength(3);
  });

  it('gives up with a clear error when every attempt loses its race', async () => {
    const { table, statuses } = setup();
    let version = 1;
    table.put(operator('us-east-1', 'active', version));
    table.beforeWrite = () => table.put(operator('us-east-1', 'active', ++version));
    await expect(statuses.drain('us-east-1', { arn: ALICE }, 'maintenance')).rejects.toBeInstanceOf(
      ConcurrentChangeError,
    );
    expect(table.sent.filter((name) => name === 'TransactWriteItems')).toHaveLength(4);
  });

  it('writes over an operator item with no version only while it still has none', async () => {
    const { table, statuses } = setup();
    const legacy = operator('us-east-1', 'draining', 0);
    delete legacy.version;
    table.put(legacy);
    await statuses.restore('us-east-1', { arn: BOB }, 'done');
    expect(table.items.get('operator:us-east-1')).toMatchObject({
      status: { S: 'active' },
      version: { N: '1' },
    });
  });

  it('refuses a region that is not configured (404) before reading or writing', async () => {
    const { table, statuses } = setup();
    await expect(statuses.drain('eu-west-3', { arn: ALICE }, 'maintenance')).rejects.toBeInstanceOf(
      UnknownRegionError,
    );
    await expect(statuses.restore('eu-west-3', { arn: ALICE }, 'maintenance')).rejects.toMatchObject({
      code: 'unknown-region',
      reason: 'region: expected one of the configured regions',
    });
    expect(table.sent).toEqual([]);
  });
});
