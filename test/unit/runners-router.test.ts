import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { WorkflowJob } from '../../runtime/runners/model';
import { outcomeResponse, routeDelivery, type RouterDeps } from '../../runtime/runners/router';
import {
  DynamodbDeliveryLedger,
  DynamodbJobLookup,
  DynamodbPlacementStore,
  RegionalClients,
  SqsQueueSender,
} from '../../runtime/runners/router-adapters';
import { HandlerConfigError } from '../../runtime/lib/config';
import { createRouterHandler, loadRouterSettings } from '../../runtime/runners/router/handler';
import { runKey } from '../../runtime/runners/tables';
import {
  AP,
  awsError,
  EU,
  handlerDeps,
  jobPayload,
  recordingTelemetry,
  routerWorld,
  staticSecrets,
  US,
  view,
  webhookEvent,
  type RouterWorld,
} from '../support/runners-fakes';

const D1 = '11111111-2222-3333-4444-555555555555';
const D2 = '66666666-7777-8888-9999-aaaaaaaaaaaa';

function job(action: 'queued' | 'completed', patch: Partial<WorkflowJob> = {}): WorkflowJob {
  return {
    action,
    jobId: 9001,
    runId: 7001,
    runAttempt: 1,
    organization: 'acme',
    repository: 'acme/web',
    labels: ['self-hosted', 'linux', 'x64'],
    ...patch,
  };
}

function deps(world: RouterWorld, region: string) {
  const telemetry = recordingTelemetry();
  const routerDeps: RouterDeps = {
    region,
    config: world.config,
    ledger: world.ledger,
    placements: world.placements,
    jobs: world.jobs,
    queues: world.queues,
    views: world.views,
    now: () => world.now,
    events: telemetry,
  };
  return Object.assign(routerDeps, { records: telemetry.records });
}

const route = (world: RouterWorld, region: string, deliveryId: string, j: WorkflowJob = job('queued')) =>
  routeDelivery({ deliveryId, job: j }, deps(world, region));

const RUN = runKey('acme/web', 7001, 1);

describe('routeDelivery: queued', () => {
  it('dispatches to the home region, places the run and answers 202', async () => {
    const world = routerWorld();
    const outcome = await route(world, EU, D1);
    expect(outcome).toEqual({ kind: 'dispatched', region: EU, runnerType: 'standard', reason: 'home' });
    expect(outcomeResponse(outcome).statusCode).toBe(202);
    expect(world.queues.sent).toEqual([
      {
        region: EU,
        runnerType: 'standard',
        message: {
          version: 1,
          kind: 'dispatch',
          job: job('queued'),
          deliveryId: D1,
          region: EU,
          runnerType: 'standard',
          reason: 'home',
          routedAt: world.now,
          correlationId: D1,
          retry: 0,
        },
      },
    ]);
    expect(world.placements.items.get(RUN)).toEqual({ region: EU, placedAt: world.now });
  });

  it('never enqueues a delivery twice in the same region (200 duplicate)', async () => {
    const world = routerWorld();
    await route(world, EU, D1);
    const again = await route(world, EU, D1);
    expect(again).toEqual({ kind: 'duplicate', region: EU });
    expect(outcomeResponse(again)).toMatchObject({ statusCode: 200 });
    expect(JSON.parse(outcomeResponse(again).body)).toMatchObject({ duplicate: true });
    expect(world.queues.sent).toHaveLength(1);
  });

  it('claims the delivery in the target region too: a copy at another region enqueues nothing', async () => {
    const world = routerWorld();
    // us-east-1 receives it, routes it home to eu-central-1
    expect(await route(world, US, D1)).toMatchObject({ kind: 'dispatched', region: EU });
    expect([...world.ledger.replica(US).keys()]).toEqual([D1]);
    expect([...world.ledger.replica(EU).keys()]).toEqual([D1]);
    // a redelivery lands in ap-southeast-1 before replication: its own claim succeeds, the target's not
    expect(await route(world, AP, D1)).toEqual({ kind: 'duplicate', region: EU });
    // and in eu-central-1 itself
    expect(await route(world, EU, D1)).toEqual({ kind: 'duplicate', region: EU });
    expect(world.queues.sent).toHaveLength(1);
  });

  it('dedupes at the target when the first copy was accepted there', async () => {
    const world = routerWorld();
    await route(world, EU, D1);
    expect(await route(world, US, D1)).toEqual({ kind: 'duplicate', region: EU });
    expect(world.queues.sent).toHaveLength(1);
  });

  it('follows the placement of a router that placed the run first (sticky)', async () => {
    const world = routerWorld();
    world.placements.beforePlace = (key) => world.placements.items.set(key, { region: AP, placedAt: 1 });
    const outcome = await route(world, US, D1);
    expect(outcome).toEqual({ kind: 'dispatched', region: AP, runnerType: 'standard', reason: 'sticky' });
    expect(world.queues.sent.map((s) => s.region)).toEqual([AP]);
    expect(world.ledger.replica(AP).has(D1)).toBe(true);
  });

  it('does not follow a placement into a region that takes no new jobs', async () => {
    const world = routerWorld();
    world.views.regions.set(AP, view('draining'));
    world.placements.beforePlace = (key) => world.placements.items.set(key, { region: AP, placedAt: 1 });
    expect(await route(world, US, D1)).toMatchObject({ region: EU, reason: 'home' });
  });

  it('keeps a placed run where it is, without placing it again', async () => {
    const world = routerWorld();
    world.placements.items.set(RUN, { region: US, placedAt: 1 });
    world.placements.beforePlace = () => {
      throw new Error('placed again');
    };
    expect(await route(world, EU, D1)).toMatchObject({ kind: 'dispatched', region: US, reason: 'sticky' });
  });

  it('answers not-ours before a single write when no runner type matches', async () => {
    const world = routerWorld();
    const outcome = await route(world, EU, D1, job('queued', { labels: ['ubuntu-latest'] }));
    expect(outcome).toEqual({ kind: 'not-ours' });
    expect(outcomeResponse(outcome).statusCode).toBe(202);
    expect(world.ledger.calls).toHaveLength(0);
  });

  it('counts the decision with its reason', async () => {
    const world = routerWorld();
    world.views.regions.set(EU, view('active', { queueDepth: 500 }));
    const d = deps(world, US);
    await routeDelivery({ deliveryId: D1, job: job('queued') }, d);
    expect(d.records).toContainEqual({
      kind: 'decided',
      detail: { reason: 'spillover:queue-depth', region: US },
    });
  });
});

describe('routeDelivery: spillover states', () => {
  it('saves a region whose triggers changed, and only then', async () => {
    const world = routerWorld();
    world.views.regions.set(EU, view('active', { queueDepth: 150 }));
    await route(world, US, D1);
    expect(world.views.saved).toEqual([{ region: EU, previous: [], next: ['queue-depth'] }]);
    // still over the recovery threshold: tripped, unchanged, nothing written
    world.views.regions.set(EU, view('active', { queueDepth: 80 }, ['queue-depth']));
    await route(world, US, D2, job('queued', { runId: 7002 }));
    expect(world.views.saved).toHaveLength(1);
  });

  it('reports a failed save and still dispatches', async () => {
    const world = routerWorld();
    world.views.regions.set(EU, view('active', { queueDepth: 150 }));
    world.views.fault = (op) =>
      op === 'saveSpilling' ? awsError('ProvisionedThroughputExceededException', 400) : undefined;
    const d = deps(world, US);
    expect(await routeDelivery({ deliveryId: D1, job: job('queued') }, d)).toMatchObject({
      kind: 'dispatched',
    });
    expect(d.records).toContainEqual({
      kind: 'sideFailure',
      detail: { step: 'save-spilling', region: EU, code: 'transient' },
    });
    expect(world.queues.sent).toHaveLength(1);
  });
});

describe('routeDelivery: failures', () => {
  it('releases every claim and answers 500 on a transient failure; a redelivery then succeeds', async () => {
    const world = routerWorld();
    world.queues.fault = () => awsError('ServiceUnavailable', 503);
    const outcome = await route(world, US, D1);
    expect(outcome).toMatchObject({ kind: 'failed', failure: { permanent: false } });
    expect(outcomeResponse(outcome).statusCode).toBe(500);
    expect(world.ledger.replica(US).size + world.ledger.replica(EU).size).toBe(0);
    expect(
      world.ledger.calls
        .filter((c) => c.op === 'release')
        .map((c) => c.region)
        .sort(),
    ).toEqual([EU, US]);
    world.queues.fault = () => undefined;
    expect(await route(world, US, D1)).toMatchObject({ kind: 'dispatched', region: EU });
    expect(world.queues.sent).toHaveLength(1);
  });

  it.each([
    ['reading the views', (w: RouterWorld) => (w.views.fault = () => awsError('TimeoutError'))],
    [
      'reading the placement',
      (w: RouterWorld) => (w.placements.fault = (op) => (op === 'get' ? awsError('x') : undefined)),
    ],
    [
      'placing the run',
      (w: RouterWorld) => (w.placements.fault = (op) => (op === 'place' ? awsError('x') : undefined)),
    ],
    [
      'claiming at the target',
      (w: RouterWorld) =>
        (w.ledger.fault = (op, r) => (op === 'claim' && r === EU ? awsError('x') : undefined)),
    ],
  ])('answers 500 with its claims released when %s fails', async (_case, breakIt) => {
    const world = routerWorld();
    breakIt(world);
    expect(await route(world, US, D1)).toMatchObject({ kind: 'failed' });
    expect(world.ledger.replica(US).size).toBe(0);
    expect(world.queues.sent).toHaveLength(0);
  });

  it('answers 500 when the local claim cannot be made, with nothing to release', async () => {
    const world = routerWorld();
    world.ledger.fault = (op) => (op === 'claim' ? awsError('InternalServerError') : undefined);
    expect(await route(world, EU, D1)).toMatchObject({ kind: 'failed' });
    expect(world.ledger.calls.filter((c) => c.op === 'release')).toHaveLength(0);
  });

  it('reports a release that fails and still answers 500', async () => {
    const world = routerWorld();
    world.queues.fault = () => awsError('ServiceUnavailable', 503);
    world.ledger.fault = (op) => (op === 'release' ? awsError('ServiceUnavailable', 503) : undefined);
    const d = deps(world, EU);
    expect(await routeDelivery({ deliveryId: D1, job: job('queued') }, d)).toMatchObject({ kind: 'failed' });
    expect(d.records).toContainEqual({
      kind: 'sideFailure',
      detail: { step: 'release-claim', region: EU, code: 'transient' },
    });
  });
});

describe('routeDelivery: completed', () => {
  it('sends a completed message to the queue that dispatched the job', async () => {
    const world = routerWorld();
    world.jobs.records.set(9001, { region: AP, runnerType: 'docker' });
    const outcome = await route(world, US, D1, job('completed'));
    expect(outcome).toEqual({ kind: 'completed', region: AP, runnerType: 'docker' });
    expect(world.queues.sent).toEqual([
      {
        region: AP,
        runnerType: 'docker',
        message: { version: 1, kind: 'completed', job: job('completed'), deliveryId: D1, correlationId: D1 },
      },
    ]);
    expect(world.ledger.replica(AP).has(D1)).toBe(true);
    expect(await route(world, AP, D1, job('completed'))).toEqual({ kind: 'duplicate', region: AP });
    expect(world.queues.sent).toHaveLength(1);
  });

  it('ignores a job it did not dispatch (202)', async () => {
    const world = routerWorld();
    const outcome = await route(world, US, D1, job('completed'));
    expect(outcome).toEqual({ kind: 'not-dispatched' });
    expect(outcomeResponse(outcome).statusCode).toBe(202);
    world.jobs.records.set(9001, { region: 'eu-west-3', runnerType: 'standard' });
    expect(await route(world, US, D2, job('completed'))).toEqual({ kind: 'not-dispatched' });
    world.jobs.records.set(9001, { region: EU, runnerType: 'gpu' });
    expect(await route(world, US, 'aaaaaaaa-2222-3333-4444-555555555555', job('completed'))).toEqual({
      kind: 'not-dispatched',
    });
    expect(world.queues.sent).toHaveLength(0);
  });

  it('releases its claim when the lookup fails', async () => {
    const world = routerWorld();
    world.jobs.fault = () => awsError('ThrottlingException', 400);
    expect(await route(world, US, D1, job('completed'))).toMatchObject({ kind: 'failed' });
    expect(world.ledger.replica(US).size).toBe(0);
  });
});

describe('the router handler', () => {
  it('logs each delivery under its id and counts its outcome', async () => {
    const world = routerWorld();
    const telemetry = recordingTelemetry();
    const handle = createRouterHandler(handlerDeps(world, EU, staticSecrets('s'), telemetry));
    const response = await handle(
      webhookEvent(JSON.stringify(jobPayload('queued')), 's', { deliveryId: D1 }),
    );
    expect(JSON.parse(response.body)).toEqual({
      status: 'queued',
      region: EU,
      runnerType: 'standard',
      reason: 'home',
    });
    expect(telemetry.records.map((r) => r.kind)).toEqual(['begin', 'decided', 'outcome', 'end']);
    expect(telemetry.records[0]?.detail).toEqual({ deliveryId: D1 });
  });
});

describe('the AWS adapters', () => {
  type Sent = { name: string; input: Record<string, unknown> };
  function fakeClient<C>(answer: (command: Sent) => unknown): { client: C; sent: Sent[] } {
    const sent: Sent[] = [];
    const client = {
      send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
        const call = { name: command.constructor.name, input: command.input };
        sent.push(call);
        const result = answer(call);
        if (result instanceof Error) throw result;
        return result ?? {};
      },
    } as unknown as C;
    return { client, sent };
  }

  it('claims with a conditional put in the region named, false when the item exists', async () => {
    const eu = fakeClient<DynamoDBClient>((c) =>
      c.name === 'PutItemCommand' ? awsError('ConditionalCheckFailedException', 400) : {},
    );
    const us = fakeClient<DynamoDBClient>(() => ({}));
    const clients = new RegionalClients((region) => (region === EU ? eu.client : us.client));
    const ledger = new DynamodbDeliveryLedger({
      dynamodb: (r) => clients.of(r),
      tableName: 'idempotency',
      localRegion: US,
      now: () => 1_700_000_000_000,
    });
    expect(await ledger.claim(US, D1, 3600)).toBe(true);
    expect(await ledger.claim(EU, D1, 3600)).toBe(false);
    expect(us.sent[0]?.input).toMatchObject({
      TableName: 'idempotency',
      Item: {
        key: { S: `delivery:${D1}` },
        region: { S: US },
        expiresAt: { N: String(1_700_000_000 + 3600) },
      },
      ConditionExpression: 'attribute_not_exists(#key) OR #expires < :now',
    });
    await ledger.release(EU, D1);
    expect(eu.sent[1]).toMatchObject({
      name: 'DeleteItemCommand',
      input: { ExpressionAttributeValues: { ':region': { S: US } } },
    });
    const failing = fakeClient<DynamoDBClient>(() => awsError('InternalServerError'));
    const broken = new DynamodbDeliveryLedger({
      dynamodb: () => failing.client,
      tableName: 't',
      localRegion: US,
      now: Date.now,
    });
    await expect(broken.claim(US, D1, 60)).rejects.toThrow('InternalServerError');
  });

  it('answers the winning placement when the conditional put loses', async () => {
    const { client } = fakeClient<DynamoDBClient>((c) =>
      c.name === 'PutItemCommand'
        ? awsError('ConditionalCheckFailedException', 400)
        : { Item: { region: { S: AP }, placedAt: { N: '5' }, expiresAt: { N: '9999999999' } } },
    );
    const store = new DynamodbPlacementStore({ dynamodb: client, tableName: 'workflows', now: () => 1000 });
    expect(await store.placeIfAbsent(RUN, EU, 60)).toEqual({ region: AP, placedAt: 5 });
    const expired = fakeClient<DynamoDBClient>(() => ({
      Item: { region: { S: AP }, placedAt: { N: '5' }, expiresAt: { N: '1' } },
    }));
    const stale = new DynamodbPlacementStore({ dynamodb: expired.client, tableName: 'w', now: () => 5000 });
    expect(await stale.get(RUN)).toBeUndefined();
  });

  it('reads a job record, and none when it is missing or expired', async () => {
    const items: Record<string, unknown> = {
      'job:1': { Item: { region: { S: EU }, runnerType: { S: 'docker' } } },
      'job:2': {},
      'job:3': { Item: { region: { S: EU }, runnerType: { S: 'docker' }, expiresAt: { N: '1' } } },
    };
    const { client } = fakeClient<DynamoDBClient>(
      (c) => items[String((c.input.Key as { workflowId: { S: string } }).workflowId.S)],
    );
    const jobs = new DynamodbJobLookup({ dynamodb: client, tableName: 'workflows', now: () => 5000 });
    expect(await jobs.get(1)).toEqual({ region: EU, runnerType: 'docker' });
    expect(await jobs.get(2)).toBeUndefined();
    expect(await jobs.get(3)).toBeUndefined();
  });

  it('sends to the runner queue of the type in the region named', async () => {
    const { client, sent } = fakeClient<SQSClient>(() => ({}));
    const sender = new SqsQueueSender({
      sqs: () => client,
      accountId: '123456789012',
      queuePrefix: 'prod-runners',
    });
    await sender.send(AP, 'docker', {
      version: 1,
      kind: 'completed',
      job: job('completed'),
      deliveryId: D1,
      correlationId: D1,
    });
    expect(sent[0]?.input).toMatchObject({
      QueueUrl: 'https://sqs.ap-southeast-1.amazonaws.com/123456789012/prod-runners-docker',
    });
    expect(JSON.parse(String(sent[0]?.input.MessageBody))).toMatchObject({
      kind: 'completed',
      deliveryId: D1,
    });
  });
});

describe('loadRouterSettings', () => {
  const env = {
    AWS_REGION: EU,
    RUNNERS_CONFIG: JSON.stringify({
      regions: [{ region: EU, priority: 1, capacity: 10 }],
      runnerTypes: [{ name: 'standard', labels: ['self-hosted'] }],
    }),
    WEBHOOK_SECRET_ID: 'prod/runners/webhook',
    IDEMPOTENCY_TABLE: 'idempotency-keys',
    WORKFLOWS_TABLE: 'runner-workflows',
    REGION_STATUS_TABLE: 'region-status',
    STATE_TABLE: 'state',
    RUNNER_QUEUE_PREFIX: 'prod-runners',
    ACCOUNT_ID: '123456789012',
  };

  it('reads the settings and the runner configuration', () => {
    const settings = loadRouterSettings(env);
    expect(settings).toMatchObject({
      AWS_REGION: EU,
      WEBHOOK_SECRET_CACHE_SEC: 300,
      ACCOUNT_ID: '123456789012',
    });
    expect(settings.config.regions.map((r) => r.region)).toEqual([EU]);
  });

  it('names every bad setting at once, quoting no value', () => {
    const problems = (() => {
      try {
        loadRouterSettings({
          ...env,
          WEBHOOK_SECRET_ID: '',
          ACCOUNT_ID: 'leak-marker-7f3a9c',
          STATE_TABLE: undefined,
        });
      } catch (error) {
        return error instanceof HandlerConfigError ? error.problems : [];
      }
      return [];
    })();
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'ACCOUNT_ID',
      'STATE_TABLE',
      'WEBHOOK_SECRET_ID',
    ]);
    expect(problems.join()).not.toContain('leak-marker');
  });

  it('refuses a configuration that does not parse or does not name its own region', () => {
    expect(() => loadRouterSettings({ ...env, RUNNERS_CONFIG: '{' })).toThrow(HandlerConfigError);
    expect(() => loadRouterSettings({ ...env, AWS_REGION: US })).toThrow(/AWS_REGION/);
  });
});
