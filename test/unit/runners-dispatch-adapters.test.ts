import {
  ConditionalCheckFailedException,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import {
  DynamodbJobRecords,
  RegionStatusFailover,
  SqsQueueSender,
} from '../../runtime/runners/dispatch-adapters';
import type { JobRecord } from '../../runtime/runners/dispatch';
import type {
  DispatchMessage,
  RegionStatus,
  RegionView,
  RegionViewSource,
} from '../../runtime/runners/model';
import type { RegionStatusReader, RegionStatusRecord } from '../../runtime/runners/region-status';

const EU = 'eu-central-1';
const US = 'us-east-1';
const T0 = 1_760_000_000_000;
const NOW_SEC = T0 / 1000;

interface Sent {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

/** A client that records each command and answers what the test says (or throws it). */
function recordingClient(answer: (command: Sent) => unknown) {
  const sent: Sent[] = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const entry = { name: command.constructor.name, input: command.input };
      sent.push(entry);
      const out = answer(entry);
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { sent, client };
}

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

const record: JobRecord = {
  jobId: 42,
  region: US,
  runnerType: 'standard',
  taskArn: 'arn:aws:ecs:us-east-1:111122223333:task/runners/abc',
  repository: 'acme/app',
  organization: 'acme',
  runId: 7,
  dispatchedAt: T0,
  expiresAt: NOW_SEC + 3600,
};

describe('DynamodbJobRecords', () => {
  const records = (item: Record<string, AttributeValue> | undefined) => {
    const { sent, client } = recordingClient(() => ({ Item: item }));
    return {
      sent,
      records: new DynamodbJobRecords(client as unknown as DynamoDBClient, 'workflows', () => T0),
    };
  };

  it("reads the router's tombstone as the job being over, and an expired one as no item", async () => {
    const tombstone = {
      workflowId: { S: 'job:42' },
      completed: { BOOL: true },
      completedAt: { N: String(T0 - 5) },
      expiresAt: { N: String(NOW_SEC + 100) },
    };
    expect(await records(tombstone).records.get(42)).toEqual({ kind: 'over' });
    expect(
      await records({ ...tombstone, expiresAt: { N: String(NOW_SEC - 1) } }).records.get(42),
    ).toBeUndefined();
  });

  it("reads a record's region, runner type and first region", async () => {
    const item = {
      region: { S: US },
      runnerType: { S: 'standard' },
      firstRegion: { S: EU },
      expiresAt: { N: String(NOW_SEC + 100) },
    };
    const { sent, records: store } = records(item);
    expect(await store.get(42)).toEqual({
      kind: 'dispatched',
      region: US,
      runnerType: 'standard',
      firstRegion: EU,
    });
    expect(sent[0]?.input.ProjectionExpression).toContain('#completed');
    expect(await records({ region: { S: EU } }).records.get(42)).toEqual({ kind: 'dispatched', region: EU });
  });

  it('writes a record only where no live tombstone is, and answers `over` when one is there', async () => {
    const { sent, client } = recordingClient(() => ({}));
    const store = new DynamodbJobRecords(client as unknown as DynamoDBClient, 'workflows', () => T0);
    expect(await store.put({ ...record, firstRegion: EU })).toBe('written');
    const input = sent[0]?.input as {
      Item: Record<string, AttributeValue>;
      ConditionExpression: string;
      ExpressionAttributeNames: Record<string, string>;
      ExpressionAttributeValues: Record<string, AttributeValue>;
    };
    expect(input.Item.firstRegion).toEqual({ S: EU });
    expect(input.ConditionExpression).toBe(
      'attribute_not_exists(#completed) OR #completed <> :true OR #ttl < :now',
    );
    expect(input.ExpressionAttributeNames).toEqual({ '#completed': 'completed', '#ttl': 'expiresAt' });
    expect(input.ExpressionAttributeValues).toEqual({
      ':true': { BOOL: true },
      ':now': { N: String(NOW_SEC) },
    });

    const refused = recordingClient(() => conditionFailed());
    const guarded = new DynamodbJobRecords(
      refused.client as unknown as DynamoDBClient,
      'workflows',
      () => T0,
    );
    expect(await guarded.put(record)).toBe('over');
  });

  it('rethrows other failures of the write (the dispatcher retries them)', async () => {
    const throttled = Object.assign(new Error('slow down'), { name: 'ThrottlingException' });
    const { client } = recordingClient(() => throttled);
    const store = new DynamodbJobRecords(client as unknown as DynamoDBClient, 'workflows', () => T0);
    await expect(store.put(record)).rejects.toBe(throttled);
  });
});

describe('SqsQueueSender', () => {
  const message: DispatchMessage = {
    version: 1,
    kind: 'dispatch',
    job: {
      action: 'queued',
      jobId: 42,
      runId: 7,
      runAttempt: 1,
      organization: 'acme',
      repository: 'acme/app',
      labels: ['self-hosted'],
    },
    deliveryId: 'd-1',
    region: US,
    runnerType: 'standard',
    reason: 'drained',
    routedAt: T0,
    correlationId: 'corr-1',
    retry: 0,
  };

  it("sends to another region's runner queue through that region's client, with the message's attributes", async () => {
    const clients = new Map<string, ReturnType<typeof recordingClient>>();
    const sqs = (region: string) => {
      if (!clients.has(region))
        clients.set(
          region,
          recordingClient(() => ({})),
        );
      return clients.get(region)?.client as unknown as SQSClient;
    };
    const sender = new SqsQueueSender({ sqs, region: EU, account: '111122223333', prefix: 'dev-runners' });
    await sender.sendToRegion(US, 'standard', message, 10);
    await sender.send('docker', message, 1200);
    expect(clients.get(US)?.sent.map((c) => c.input)).toEqual([
      {
        QueueUrl: 'https://sqs.us-east-1.amazonaws.com/111122223333/dev-runners-standard',
        MessageBody: JSON.stringify(message),
        DelaySeconds: 10,
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: 'dispatch' },
          correlationId: { DataType: 'String', StringValue: 'corr-1' },
        },
      },
    ]);
    expect(clients.get(EU)?.sent.map((c) => [c.input.QueueUrl, c.input.DelaySeconds])).toEqual([
      ['https://sqs.eu-central-1.amazonaws.com/111122223333/dev-runners-docker', 900],
    ]);
  });
});

describe('RegionStatusFailover', () => {
  const statusRecord = (status: RegionStatus): RegionStatusRecord => ({
    region: EU,
    status,
    health: { state: status === 'out' ? 'missing' : 'healthy', failing: [] },
    operator: { status: status === 'draining' ? 'draining' : 'active', audit: [], version: 0 },
  });

  function setup() {
    const clock = { t: T0 };
    const state = { status: 'active' as RegionStatus, failure: undefined as Error | undefined, reads: 0 };
    const asked: (readonly string[])[] = [];
    const statuses: RegionStatusReader = {
      readStatuses: async (regions) => {
        state.reads++;
        asked.push(regions);
        await Promise.resolve();
        if (state.failure) throw state.failure;
        return new Map([[EU, statusRecord(state.status)]]);
      },
    };
    const views: RegionViewSource = {
      views: async () => new Map<string, RegionView>(),
      saveSpilling: async () => undefined,
    };
    const failover = new RegionStatusFailover({ region: EU, statuses, views, now: () => clock.t });
    return { clock, state, asked, failover };
  }

  it("reads only this region's status, keeps it 5 s, and shares a read among concurrent callers", async () => {
    const { clock, state, asked, failover } = setup();
    expect(await Promise.all([failover.status(), failover.status()])).toEqual(['active', 'active']);
    expect(asked).toEqual([[EU]]);
    state.status = 'draining';
    clock.t += 4_999;
    expect(await failover.status()).toBe('active');
    clock.t += 1;
    expect(await failover.status()).toBe('draining');
    expect(state.reads).toBe(2);
  });

  it('keeps a failed read for the same time (one call per period while the table is unreadable)', async () => {
    const { clock, state, failover } = setup();
    state.failure = Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
    await expect(failover.status()).rejects.toThrow('throttled');
    await expect(failover.status()).rejects.toThrow('throttled');
    expect(state.reads).toBe(1);
    state.failure = undefined;
    state.status = 'out';
    clock.t += 5_000;
    expect(await failover.status()).toBe('out');
  });
});
