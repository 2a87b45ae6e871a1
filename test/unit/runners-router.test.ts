import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { createLogger } from '../../runtime/lib/logger';
import type { WorkflowJob } from '../../runtime/runners/model';
import {
  DEFAULT_CLAIM_LEASE_MS,
  DEFAULT_DEADLINE_MS,
  DEFAULT_SETTLE_BUDGET_MS,
  outcomeResponse,
  routeDelivery,
  USER_OWNED_REASON,
  type JobDelivery,
  type RouterDeps,
} from '../../runtime/runners/router';
import {
  DynamodbClaimLedger,
  DynamodbJobLookup,
  DynamodbPlacementStore,
  RegionalClients,
  SqsQueueSender,
} from '../../runtime/runners/router-adapters';
import { HandlerConfigError } from '../../runtime/lib/config';
import {
  awsRouterDeps,
  createRouterHandler,
  loadRouterSettings,
  powertoolsTelemetry,
  ROUTER_SDK_OPTIONS,
  routerClients,
} from '../../runtime/runners/router/handler';
import { capturingOutput } from '../../scripts/lib/load-bundle';
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

function deps(world: RouterWorld, region: string, options: Partial<RouterDeps> = {}) {
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
    ...options,
  };
  return Object.assign(routerDeps, { records: telemetry.records });
}

/** A delivery as webhook.ts reads it: of an organisation, its status its action's (`queued`, `completed`). */
const delivery = (deliveryId: string, j: WorkflowJob, _world: RouterWorld): JobDelivery => ({
  deliveryId,
  job: j,
  jobStatus: j.action,
  ownerType: 'organization',
});

const route = (
  world: RouterWorld,
  region: string,
  deliveryId: string,
  j: WorkflowJob = job('queued'),
  options: Partial<RouterDeps> = {},
) => routeDelivery(delivery(deliveryId, j, world), deps(world, region, options));

const RUN = runKey('acme/web', 7001, 1);
const QUEUED_KEY = 'job:9001:queued:1:queued';
const COMPLETED_KEY = 'job:9001:completed:1:completed';
const claimKeys = (deliveryId: string, jobKey = QUEUED_KEY) => [`delivery:${deliveryId}`, jobKey].sort();

/** A promise settled by hand: a call that hangs until the test lets it go. */
function gate(): { promise: Promise<void>; open(): void; fail(): void } {
  let open: () => void = () => undefined;
  let fail: () => void = () => undefined;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = () => reject(awsError('TimeoutError'));
  });
  promise.catch(() => undefined);
  return { promise, open, fail };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

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
    expect(world.ledger.keys(US)).toEqual(claimKeys(D1));
    expect(world.ledger.keys(EU)).toEqual(claimKeys(D1));
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
    expect(world.ledger.keys(AP)).toEqual(claimKeys(D1));
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
    await routeDelivery(delivery(D1, job('queued'), world), d);
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
    expect(await routeDelivery(delivery(D1, job('queued'), world), d)).toMatchObject({
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
        .map((c) => `${c.region} ${c.key}`)
        .sort(),
    ).toEqual([...claimKeys(D1).map((k) => `${EU} ${k}`), ...claimKeys(D1).map((k) => `${US} ${k}`)]);
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
    expect(await routeDelivery(delivery(D1, job('queued'), world), d)).toMatchObject({ kind: 'failed' });
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
    expect(world.ledger.keys(AP)).toEqual(claimKeys(D1, COMPLETED_KEY));
    expect(await route(world, AP, D1, job('completed'))).toEqual({ kind: 'duplicate', region: AP });
    expect(world.queues.sent).toHaveLength(1);
  });

  it('ignores a job whose record this configuration did not make (202)', async () => {
    const world = routerWorld();
    world.jobs.records.set(9001, { region: 'eu-west-3', runnerType: 'standard' });
    const outcome = await route(world, US, D2, job('completed'));
    expect(outcome).toEqual({ kind: 'not-dispatched' });
    expect(outcomeResponse(outcome).statusCode).toBe(202);
    // and it was handled: its claims are done
    expect(await route(world, US, D2, job('completed'))).toEqual({ kind: 'duplicate', region: US });
    world.jobs.records.set(9001, { region: EU, runnerType: 'gpu' });
    expect(
      await route(world, US, 'aaaaaaaa-2222-3333-4444-555555555555', job('completed', { runAttempt: 2 })),
    ).toEqual({ kind: 'not-dispatched' });
    expect(world.queues.sent).toHaveLength(0);
    expect(world.jobs.tombstones.size).toBe(0);
  });

  it('releases its claim when the lookup fails', async () => {
    const world = routerWorld();
    world.jobs.fault = () => awsError('ThrottlingException', 400);
    expect(await route(world, US, D1, job('completed'))).toMatchObject({ kind: 'failed' });
    expect(world.ledger.replica(US).size).toBe(0);
  });
});

describe('routeDelivery: two-phase claims (a router that dies holding a claim loses no job)', () => {
  it('holds its claims pending while it sends and marks them done only once the message was sent', async () => {
    const world = routerWorld();
    const states: string[] = [];
    world.queues.delay = () => {
      states.push(...[...world.ledger.replica(EU).values()].map((item) => item.state));
      return undefined;
    };
    expect(await route(world, EU, D1)).toMatchObject({ kind: 'dispatched' });
    expect(states).toEqual(['pending', 'pending']);
    expect([...world.ledger.replica(EU).values()].map((item) => item.state)).toEqual(['done', 'done']);
  });

  it("answers 409 to a copy while the first is in flight, and takes a dead router's claim over after its lease", async () => {
    const world = routerWorld();
    // The first router claims, then hangs in its send and never comes back (its Lambda timed out).
    const hung = gate();
    world.queues.delay = () => hung.promise;
    const dead = route(world, EU, D1, job('queued'), { deadlineMs: 3_600_000 });
    await tick();
    expect(world.ledger.keys(EU)).toEqual(claimKeys(D1));
    world.queues.delay = () => undefined;

    // A redelivery within the lease: in flight, 409 (GitHub counts it failed: it can be redelivered).
    world.now += DEFAULT_CLAIM_LEASE_MS - 1_000;
    const copy = await route(world, US, D1);
    expect(copy).toEqual({ kind: 'in-flight', region: EU });
    expect(outcomeResponse(copy).statusCode).toBe(409);
    // it released what it claimed itself (in us-east-1); the dead router's claims stay
    expect(world.ledger.keys(US)).toEqual([]);
    expect(world.queues.sent).toHaveLength(0);

    // Past the lease: the redelivery takes the claims over and dispatches.
    world.now += 2_000;
    const d = deps(world, EU);
    expect(await routeDelivery(delivery(D1, job('queued'), world), d)).toMatchObject({
      kind: 'dispatched',
      region: EU,
    });
    expect(world.queues.sent).toHaveLength(1);
    expect(d.records.filter((r) => r.kind === 'claimTakenOver')).toEqual([
      { kind: 'claimTakenOver', detail: { region: EU } },
      { kind: 'claimTakenOver', detail: { region: EU } },
    ]);
    // and a later copy is a duplicate, even long after
    world.now += 3_600_000;
    expect(await route(world, US, D1)).toEqual({ kind: 'duplicate', region: EU });
    hung.fail();
    await dead;
    expect(world.queues.sent).toHaveLength(1);
  });

  it('answers 500 past its deadline, releasing its claims: a redelivery then dispatches', async () => {
    const world = routerWorld();
    const hung = gate();
    world.queues.delay = () => hung.promise;
    const d = deps(world, US, { deadlineMs: 30 });
    const outcome = await routeDelivery(delivery(D1, job('queued'), world), d);
    expect(outcome).toMatchObject({ kind: 'failed', failure: { code: 'deadline', permanent: false } });
    expect(outcomeResponse(outcome).statusCode).toBe(500);
    expect(world.ledger.keys(US)).toEqual([]);
    expect(world.ledger.keys(EU)).toEqual([]);
    world.queues.delay = () => undefined;
    expect(await route(world, US, D1)).toMatchObject({ kind: 'dispatched', region: EU });
    hung.fail();
  });

  it('counts its deadline from the arrival: a slow webhook secret read leaves less, none claims nothing', async () => {
    const world = routerWorld();
    const telemetry = recordingTelemetry();
    const slowSecrets = {
      secrets: () => new Promise<readonly string[]>((resolve) => setTimeout(() => resolve(['s']), 60)),
      refreshed: async () => undefined,
    };
    const handle = createRouterHandler({
      ...handlerDeps(world, EU, slowSecrets, telemetry),
      deadlineMs: 30,
    });
    const response = await handle(
      webhookEvent(JSON.stringify(jobPayload('queued')), 's', { deliveryId: D1 }),
    );
    expect(response.statusCode).toBe(500);
    expect(world.ledger.calls).toHaveLength(0);
    expect(world.queues.sent).toHaveLength(0);
    // with time left, the same delivery goes through
    const quick = createRouterHandler({
      ...handlerDeps(world, EU, staticSecrets('s'), telemetry),
      deadlineMs: 5_000,
    });
    const again = await quick(webhookEvent(JSON.stringify(jobPayload('queued')), 's', { deliveryId: D1 }));
    expect(again.statusCode).toBe(202);
  });

  it('releases a claim won after its deadline, and writes nothing more', async () => {
    const world = routerWorld();
    const slow = gate();
    world.ledger.delay = (op, region) => (op === 'claim' && region === EU ? slow.promise : undefined);
    const outcome = await route(world, US, D1, job('queued'), { deadlineMs: 30 });
    expect(outcome).toMatchObject({ kind: 'failed', failure: { code: 'deadline' } });
    slow.open();
    for (let i = 0; i < 5; i++) await tick();
    expect(world.ledger.keys(EU)).toEqual([]);
    expect(world.ledger.keys(US)).toEqual([]);
    expect(world.placements.items.size).toBe(0);
    expect(world.queues.sent).toHaveLength(0);
  });

  it('answers what it did when marking its claims done hangs (within the settle budget)', async () => {
    const world = routerWorld();
    const hung = gate();
    world.ledger.delay = (op) => (op === 'finish' ? hung.promise : undefined);
    const started = Date.now();
    const outcome = await route(world, EU, D1, job('queued'), { settleBudgetMs: 30 });
    expect(outcome).toMatchObject({ kind: 'dispatched' });
    expect(Date.now() - started).toBeLessThan(2_000);
    hung.fail();
  });

  it('reports a claim that was no longer its own when marked done', async () => {
    const world = routerWorld();
    world.queues.delay = () => {
      world.ledger.replica(EU).delete(QUEUED_KEY);
      return undefined;
    };
    const d = deps(world, EU);
    expect(await routeDelivery(delivery(D1, job('queued'), world), d)).toMatchObject({ kind: 'dispatched' });
    expect(d.records).toContainEqual({
      kind: 'sideFailure',
      detail: { step: 'finish-claim', region: EU, code: 'claim-lost' },
    });
  });
});

describe('routeDelivery: replays of a signed body', () => {
  it("claims the body's identity: the same body under a fresh delivery id enqueues nothing", async () => {
    const world = routerWorld();
    expect(await route(world, EU, D1)).toMatchObject({ kind: 'dispatched' });
    const replay = await route(world, EU, D2);
    expect(replay).toEqual({ kind: 'duplicate', region: EU });
    expect(outcomeResponse(replay).statusCode).toBe(200);
    // and at another region, before replication
    expect(await route(world, AP, '99999999-2222-3333-4444-555555555555')).toEqual({
      kind: 'duplicate',
      region: EU,
    });
    expect(world.queues.sent).toHaveLength(1);
    // the claim records the delivery that made it
    expect(world.ledger.replica(EU).get(QUEUED_KEY)).toMatchObject({ deliveryId: D1, state: 'done' });
  });

  it('acts on a queued body created long ago (a job approved days later keeps its creation time)', async () => {
    const world = routerWorld();
    const handle = createRouterHandler(handlerDeps(world, EU, staticSecrets('s'), recordingTelemetry()));
    const days = new Date(world.now - 3 * 86_400_000).toISOString();
    const body = JSON.stringify(jobPayload('queued', { createdAt: days }));
    const response = await handle(webhookEvent(body, 's', { deliveryId: D1 }));
    expect(response.statusCode).toBe(202);
    expect(JSON.parse(response.body)).toMatchObject({ status: 'queued', region: EU });
    expect(world.queues.sent).toHaveLength(1);
  });

  it.each(['waiting', 'pending', 'requested'])(
    'claims nothing and sends nothing for a job %s for approval, then dispatches the queued sent when it is approved',
    async (status) => {
      const world = routerWorld();
      const held = { ...delivery(D1, job('queued'), world), jobStatus: status };
      expect(await routeDelivery(held, deps(world, EU))).toEqual({ kind: 'awaiting-approval' });
      expect(world.ledger.keys(EU)).toEqual([]);
      expect(world.queues.sent).toHaveLength(0);
      // approved: GitHub's queued of the same job, status queued, under a new delivery id
      expect(await route(world, EU, D2)).toMatchObject({ kind: 'dispatched' });
      expect(world.queues.sent).toHaveLength(1);
    },
  );

  it("keeps its deadline and settle budget well inside API Gateway's 10 s integration timeout", () => {
    expect(DEFAULT_DEADLINE_MS).toBe(6_000);
    expect(DEFAULT_SETTLE_BUDGET_MS).toBe(1_000);
    expect(DEFAULT_DEADLINE_MS + DEFAULT_SETTLE_BUDGET_MS).toBeLessThanOrEqual(7_000);
  });
});

describe('routeDelivery: a completed before its dispatch record', () => {
  it('writes a tombstone for the dispatcher (202); a later completed finds it', async () => {
    const world = routerWorld();
    const outcome = await route(world, US, D1, job('completed'));
    expect(outcome).toEqual({ kind: 'tombstoned' });
    expect(outcomeResponse(outcome)).toMatchObject({ statusCode: 202 });
    expect(world.jobs.tombstones.get(9001)).toEqual({
      completedAt: world.now,
      expiresAt: Math.floor(world.now / 1000) + world.config.leaseTtlSec,
    });
    expect(world.queues.sent).toHaveLength(0);
    // another completed of the job (a later attempt's body): the tombstone answers
    expect(await route(world, EU, D2, job('completed', { runAttempt: 2 }))).toEqual({
      kind: 'not-dispatched',
    });
  });

  it("sends the completed message when the dispatcher's record appears before the tombstone (the race)", async () => {
    const world = routerWorld();
    world.jobs.beforeMark = (id) => world.jobs.records.set(id, { region: AP, runnerType: 'docker' });
    expect(await route(world, US, D1, job('completed'))).toEqual({
      kind: 'completed',
      region: AP,
      runnerType: 'docker',
    });
    expect(world.queues.sent.map((s) => [s.region, s.runnerType, s.message.kind])).toEqual([
      [AP, 'docker', 'completed'],
    ]);
    expect(world.jobs.tombstones.size).toBe(0);
  });

  it('answers 500 and releases its claims when the tombstone cannot be written; a redelivery writes it', async () => {
    const world = routerWorld();
    world.jobs.fault = (op) => (op === 'mark' ? awsError('ThrottlingException', 400) : undefined);
    expect(await route(world, US, D1, job('completed'))).toMatchObject({ kind: 'failed' });
    expect(world.ledger.keys(US)).toEqual([]);
    world.jobs.fault = () => undefined;
    expect(await route(world, US, D1, job('completed'))).toEqual({ kind: 'tombstoned' });
  });
});

describe('routeDelivery: user-owned repositories', () => {
  it('ignores them (202, with the reason), before a single write', async () => {
    const world = routerWorld();
    const d = deps(world, EU);
    const outcome = await routeDelivery({ ...delivery(D1, job('queued'), world), ownerType: 'user' }, d);
    expect(outcome).toEqual({ kind: 'user-owned' });
    expect(outcomeResponse(outcome).statusCode).toBe(202);
    expect(JSON.parse(outcomeResponse(outcome).body)).toEqual({
      status: 'ignored',
      reason: USER_OWNED_REASON,
    });
    // the decision is this estate's (GitHub offers repository-level just-in-time runners too)
    expect(USER_OWNED_REASON).toBe(
      'user-owned repositories are not served: this estate registers runners per organisation',
    );
    expect(world.ledger.calls).toHaveLength(0);
    expect(world.queues.sent).toHaveLength(0);
    // GitHub-hosted jobs of a user stay `not-ours`
    const hosted = {
      ...delivery(D1, job('queued', { labels: ['ubuntu-latest'] }), world),
      ownerType: 'user',
    };
    expect(await routeDelivery(hosted, d)).toEqual({ kind: 'not-ours' });
  });

  it('answers and counts them through the handler', async () => {
    const world = routerWorld();
    const telemetry = recordingTelemetry();
    const handle = createRouterHandler(handlerDeps(world, EU, staticSecrets('s'), telemetry));
    const response = await handle(
      webhookEvent(JSON.stringify(jobPayload('queued', { ownerType: 'User' })), 's', { deliveryId: D1 }),
    );
    expect(response.statusCode).toBe(202);
    expect(JSON.parse(response.body)).toEqual({ status: 'ignored', reason: USER_OWNED_REASON });
    expect(telemetry.records).toContainEqual({ kind: 'outcome', detail: { kind: 'user-owned' } });
    expect(world.queues.sent).toHaveLength(0);
  });
});

describe('the router SDK clients', () => {
  let server: Server;
  let requests = 0;
  const saved = { ...process.env };

  beforeAll(async () => {
    // Accepts every request and never answers.
    server = createServer(() => {
      requests += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
  });

  afterAll(async () => {
    process.env = saved;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('bound every call: 1 s to connect, 2.5 s to answer, two attempts', () => {
    expect(ROUTER_SDK_OPTIONS).toEqual({
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_500, throwOnRequestTimeout: true },
    });
  });

  it('give up on a hung call after its timeout, twice, for DynamoDB, SQS and Secrets Manager', async () => {
    const fast = {
      ...ROUTER_SDK_OPTIONS,
      requestHandler: { ...ROUTER_SDK_OPTIONS.requestHandler, requestTimeout: 100 },
    };
    const clients = routerClients(EU, fast);
    expect(await clients.dynamodb(US).config.maxAttempts()).toBe(2);
    const calls: [string, () => Promise<unknown>][] = [
      [
        'dynamodb',
        () => clients.dynamodb(US).send(new GetItemCommand({ TableName: 't', Key: { k: { S: 'x' } } })),
      ],
      [
        'sqs',
        () =>
          clients.sqs(AP).send(
            new SendMessageCommand({
              QueueUrl: 'https://sqs.ap-southeast-1.amazonaws.com/123456789012/q',
              MessageBody: 'x',
            }),
          ),
      ],
      ['secrets', () => clients.secretsManager.send(new GetSecretValueCommand({ SecretId: 's' }))],
    ];
    for (const [name, call] of calls) {
      const before = requests;
      const started = Date.now();
      await expect(call()).rejects.toMatchObject({ name: 'TimeoutError' });
      expect([name, requests - before]).toEqual([name, 2]);
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  it('a handler on AWS ports answers 500 when DynamoDB hangs, within its deadline', async () => {
    const settings = loadRouterSettings({ ...LOAD_ENV });
    const fast = {
      ...ROUTER_SDK_OPTIONS,
      requestHandler: { ...ROUTER_SDK_OPTIONS.requestHandler, requestTimeout: 100 },
    };
    const telemetry = recordingTelemetry();
    const awsDeps = awsRouterDeps(settings, { sdk: fast, telemetry });
    const handle = createRouterHandler({ ...awsDeps, secrets: staticSecrets('s'), telemetry });
    const body = JSON.stringify(
      jobPayload('queued', { labels: ['self-hosted'], createdAt: new Date(Date.now() - 1000).toISOString() }),
    );
    const response = await handle(webhookEvent(body, 's', { deliveryId: D1 }));
    expect(response.statusCode).toBe(500);
    expect(telemetry.records).toContainEqual({ kind: 'outcome', detail: { kind: 'failed' } });
  });
});

describe('awsRouterDeps and the webhook secret', () => {
  let server: Server;
  const saved = { ...process.env };
  const CURRENT = 'aws-current-secret-4c1e';

  beforeAll(async () => {
    // A Secrets Manager that serves AWSCURRENT and denies AWSPREVIOUS (an old key's policy).
    server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      request.on('end', () => {
        const { VersionStage } = JSON.parse(text) as { VersionStage: string };
        if (VersionStage === 'AWSCURRENT') {
          response.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          response.end(
            JSON.stringify({ Name: 'webhook', SecretString: CURRENT, VersionStages: ['AWSCURRENT'] }),
          );
          return;
        }
        response.writeHead(400, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-errortype': 'AccessDeniedException',
        });
        response.end(JSON.stringify({ __type: 'AccessDeniedException', message: 'denied' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
  });

  afterAll(async () => {
    process.env = saved;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('verifies with AWSCURRENT when AWSPREVIOUS is denied, and tells the telemetry', async () => {
    const telemetry = recordingTelemetry();
    const awsDeps = awsRouterDeps(loadRouterSettings({ ...LOAD_ENV }), { telemetry });
    expect(await awsDeps.secrets.secrets()).toEqual([CURRENT]);
    expect(telemetry.records).toEqual([
      { kind: 'secretUnreadable', detail: { stage: 'AWSPREVIOUS', code: 'webhook-secret-unavailable' } },
    ]);
  });
});

describe('the router telemetry (Powertools)', () => {
  it('counts regions and claims under their own dimensions, never `region` (the default dimension)', async () => {
    const telemetry = powertoolsTelemetry(
      createLogger('runner-router-test'),
      new Metrics({
        namespace: 'Estate/Runners',
        serviceName: 'runner-router',
        defaultDimensions: { region: EU },
      }),
    );
    const { output } = await capturingOutput(async () => {
      telemetry.regionUnreadable(US, 'TimeoutError');
      telemetry.claimTakenOver?.(AP);
      telemetry.secretUnreadable?.('AWSPREVIOUS', {
        permanent: false,
        code: 'transient',
        reason: 'AccessDeniedException',
      });
    });
    const emf = output
      .split('\n')
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const byMetric = (name: string) => emf.find((line) => name in line);
    expect(byMetric('RegionsUnreadable')).toMatchObject({ region: EU, unreadableRegion: US });
    expect(byMetric('ClaimsTakenOver')).toMatchObject({ region: EU, claimRegion: AP });
    expect(byMetric('WebhookSecretUnreadable')).toMatchObject({ region: EU, stage: 'AWSPREVIOUS' });
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

  it('logs a signed delivery it refuses under its id, and an unsigned one under none (its id is not trusted)', async () => {
    const world = routerWorld();
    const telemetry = recordingTelemetry();
    const handle = createRouterHandler(handlerDeps(world, EU, staticSecrets('s'), telemetry));
    const invalid = JSON.stringify({ ...jobPayload('queued'), workflow_job: { id: 'nine' } });
    expect((await handle(webhookEvent(invalid, 's', { deliveryId: D1 }))).statusCode).toBe(400);
    expect(telemetry.records.map((r) => r.kind)).toEqual(['begin', 'refused', 'end']);
    expect(telemetry.records[0]?.detail).toEqual({ deliveryId: D1 });
    telemetry.records.length = 0;
    const body = JSON.stringify(jobPayload('queued'));
    expect((await handle(webhookEvent(body, 'not-the-secret', { deliveryId: D2 }))).statusCode).toBe(401);
    expect(telemetry.records.map((r) => r.kind)).toEqual(['refused', 'end']);
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

  const conditionFailed = (item?: Record<string, unknown>) =>
    Object.assign(awsError('ConditionalCheckFailedException', 400), item ? { Item: item } : {});
  const NOW = 1_700_000_000_000;
  const request = {
    key: `delivery:${D1}`,
    owner: 'owner-1',
    deliveryId: D1,
    receivedAt: NOW,
    pendingUntil: NOW + 30_000,
    ttlSec: 3600,
  };

  it('claims pending with a conditional put in the region named, taking over a pending claim past its lease', async () => {
    const us = fakeClient<DynamoDBClient>(() => ({}));
    const clients = new RegionalClients(() => us.client);
    const ledger = new DynamodbClaimLedger({
      dynamodb: (r) => clients.of(r),
      tableName: 'idempotency',
      localRegion: US,
      now: () => NOW,
    });
    expect(await ledger.claim(US, request)).toBe('claimed');
    expect(us.sent[0]?.input).toEqual({
      TableName: 'idempotency',
      Item: {
        key: { S: `delivery:${D1}` },
        state: { S: 'pending' },
        owner: { S: 'owner-1' },
        region: { S: US },
        deliveryId: { S: D1 },
        receivedAt: { N: String(NOW) },
        pendingUntil: { N: String(NOW + 30_000) },
        expiresAt: { N: String(NOW / 1000 + 3600) },
      },
      ConditionExpression:
        'attribute_not_exists(#key) OR #expires < :nowSec OR (#state = :pending AND #until < :nowMs)',
      ExpressionAttributeNames: {
        '#key': 'key',
        '#expires': 'expiresAt',
        '#state': 'state',
        '#until': 'pendingUntil',
      },
      ExpressionAttributeValues: {
        ':nowSec': { N: String(NOW / 1000) },
        ':nowMs': { N: String(NOW) },
        ':pending': { S: 'pending' },
      },
      ReturnValues: 'ALL_OLD',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    // The put replaced a pending claim (the condition let it: its lease had passed).
    const replaced = fakeClient<DynamoDBClient>(() => ({
      Attributes: { state: { S: 'pending' }, pendingUntil: { N: String(NOW - 1) } },
    }));
    const taker = new DynamodbClaimLedger({
      dynamodb: () => replaced.client,
      tableName: 'idempotency',
      localRegion: US,
      now: () => NOW,
    });
    expect(await taker.claim(EU, request)).toBe('taken-over');
  });

  it.each([
    ['a done claim', { state: { S: 'done' } }, 'done'],
    ['a claim written before the two phases', { region: { S: EU } }, 'done'],
    [
      'a pending claim within its lease',
      { state: { S: 'pending' }, pendingUntil: { N: String(NOW) } },
      'pending',
    ],
    // nothing says it was handled: in flight (409, redeliverable), never a 200 that is not redelivered
    ['no item returned', undefined, 'pending'],
  ])('answers what the failed condition found: %s', async (_case, item, expected) => {
    const { client } = fakeClient<DynamoDBClient>(() => conditionFailed(item));
    const ledger = new DynamodbClaimLedger({
      dynamodb: () => client,
      tableName: 'idempotency',
      localRegion: US,
      now: () => NOW,
    });
    expect(await ledger.claim(EU, request)).toBe(expected);
  });

  it("marks done and releases only the owner's claim; other failures are thrown", async () => {
    const { client, sent } = fakeClient<DynamoDBClient>(() => ({}));
    const ledger = new DynamodbClaimLedger({
      dynamodb: () => client,
      tableName: 'idempotency',
      localRegion: US,
      now: () => NOW + 5,
    });
    expect(await ledger.finish(EU, request)).toBe(true);
    expect(sent[0]?.input).toMatchObject({
      Item: { state: { S: 'done' }, doneAt: { N: String(NOW + 5) }, receivedAt: { N: String(NOW) } },
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeValues: { ':owner': { S: 'owner-1' } },
    });
    expect((sent[0]?.input.Item as Record<string, unknown>).pendingUntil).toBeUndefined();
    await ledger.release(EU, request.key, 'owner-1');
    expect(sent[1]).toMatchObject({
      name: 'DeleteItemCommand',
      input: {
        Key: { key: { S: `delivery:${D1}` } },
        ConditionExpression: '#owner = :owner',
        ExpressionAttributeValues: { ':owner': { S: 'owner-1' } },
      },
    });
    const lost = fakeClient<DynamoDBClient>(() => conditionFailed());
    const other = new DynamodbClaimLedger({
      dynamodb: () => lost.client,
      tableName: 't',
      localRegion: US,
      now: () => NOW,
    });
    expect(await other.finish(EU, request)).toBe(false);
    await expect(other.release(EU, request.key, 'owner-1')).resolves.toBeUndefined();
    const failing = fakeClient<DynamoDBClient>(() => awsError('InternalServerError'));
    const broken = new DynamodbClaimLedger({
      dynamodb: () => failing.client,
      tableName: 't',
      localRegion: US,
      now: Date.now,
    });
    await expect(broken.claim(US, request)).rejects.toThrow('InternalServerError');
    await expect(broken.finish(US, request)).rejects.toThrow('InternalServerError');
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

  it('reads a job record, a tombstone, and none when it is missing or expired', async () => {
    const items: Record<string, unknown> = {
      'job:1': { Item: { region: { S: EU }, runnerType: { S: 'docker' } } },
      'job:2': {},
      'job:3': { Item: { region: { S: EU }, runnerType: { S: 'docker' }, expiresAt: { N: '1' } } },
      'job:4': { Item: { completed: { BOOL: true }, completedAt: { N: '5' }, expiresAt: { N: '9' } } },
      'job:5': { Item: { region: { S: EU } } },
    };
    const { client } = fakeClient<DynamoDBClient>(
      (c) => items[String((c.input.Key as { workflowId: { S: string } }).workflowId.S)],
    );
    const jobs = new DynamodbJobLookup({ dynamodb: client, tableName: 'workflows', now: () => 5000 });
    expect(await jobs.get(1)).toEqual({ kind: 'record', record: { region: EU, runnerType: 'docker' } });
    expect(await jobs.get(2)).toEqual({ kind: 'absent' });
    expect(await jobs.get(3)).toEqual({ kind: 'absent' });
    expect(await jobs.get(4)).toEqual({ kind: 'tombstone' });
    expect(await jobs.get(5)).toEqual({ kind: 'unreadable' });
  });

  it('writes a tombstone only where no job item is, and answers the item that is there', async () => {
    const marked = fakeClient<DynamoDBClient>(() => ({}));
    const jobs = new DynamodbJobLookup({ dynamodb: marked.client, tableName: 'workflows', now: () => NOW });
    expect(await jobs.markCompleted(42, 21_600)).toEqual({ kind: 'marked' });
    expect(marked.sent[0]).toEqual({
      name: 'PutItemCommand',
      input: {
        TableName: 'workflows',
        Item: {
          workflowId: { S: 'job:42' },
          completed: { BOOL: true },
          completedAt: { N: String(NOW) },
          expiresAt: { N: String(NOW / 1000 + 21_600) },
        },
        ConditionExpression: 'attribute_not_exists(#key) OR #expires < :now',
        ExpressionAttributeNames: { '#key': 'workflowId', '#expires': 'expiresAt' },
        ExpressionAttributeValues: { ':now': { N: String(NOW / 1000) } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    });
    // The dispatcher's record is there (written since the read): answered from the failed condition.
    const raced = fakeClient<DynamoDBClient>(() =>
      conditionFailed({ workflowId: { S: 'job:42' }, region: { S: AP }, runnerType: { S: 'standard' } }),
    );
    const racing = new DynamodbJobLookup({ dynamodb: raced.client, tableName: 'w', now: () => NOW });
    expect(await racing.markCompleted(42, 60)).toEqual({
      kind: 'record',
      record: { region: AP, runnerType: 'standard' },
    });
    expect(raced.sent).toHaveLength(1);
    // No item returned with the failure: read (strongly consistent).
    const bare = fakeClient<DynamoDBClient>((c) =>
      c.name === 'PutItemCommand' ? conditionFailed() : { Item: { completed: { BOOL: true } } },
    );
    const reading = new DynamodbJobLookup({ dynamodb: bare.client, tableName: 'w', now: () => NOW });
    expect(await reading.markCompleted(42, 60)).toEqual({ kind: 'tombstone' });
    expect(bare.sent.map((c) => [c.name, c.input.ConsistentRead])).toEqual([
      ['PutItemCommand', undefined],
      ['GetItemCommand', true],
    ]);
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

const LOAD_ENV = {
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
