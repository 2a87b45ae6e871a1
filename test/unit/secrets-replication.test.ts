import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { replicateToAll } from '../../runtime/secrets/fan-out';
import { handleTrigger, replicateSecret } from '../../runtime/secrets/replicator';
import {
  CONTENT_HASH,
  ORIGIN_VERSION,
  ORPHANED_AT,
  REPLICA_OF,
  RULE_HASH,
} from '../../runtime/secrets/replica-tags';
import { contentHash, replicaOriginMs } from '../../runtime/secrets/version-token';
import { awsError, destinationOf, World } from '../support/secrets-fixtures';

const DAY = 86_400_000;
const swap = (from: string, to: string) => (value: string) => value.split(from).join(to);

/** A two-way pair after west's first write reached east, a second later. */
async function replicatedPair() {
  const world = new World();
  const deps = pair(world);
  const west = world.region('us-west-2');
  const east = world.region('us-east-1');
  west.userWrite('app/db', 'host=west v0');
  await replicateSecret('app/db', deps.west);
  world.now += 1000;
  return { world, deps, west, east };
}

/** Two replicators pointing at each other (two-way), each rewriting the other region's name. */
const pair = (world: World) => ({
  west: world.replicator('us-west-2', [
    destinationOf({ region: 'us-east-1', twoWay: true, transform: swap('west', 'east') }),
  ]),
  east: world.replicator('us-east-1', [
    destinationOf({ region: 'us-west-2', twoWay: true, transform: swap('east', 'west') }),
  ]),
});

describe('secrets replication: one secret to its destinations', () => {
  it('creates a transformed, tagged replica, then finds it up to date with one read and no write', async () => {
    const world = new World();
    const source = world.region('us-west-2').userWrite('app/db', '{"host":"db.us-west-2"}');
    const east = world.region('us-east-1');
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', transform: swap('us-west-2', 'us-east-1') }),
    ]);

    const first = await replicateSecret('app/db', deps);
    expect(first.results).toEqual([{ destination: 'us-east-1', outcome: 'created', target: 'app/db' }]);
    expect(east.textOf('app/db')).toBe('{"host":"db.us-east-1"}');
    const replica = east.secret('app/db');
    expect(replica?.tags[REPLICA_OF]).toBe(source.arn);
    expect(replica?.tags[ORIGIN_VERSION]).toBe(source.versions[0]?.id);
    expect(replica?.tags[CONTENT_HASH]).toBe(
      contentHash({ kind: 'string', text: '{"host":"db.us-east-1"}' }),
    );
    expect(replica?.tags[RULE_HASH]).toBe('rule-1');
    const version = replica?.versions[0];
    expect(version && replicaOriginMs(version.id, version.value)).toBe(source.versions[0]?.created.getTime());

    east.calls.length = 0;
    const second = await replicateSecret('app/db', deps);
    expect(second.results[0]?.outcome).toBe('up-to-date');
    expect(east.calls.map((c) => c.op)).toEqual(['describe']);
  });

  it('copies a binary secret byte for byte, untransformed', async () => {
    const world = new World();
    const bytes = new Uint8Array([0, 255, 10, 13, 0x75, 0x73, 0x2d, 0x77]);
    world.region('us-west-2').userWrite('app/cert', { kind: 'binary', bytes });
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', transform: () => 'never used on bytes' }),
    ]);
    await replicateSecret('app/cert', deps);
    const copied = world.region('us-east-1').valueOf('app/cert');
    expect(copied?.kind).toBe('binary');
    expect(copied?.kind === 'binary' && Buffer.from(copied.bytes).equals(Buffer.from(bytes))).toBe(true);
  });

  it('renames, and leaves out what a destination does not select', async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/prod/db', 'v1');
    const deps = world.replicator('us-west-2', [
      destinationOf({ name: 'dr', region: 'us-east-2', rename: (n) => n.replace('app/prod/', 'app/dr/') }),
      destinationOf({ name: 'eu', region: 'eu-west-1', selects: (n) => n.startsWith('db/') }),
    ]);
    const report = await replicateSecret('app/prod/db', deps);
    expect(report.results).toEqual([
      { destination: 'dr', outcome: 'created', target: 'app/dr/db' },
      { destination: 'eu', outcome: 'not-selected' },
    ]);
    expect(world.region('us-east-2').textOf('app/dr/db')).toBe('v1');
    expect(world.region('eu-west-1').names()).toEqual([]);
  });

  it("repairs a user's write at a one-way destination, reusing the replica's earlier version", async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'v1');
    const east = world.region('us-east-1');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1' })]);
    await replicateSecret('app/db', deps);
    east.userWrite('app/db', 'drifted');

    const report = await replicateSecret('app/db', deps);
    expect(report.results[0]?.outcome).toBe('updated');
    expect(east.textOf('app/db')).toBe('v1');
    // The token names the version written before: Secrets Manager ignores the put; it is made current.
    expect(east.writes.map((c) => c.op)).toEqual(['create', 'putPending', 'makeCurrent']);
  });

  it('never puts an older origin write over a later one already there', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'v1');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1' })]);
    const stale = await west.current('app/db');
    const description = await west.describe('app/db');
    world.now += 1000;
    west.userWrite('app/db', 'v2');
    await replicateSecret('app/db', deps);
    // A slow delivery that read v1 before v2 was written arrives last.
    if (!description || !stale) throw new Error('the source was written above');
    const late = await replicateToAll(
      { description, current: stale },
      [destinationOf({ region: 'us-east-1' })],
      { connect: deps.connect, own: deps.self, parallelism: 1, retry: deps.retry, nowMs: world.now },
    );
    expect(late[0]?.outcome).toBe('up-to-date');
    expect(world.region('us-east-1').textOf('app/db')).toBe('v2');
  });

  it('replicates a rollback: AWSCURRENT moved back to an older version', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'v1');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1' })]);
    await replicateSecret('app/db', deps);
    const v1 = west.secret('app/db')?.versions[0]?.id as string;
    world.now += 60_000;
    west.userWrite('app/db', 'v2');
    await replicateSecret('app/db', deps);
    const v2 = west.secret('app/db')?.versions[1]?.id;
    await west.makeCurrent('app/db', v1, v2);
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('updated');
    expect(world.region('us-east-1').textOf('app/db')).toBe('v1');
  });
});

describe('secrets replication: rotation and tags', () => {
  it('replicates a rotation when the new version becomes current, not when it is pending', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'password=1');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1' })]);
    await replicateSecret('app/db', deps);
    world.now += 1000;
    const current = west.secret('app/db')?.versions[0]?.id;
    await west.putPending(
      'app/db',
      'rotation-0000000000000000000000000001',
      { kind: 'string', text: 'password=2' },
      'AWSPENDING',
    );
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('up-to-date');
    expect(world.region('us-east-1').textOf('app/db')).toBe('password=1');
    await west.makeCurrent('app/db', 'rotation-0000000000000000000000000001', current);
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('updated');
    expect(world.region('us-east-1').textOf('app/db')).toBe('password=2');
  });

  it('replicates a secret once a tag makes a tag rule select it', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'v');
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', requiresTag: 'replicate' }),
    ]);
    expect(await replicateSecret('app/db', deps)).toMatchObject({
      action: 'skipped',
      reason: 'no destination takes it',
    });
    west.userTag('app/db', { replicate: 'yes' });
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('created');
  });
});

describe('secrets replication: isolation, retries and failures', () => {
  const three = () => [
    destinationOf({ region: 'us-east-1' }),
    destinationOf({ region: 'us-east-2' }),
    destinationOf({ region: 'eu-west-1' }),
  ];

  it('fails only the destination that failed; the retry writes only there', async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'v1');
    const denied = world.region('us-east-2');
    denied.failures.push({ op: 'create', error: () => awsError('AccessDeniedException', 400), times: 1 });
    const deps = world.replicator('us-west-2', three());

    const error = await handleTrigger(
      { kind: 'change', secretId: 'app/db', call: 'PutSecretValue' },
      deps,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toBe(
      'destinations-failed: 1 destination(s) failed: us-east-2; us-east-2: transient failure: AccessDeniedException (HTTP 400)',
    );
    expect(world.region('us-east-1').textOf('app/db')).toBe('v1');
    expect(world.region('eu-west-1').textOf('app/db')).toBe('v1');

    for (const region of ['us-east-1', 'eu-west-1']) world.region(region).calls.length = 0;
    const retried = await handleTrigger({ kind: 'change', secretId: 'app/db', call: 'PutSecretValue' }, deps);
    expect(retried.kind === 'secret' && retried.results.map((r) => r.outcome)).toEqual([
      'up-to-date',
      'created',
      'up-to-date',
    ]);
    for (const region of ['us-east-1', 'eu-west-1']) {
      expect(world.region(region).writes).toEqual([]);
      expect(world.region(region).calls.map((c) => c.op)).toEqual(['describe']);
    }
  });

  it('retries throttling and 5xx with backoff, each destination on its own', async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'v1');
    const waits: number[] = [];
    const deps = world.replicator('us-west-2', three(), {
      retry: {
        attempts: 4,
        baseMs: 100,
        capMs: 1000,
        random: () => 0.5,
        sleep: async (ms) => void waits.push(ms),
      },
    });
    world
      .region('us-east-1')
      .failures.push({ op: 'describe', error: () => awsError('ThrottlingException', 400), times: 2 });
    world
      .region('us-east-2')
      .failures.push({ op: 'create', error: () => awsError('InternalServiceError', 500), times: 1 });
    const report = await replicateSecret('app/db', deps);
    expect(report.results.map((r) => r.outcome)).toEqual(['created', 'created', 'created']);
    expect(waits.sort((a, b) => a - b)).toEqual([50, 50, 100]);
  });

  it('does not retry a 4xx within the invocation, and reports a permanent failure as permanent', async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'x'.repeat(60_000));
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', transform: (v) => v + v }),
      destinationOf({ region: 'eu-west-1' }),
    ]);
    world
      .region('eu-west-1')
      .failures.push({ op: 'describe', error: () => awsError('AccessDeniedException', 400), times: 5 });
    const report = await replicateSecret('app/db', deps);
    expect(report.results[0]).toMatchObject({ outcome: 'failed', permanent: true });
    expect(report.results[0]?.reason).toBe(
      'value-size: filters[0]: the replicated value is 120000 bytes; Secrets Manager takes 1 to 65536',
    );
    expect(world.region('eu-west-1').calls.filter((c) => c.op === 'describe')).toHaveLength(1);
    const both = await handleTrigger(
      { kind: 'change', secretId: 'app/db', call: 'PutSecretValue' },
      deps,
    ).catch((e: unknown) => e);
    expect(both).toBeInstanceOf(RetryableError);
  });

  it('is permanent when every failure is', async () => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'v');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-west-2' })]);
    const error = await handleTrigger(
      { kind: 'change', secretId: 'app/db', call: 'CreateSecret' },
      deps,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as Error).message).toContain('destination-is-source');
  });
});

describe('secrets replication: loops and two-way sources', () => {
  it('settles after one hop: a replica write is never replicated again', async () => {
    const world = new World();
    const { west, east } = pair(world);
    world.region('us-west-2').userWrite('app/db', 'host=west');
    await replicateSecret('app/db', west);
    expect(world.region('us-east-1').textOf('app/db')).toBe('host=east');

    world.region('us-west-2').calls.length = 0;
    const echo = await replicateSecret('app/db', east);
    expect(echo).toMatchObject({ action: 'skipped' });
    expect(world.region('us-west-2').writes).toEqual([]);
  });

  it("a user's write to a secret that is also a replica travels back", async () => {
    const world = new World();
    const { west, east } = pair(world);
    world.region('us-west-2').userWrite('app/db', 'host=west v1');
    await replicateSecret('app/db', west);
    world.now += 1000;
    world.region('us-east-1').userWrite('app/db', 'host=east v2');
    await replicateSecret('app/db', east);
    expect(world.region('us-west-2').textOf('app/db')).toBe('host=west v2');
    expect((await replicateSecret('app/db', west)).action).toBe('skipped');
  });

  it.each([
    ['west first', ['west', 'east'] as const],
    ['east first', ['east', 'west'] as const],
  ])('concurrent writes on both sides end equal, the later write winning (%s)', async (_, order) => {
    const world = new World();
    const deps = pair(world);
    world.region('us-west-2').userWrite('app/db', 'host=west early');
    world.now += 5;
    world.region('us-east-1').userWrite('app/db', 'host=east late');
    for (const side of order) await replicateSecret('app/db', deps[side]);
    expect(world.region('us-west-2').textOf('app/db')).toBe('host=west late');
    expect(world.region('us-east-1').textOf('app/db')).toBe('host=east late');
  });

  it('writes in the same millisecond resolve the same way on both sides (ARN order)', async () => {
    const world = new World();
    const deps = pair(world);
    const w = world.region('us-west-2').userWrite('app/db', 'host=west W');
    const e = world.region('us-east-1').userWrite('app/db', 'host=east E');
    await Promise.all([replicateSecret('app/db', deps.west), replicateSecret('app/db', deps.east)]);
    await replicateSecret('app/db', deps.west);
    await replicateSecret('app/db', deps.east);
    const westWins = w.arn > e.arn;
    expect(world.region('us-west-2').textOf('app/db')).toBe(westWins ? 'host=west W' : 'host=west E');
    expect(world.region('us-east-1').textOf('app/db')).toBe(westWins ? 'host=east W' : 'host=east E');
  });
});

describe('secrets replication: delete policies', () => {
  const setup = (deletePolicy: Parameters<typeof destinationOf>[0]['deletePolicy']) => {
    const world = new World();
    world.region('us-west-2').userWrite('app/db', 'v1');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1', deletePolicy })]);
    return { world, deps, east: world.region('us-east-1') };
  };

  it('propagate: the replica is scheduled for deletion with the recovery window the origin got', async () => {
    const { world, deps, east } = setup({ kind: 'propagate' });
    await replicateSecret('app/db', deps);
    world.region('us-west-2').userDelete('app/db', { recoveryDays: 10 });
    const report = await replicateSecret('app/db', deps);
    expect(report).toMatchObject({ action: 'retired', results: [{ outcome: 'deleted' }] });
    expect(east.secret('app/db')?.deletedDate?.getTime()).toBe(world.now + 10 * DAY);

    world.region('us-west-2').userRestore('app/db');
    const restored = await replicateSecret('app/db', deps);
    expect(restored.results[0]?.outcome).toBe('restored');
    expect(east.secret('app/db')?.deletedDate).toBeUndefined();
  });

  it('ignore: the replica stays', async () => {
    const { world, deps, east } = setup({ kind: 'ignore' });
    await replicateSecret('app/db', deps);
    world.region('us-west-2').userDelete('app/db');
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('kept');
    expect(east.secret('app/db')?.deletedDate).toBeUndefined();
  });

  it('grace: marked first, deleted once the grace period has passed, unmarked by a restore', async () => {
    const { world, deps, east } = setup({ kind: 'grace', days: 3 });
    await replicateSecret('app/db', deps);
    world.region('us-west-2').userDelete('app/db');
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('delete-pending');
    expect(east.secret('app/db')?.tags[ORPHANED_AT]).toBe(new Date(world.now).toISOString());
    world.now += 2 * DAY;
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('delete-pending');
    world.region('us-west-2').userRestore('app/db');
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('tagged');
    expect(east.secret('app/db')?.tags[ORPHANED_AT]).toBeUndefined();

    world.region('us-west-2').userDelete('app/db');
    await replicateSecret('app/db', deps);
    world.now += 3 * DAY;
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('deleted');
    expect(east.secret('app/db')?.deletedDate).toBeDefined();
  });

  it('never deletes a secret that is not a replica of this origin', async () => {
    const { world, deps, east } = setup({ kind: 'propagate' });
    east.userWrite('app/db', "someone else's");
    world.region('us-west-2').userDelete('app/db');
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('not-a-replica');
    expect(east.secret('app/db')?.deletedDate).toBeUndefined();
  });

  it('a source deleted without recovery retires its replicas through its ARN', async () => {
    const { world, deps, east } = setup({ kind: 'propagate' });
    await replicateSecret('app/db', deps);
    const arn = world.region('us-west-2').secret('app/db')?.arn as string;
    world.region('us-west-2').userDelete('app/db', { force: true });
    const report = await replicateSecret(arn, deps);
    expect(report).toMatchObject({ action: 'retired', results: [{ outcome: 'deleted' }] });
    expect(east.secret('app/db')?.deletedDate?.getTime()).toBe(world.now + 7 * DAY);
  });
});

describe('secrets replication: the resync', () => {
  it('replicates what events missed, then costs only reads; sweeps replicas whose origin is gone', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    for (let i = 0; i < 30; i++) west.userWrite(`app/s${i}`, `value ${i}`);
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', deletePolicy: { kind: 'propagate' } }),
      destinationOf({ region: 'eu-west-1' }),
    ]);
    const first = await handleTrigger({ kind: 'resync' }, deps);
    expect(first).toMatchObject({ kind: 'resync', secrets: 30, outcomes: { created: 60 }, failures: [] });

    for (const region of ['us-east-1', 'eu-west-1']) world.region(region).calls.length = 0;
    const quiet = await handleTrigger({ kind: 'resync' }, deps);
    expect(quiet).toMatchObject({ secrets: 30, outcomes: { 'up-to-date': 60 } });
    for (const region of ['us-east-1', 'eu-west-1']) {
      expect(world.region(region).writes).toEqual([]);
      expect(world.region(region).calls.map((c) => c.op)).toEqual(['list']);
    }

    world.region('us-east-1').userWrite('app/s3', 'drifted');
    west.userDelete('app/s4', { force: true });
    const repaired = await handleTrigger({ kind: 'resync' }, deps);
    expect(repaired).toMatchObject({ secrets: 29, outcomes: { updated: 1, deleted: 1, 'up-to-date': 57 } });
    expect(world.region('us-east-1').textOf('app/s3')).toBe('value 3');
    expect(world.region('us-east-1').secret('app/s4')?.deletedDate).toBeDefined();
    expect(world.region('eu-west-1').secret('app/s4')?.deletedDate).toBeUndefined();
  });

  it('sweeps only the replicas a destination writes itself, under its own delete policy', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/x', 'x');
    west.userWrite('db/y', 'y');
    const deps = world.replicator('us-west-2', [
      destinationOf({ name: 'keep', region: 'us-east-1', selects: (n) => n.startsWith('app/') }),
      destinationOf({
        name: 'backup',
        region: 'us-east-1',
        selects: (n) => n.startsWith('db/'),
        deletePolicy: { kind: 'propagate' },
      }),
    ]);
    await handleTrigger({ kind: 'resync' }, deps);
    west.userDelete('app/x', { force: true });
    west.userDelete('db/y', { force: true });
    const report = await handleTrigger({ kind: 'resync' }, deps);
    expect(report).toMatchObject({ outcomes: { kept: 1, deleted: 1 } });
    expect(world.region('us-east-1').secret('app/x')?.deletedDate).toBeUndefined();
    expect(world.region('us-east-1').secret('db/y')?.deletedDate).toBeDefined();
  });
});

describe('secrets replication: what the review found', () => {
  it('reads no value of a secret no destination takes, on its event or in a resync', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'v');
    const payments = west.userWrite('payments/key', 'k');
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', selects: (n) => n.startsWith('app/') }),
    ]);
    expect(await replicateSecret(payments.arn, deps)).toMatchObject({
      action: 'skipped',
      reason: 'no destination takes it',
    });
    expect(await handleTrigger({ kind: 'resync' }, deps)).toMatchObject({ secrets: 1, failures: [] });
    const valueReads = west.calls.filter((c) => c.op === 'current').map((c) => c.secretId);
    expect(valueReads.some((id) => id.includes('payments'))).toBe(false);
    expect(valueReads.some((id) => id.includes('app/db'))).toBe(true);
  });

  it('a user write landing between the two-way check and the write is decided again, and wins on both sides', async () => {
    const { world, deps, west, east } = await replicatedPair();
    west.userWrite('app/db', 'host=west X');
    // West's write of X reaches east only after a user wrote Y there (later) and east replicated it west.
    east.before.push({
      op: 'putPending',
      run: async () => {
        world.now += 5;
        east.userWrite('app/db', 'host=east Y');
        await replicateSecret('app/db', deps.east);
      },
    });
    const crossed = await replicateSecret('app/db', deps.west);
    expect(crossed.results[0]?.outcome).toBe('newer-at-destination');
    expect(east.textOf('app/db')).toBe('host=east Y');
    expect(west.textOf('app/db')).toBe('host=west Y');
    for (const side of ['west', 'east'] as const) await replicateSecret('app/db', deps[side]);
    expect([west.textOf('app/db'), east.textOf('app/db')]).toEqual(['host=west Y', 'host=east Y']);
  });

  it("a user's rollback to content that was once replicated in still travels (no stale content-hash tag)", async () => {
    const world = new World();
    const deps = pair(world);
    const west = world.region('us-west-2');
    const east = world.region('us-east-1');
    west.userWrite('app/db', 'pw=old host=west');
    await replicateSecret('app/db', deps.west);
    world.now += 1000;
    east.userWrite('app/db', 'pw=new host=east');
    await replicateSecret('app/db', deps.east);
    world.now += 1000;
    east.userWrite('app/db', 'pw=old host=east');
    expect((await replicateSecret('app/db', deps.east)).action).toBe('replicated');
    expect(west.textOf('app/db')).toBe('pw=old host=west');
  });

  it('writes with PutSecretValue to a destination whose key is an alias, and replicates a rollback there', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    west.userWrite('app/db', 'v1');
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', kmsKeyId: 'alias/replicas' }),
    ]);
    await replicateSecret('app/db', deps);
    const v1 = west.secret('app/db')?.versions[0]?.id as string;
    world.now += 60_000;
    west.userWrite('app/db', 'v2');
    await replicateSecret('app/db', deps);
    await west.makeCurrent('app/db', v1, west.secret('app/db')?.versions[1]?.id);
    await replicateSecret('app/db', deps);
    const east = world.region('us-east-1');
    expect(east.textOf('app/db')).toBe('v1');
    expect(east.writes.map((c) => c.op)).not.toContain('setKey');
  });

  it('the sweep keeps the replica of a secret created after the source listing', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    const east = world.region('us-east-1');
    west.userWrite('app/a', 'a');
    const deps = world.replicator('us-west-2', [
      destinationOf({ region: 'us-east-1', deletePolicy: { kind: 'propagate' } }),
    ]);
    await handleTrigger({ kind: 'resync' }, deps);
    east.before.push({
      op: 'list',
      run: async () => {
        west.userWrite('app/new', 'n');
        await replicateSecret('app/new', deps);
      },
    });
    const report = await handleTrigger({ kind: 'resync' }, deps);
    expect(report).toMatchObject({ outcomes: { 'up-to-date': 1 } });
    expect(east.secret('app/new')?.deletedDate).toBeUndefined();
  });

  it('never lets a slower delivery put an older write over a later one (compare-and-swap on AWSCURRENT)', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    const east = world.region('us-east-1');
    west.userWrite('app/db', 'v0');
    const deps = world.replicator('us-west-2', [destinationOf({ region: 'us-east-1' })]);
    await replicateSecret('app/db', deps);
    world.now += 1000;
    west.userWrite('app/db', 'v1');
    // v1's delivery has read and decided when v2 is written and its whole delivery runs.
    east.before.push({
      op: 'putPending',
      run: async () => {
        world.now += 1000;
        west.userWrite('app/db', 'v2');
        expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('updated');
      },
    });
    expect((await replicateSecret('app/db', deps)).results[0]?.outcome).toBe('up-to-date');
    expect(east.textOf('app/db')).toBe('v2');
  });

  it('two deliveries and a later user write at a two-way destination: both sides end with the user write', async () => {
    const { world, deps, west, east } = await replicatedPair();
    west.userWrite('app/db', 'host=west v1');
    east.before.push({
      op: 'putPending',
      run: async () => {
        world.now += 1000;
        east.userWrite('app/db', 'host=east UB');
        // A second delivery of west's change runs whole meanwhile.
        expect((await replicateSecret('app/db', deps.west)).results[0]?.outcome).toBe('newer-at-destination');
      },
    });
    expect((await replicateSecret('app/db', deps.west)).results[0]?.outcome).toBe('newer-at-destination');
    await replicateSecret('app/db', deps.east);
    expect([west.textOf('app/db'), east.textOf('app/db')]).toEqual(['host=west UB', 'host=east UB']);
  });

  it('a replica selected by a tag rule is retired by the resync when its origin is gone (the destination tag)', async () => {
    const world = new World();
    const west = world.region('us-west-2');
    const east = world.region('us-east-1');
    west.userWrite('app/db', 'v', { replicate: 'yes' });
    const deps = world.replicator('us-west-2', [
      destinationOf({
        name: 'tagged',
        region: 'us-east-1',
        requiresTag: 'replicate',
        deletePolicy: { kind: 'propagate' },
      }),
    ]);
    await replicateSecret('app/db', deps);
    expect(east.secret('app/db')?.tags['estate:replica-destination']).toBe('tagged');
    west.userDelete('app/db', { force: true });
    expect(await handleTrigger({ kind: 'resync' }, deps)).toMatchObject({ outcomes: { deleted: 1 } });
    expect(east.secret('app/db')?.deletedDate).toBeDefined();
  });
});
