import { HandlerConfigError } from '../../runtime/lib/config';
import {
  createAdminHandler,
  defaultAdminDependencies,
  type AdminEvent,
} from '../../runtime/runners/admin/handler';
import { parseRunnerConfig } from '../../runtime/runners/config';
import type { OperatorStatus } from '../../runtime/runners/model';
import {
  ConcurrentChangeError,
  LastActiveRegionError,
  type AuditActor,
  type OperatorRecord,
  type RegionStatusPort,
  type RegionStatusRecord,
  type StatusChange,
} from '../../runtime/runners/region-status';
import type { RegionReading } from '../../runtime/runners/region-views';

const ACCOUNT = '123456789012';
const ALICE = `arn:aws:sts::${ACCOUNT}:assumed-role/operator/alice`;
const config = parseRunnerConfig({
  regions: [
    { region: 'us-east-1', priority: 2, capacity: 40 },
    { region: 'eu-central-1', priority: 1, capacity: 50 },
  ],
  runnerTypes: [{ name: 'standard', labels: ['self-hosted'] }],
});

/** An in-memory port: operator statuses per region; `fail` makes the next change throw. */
function fakeStatuses() {
  const operators = new Map<string, OperatorRecord>();
  const calls: [string, string, string, string][] = [];
  const actors: AuditActor[] = [];
  let fail: unknown;
  const change = async (
    action: string,
    to: OperatorStatus,
    region: string,
    actor: AuditActor,
    reason: string,
  ): Promise<StatusChange> => {
    calls.push([action, region, actor.arn, reason]);
    actors.push(actor);
    if (fail) throw fail;
    const before = operators.get(region) ?? { status: 'active' as const, audit: [], version: 0 };
    if (before.status === to) return { region, from: to, to, changed: false, operator: before };
    const at = '2030-01-01T00:00:00.000Z';
    const { arn, ...who } = actor;
    const operator: OperatorRecord = {
      status: to,
      changedBy: arn,
      ...who,
      changedAt: at,
      reason,
      audit: [...before.audit, { status: to, by: arn, ...who, at, reason }],
      version: before.version + 1,
    };
    operators.set(region, operator);
    return { region, from: before.status, to, changed: true, operator };
  };
  const port: RegionStatusPort = {
    readStatuses: async (regions) =>
      new Map(
        regions.map((region): [string, RegionStatusRecord] => {
          const operator = operators.get(region) ?? { status: 'active', audit: [], version: 0 };
          const healthy = region !== 'us-east-1';
          return [
            region,
            {
              region,
              status: healthy ? operator.status : 'out',
              health: healthy
                ? { state: 'healthy', checkedAt: '2030-01-01T00:00:00.000Z', failing: [] }
                : { state: 'missing', failing: [] },
              operator,
            },
          ];
        }),
      ),
    drain: (region, actor, reason) => change('drain', 'draining', region, actor, reason),
    restore: (region, actor, reason) => change('restore', 'active', region, actor, reason),
  };
  return { port, calls, actors, operators, failNext: (error: unknown) => (fail = error) };
}

const EU_METRICS = { queueDepth: 120, inUse: 40, capacity: 50, dispatched: 200, failed: 3 };

function setup(euMetrics = EU_METRICS, euReading: Partial<RegionReading> = {}) {
  const statuses = fakeStatuses();
  const logs: [string, string, Record<string, unknown>][] = [];
  let readings = 0;
  const handler = createAdminHandler({
    config,
    accountId: ACCOUNT,
    statuses: statuses.port,
    views: {
      readings: async () => {
        readings += 1;
        return new Map<string, RegionReading>([
          [
            'eu-central-1',
            {
              view: {
                status: 'active',
                metrics: euMetrics,
                spilling: new Set(['queue-depth', 'concurrency']),
              },
              ...euReading,
            },
          ],
          [
            'us-east-1',
            {
              view: {
                status: 'out',
                metrics: { queueDepth: 0, inUse: 0, capacity: 0, dispatched: 0, failed: 0 },
                spilling: new Set(),
              },
              unreadable: 'no answer within 1500 ms',
            },
          ],
        ]);
      },
    },
    log: {
      info: (message, extra) => logs.push(['info', message, extra]),
      warn: (message, extra) => logs.push(['warn', message, extra]),
      error: (message, extra) => logs.push(['error', message, extra]),
    },
  });
  return { handler, statuses, logs, readingsRead: () => readings };
}

const iam = { userArn: ALICE, accountId: ACCOUNT, userId: 'AROAEXAMPLE:alice' };

function post(
  action: 'failover' | 'restore',
  region: string,
  body: string | undefined,
  extra: Partial<AdminEvent> = {},
) {
  return {
    routeKey: `POST /admin/${action}/{region}`,
    pathParameters: { region },
    ...(body === undefined ? {} : { body }),
    isBase64Encoded: false,
    requestContext: { authorizer: { iam } },
    ...extra,
  };
}
const getRegions = (extra: Partial<AdminEvent> = {}): AdminEvent => ({
  routeKey: 'GET /admin/regions',
  requestContext: { authorizer: { iam } },
  ...extra,
});
const reason = (text: unknown) => JSON.stringify({ reason: text });
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const parsed = (response: { body: string }) => JSON.parse(response.body) as Record<string, unknown>;

describe('admin API: failover and restore', () => {
  it('drains a region for the caller named by IAM, and logs who, what and why', async () => {
    const { handler, statuses, logs } = setup();
    const response = await handler(post('failover', 'us-east-1', reason('maintenance window')));
    expect(response.statusCode).toBe(200);
    expect(parsed(response)).toEqual({
      region: 'us-east-1',
      status: 'draining',
      previous: 'active',
      changed: true,
      changedBy: ALICE,
      changedAt: '2030-01-01T00:00:00.000Z',
      reason: 'maintenance window',
    });
    expect(statuses.calls).toEqual([['drain', 'us-east-1', ALICE, 'maintenance window']]);
    expect(logs).toEqual([
      [
        'info',
        'region status changed',
        expect.objectContaining({
          actor: ALICE,
          accountId: ACCOUNT,
          userId: 'AROAEXAMPLE:alice',
          region: 'us-east-1',
          from: 'active',
          to: 'draining',
          reason: 'maintenance window',
        }),
      ],
    ]);
  });

  it("records the caller's source identity and organisation id beside the ARN, when API Gateway gives them", async () => {
    const { handler, statuses, logs } = setup();
    const withWho = {
      requestContext: {
        authorizer: { iam: { ...iam, sourceIdentity: 'alice@example.com', principalOrgId: 'o-a1b2c3d4e5' } },
      },
    };
    const response = await handler(post('failover', 'us-east-1', reason('maintenance'), withWho));
    expect(parsed(response)).toMatchObject({
      changedBy: ALICE,
      sourceIdentity: 'alice@example.com',
      principalOrgId: 'o-a1b2c3d4e5',
    });
    expect(statuses.actors).toEqual([
      { arn: ALICE, sourceIdentity: 'alice@example.com', principalOrgId: 'o-a1b2c3d4e5' },
    ]);
    expect(logs[0]?.[2]).toMatchObject({
      actor: ALICE,
      sourceIdentity: 'alice@example.com',
      principalOrgId: 'o-a1b2c3d4e5',
    });
    // Absent (null, as API Gateway sends for an account outside an organisation): the ARN alone.
    const plain = { requestContext: { authorizer: { iam: { ...iam, principalOrgId: null } } } };
    await handler(post('restore', 'us-east-1', reason('done'), plain as Partial<AdminEvent>));
    expect(statuses.actors[1]).toEqual({ arn: ALICE });
    const regions = parsed(await handler(getRegions())).regions as Record<string, unknown>[];
    expect((regions[1]?.operator as { audit: unknown[] }).audit).toEqual([
      expect.objectContaining({
        by: ALICE,
        sourceIdentity: 'alice@example.com',
        principalOrgId: 'o-a1b2c3d4e5',
      }),
      { status: 'active', by: ALICE, at: '2030-01-01T00:00:00.000Z', reason: 'done' },
    ]);
  });

  it('restores a region, and answers a repeated restore as unchanged (still logged)', async () => {
    const { handler, logs } = setup();
    await handler(post('failover', 'us-east-1', reason('maintenance')));
    const restored = await handler(post('restore', 'us-east-1', reason('done')));
    expect(parsed(restored)).toMatchObject({ status: 'active', previous: 'draining', changed: true });
    const again = await handler(post('restore', 'us-east-1', reason('done again')));
    expect(again.statusCode).toBe(200);
    expect(parsed(again)).toMatchObject({ status: 'active', changed: false });
    expect(logs.map(([, message]) => message)).toEqual([
      'region status changed',
      'region status changed',
      'region status unchanged',
    ]);
  });

  it('answers 409 with the reason when the drain would leave no region active', async () => {
    const { handler, statuses, logs } = setup();
    statuses.failNext(new LastActiveRegionError('eu-central-1'));
    const response = await handler(post('failover', 'eu-central-1', reason('maintenance')));
    expect(response.statusCode).toBe(409);
    expect(parsed(response)).toEqual({
      error: 'last-active-region',
      message: expect.stringContaining('would leave no configured region whose operator status is active'),
    });
    expect(logs[0]).toEqual([
      'warn',
      'region status change refused',
      expect.objectContaining({ actor: ALICE, refusal: 'last-active-region' }),
    ]);
  });

  it('answers 409 when every attempt lost its race, 503 on a throttled table, 500 saying nothing else', async () => {
    const { handler, statuses } = setup();
    statuses.failNext(new ConcurrentChangeError());
    expect((await handler(post('failover', 'us-east-1', reason('x')))).statusCode).toBe(409);
    statuses.failNext(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    expect((await handler(post('failover', 'us-east-1', reason('x')))).statusCode).toBe(503);
    statuses.failNext(new Error(`AccessDenied for arn:aws:iam::${ACCOUNT}:role/x`));
    const internal = await handler(post('failover', 'us-east-1', reason('x')));
    expect(internal.statusCode).toBe(500);
    expect(internal.body).not.toContain(ACCOUNT);
  });

  it('answers 404 for a region not configured and 400 for a malformed one, never echoing it', async () => {
    const { handler, statuses } = setup();
    const unknown = await handler(post('failover', 'eu-west-3', reason('x')));
    expect(unknown.statusCode).toBe(404);
    expect(parsed(unknown)).toEqual({
      error: 'unknown-region',
      message: 'region: expected one of the configured regions',
    });
    const malformed = await handler(post('failover', '<script>', reason('x')));
    expect(malformed.statusCode).toBe(400);
    expect(malformed.body).not.toContain('script');
    expect(statuses.calls).toEqual([]);
  });

  it.each([
    ['no body', undefined, 'body: expected a JSON object with a reason'],
    ['an empty body', '', 'body: expected a JSON object with a reason'],
    ['a body that is not JSON', '{reason', 'body: expected a JSON object with a reason'],
    ['an array', '["maintenance"]', 'body: expected a JSON object with a reason'],
    ['no reason', '{}', 'reason: expected a reason for the change'],
    ['a reason that is not a string', reason(42), 'reason: expected a string'],
    ['an empty reason', reason(''), 'reason: expected at least one visible character'],
    ['a blank reason', reason('   '), 'reason: expected at least one visible character'],
    ['a reason of 501 characters', reason('x'.repeat(501)), 'reason: expected at most 500 characters'],
    ['a control character', reason('line\nbreak'), 'reason: expected no control characters'],
    ['a C1 control character', reason('esc\u009b[2J'), 'reason: expected no control characters'],
    ['a lone surrogate', '{"reason":"half \\ud800 a pair"}', 'reason: expected well-formed Unicode text'],
    ...[
      ['a right-to-left override', '\u202e'],
      ['a left-to-right embedding', '\u202a'],
      ['a pop directional formatting', '\u202c'],
      ['a left-to-right isolate', '\u2066'],
      ['a pop directional isolate', '\u2069'],
      ['a line separator', '\u2028'],
      ['a paragraph separator', '\u2029'],
      ['a zero-width space', '\u200b'],
      ['a zero-width joiner', '\u200d'],
      ['a right-to-left mark', '\u200f'],
      ['an Arabic letter mark', '\u061c'],
      ['a byte order mark', '\ufeff'],
      ['a soft hyphen', '\u00ad'],
      ['a tag character', '\u{e0041}'],
    ].map(([what, character]): [string, string, string] => [
      what as string,
      reason(`INC-1 done ${character as string}by bob`),
      'reason: expected no format characters (bidirectional controls, zero-width characters) nor line or paragraph separators',
    ]),
    ['another field', JSON.stringify({ reason: 'x', force: true }), 'body: expected no field but reason'],
    ['a __proto__ field', '{"reason":"x","__proto__":{"admin":true}}', 'body: expected no field but reason'],
  ])('answers 400 naming the field for %s', async (_, body, message) => {
    const { handler, statuses } = setup();
    const response = await handler(post('failover', 'us-east-1', body));
    expect(response.statusCode).toBe(400);
    expect(parsed(response)).toEqual({ error: 'bad-request', message });
    expect(statuses.calls).toEqual([]);
  });

  it.each([
    [
      'a character outside base64 (dropped by a lenient decoder)',
      `${b64('{"reason":"done"}').slice(0, 8)}!${b64('{"reason":"done"}').slice(8)}`,
    ],
    ['white space', `${b64('{"reason":"done"}').slice(0, 8)} ${b64('{"reason":"done"}').slice(8)}`],
    ['no padding', b64('{"reason":"done"}').replace(/=+$/, '')],
    ['the URL-safe alphabet', b64('{"reason":"é?>"}').replace(/\+/g, '-').replace(/\//g, '_')],
    ['non-zero trailing bits', `${b64('{"reason":"done"}').slice(0, -2)}x=`],
    ['a character after the padding', `${b64('{"reason":"done"}')}A`],
  ])('refuses a base64 body with %s', async (_, body) => {
    const { handler, statuses } = setup();
    const response = await handler(post('failover', 'us-east-1', body, { isBase64Encoded: true }));
    expect([response.statusCode, parsed(response)]).toEqual([
      400,
      { error: 'bad-request', message: 'body: expected valid base64' },
    ]);
    expect(statuses.calls).toEqual([]);
  });

  it('refuses a base64 body that is not UTF-8, and one too long before decoding it', async () => {
    const { handler, statuses } = setup();
    const latin1 = Buffer.from('{"reason":"caf\xe9"}', 'latin1').toString('base64');
    const response = await handler(post('failover', 'us-east-1', latin1, { isBase64Encoded: true }));
    expect([response.statusCode, parsed(response)]).toEqual([
      400,
      { error: 'bad-request', message: 'body: expected UTF-8 text' },
    ]);
    const long = b64(reason('x'.repeat(4_100)));
    expect((await handler(post('failover', 'us-east-1', long, { isBase64Encoded: true }))).statusCode).toBe(
      413,
    );
    expect(statuses.calls).toEqual([]);
  });

  it('takes a reason of 500 characters counted as code points, and a base64 body', async () => {
    const { handler, statuses } = setup();
    expect((await handler(post('failover', 'us-east-1', reason('🛠'.repeat(500))))).statusCode).toBe(200);
    const encoded = Buffer.from(reason('done'), 'utf8').toString('base64');
    expect((await handler(post('restore', 'us-east-1', encoded, { isBase64Encoded: true }))).statusCode).toBe(
      200,
    );
    expect(statuses.calls.map(([, , , text]) => [...text].length)).toEqual([500, 4]);
  });

  it('answers 413 for a body over 4 KiB, counted in bytes', async () => {
    const { handler, statuses } = setup();
    const padded = `{"reason":"x","pad":"${'é'.repeat(2_040)}"}`;
    expect(Buffer.byteLength(padded)).toBeGreaterThan(4_096);
    expect(padded.length).toBeLessThan(4_096);
    const response = await handler(post('failover', 'us-east-1', padded));
    expect(response.statusCode).toBe(413);
    expect(parsed(response)).toEqual({
      error: 'payload-too-large',
      message: 'body: expected at most 4096 bytes',
    });
    expect(statuses.calls).toEqual([]);
  });

  it.each([
    ['no request context', {}],
    ['no authoriser', { requestContext: {} }],
    ['no IAM identity', { requestContext: { authorizer: {} } }],
    ['no user ARN', { requestContext: { authorizer: { iam: { ...iam, userArn: undefined } } } }],
    ['an ARN that is not one', { requestContext: { authorizer: { iam: { ...iam, userArn: 'alice' } } } }],
    ['no user id', { requestContext: { authorizer: { iam: { ...iam, userId: '' } } } }],
    ['another account', { requestContext: { authorizer: { iam: { ...iam, accountId: '210987654321' } } } }],
    [
      'a malformed source identity',
      { requestContext: { authorizer: { iam: { ...iam, sourceIdentity: 'alice\u202e' } } } },
    ],
    [
      'a malformed organisation id',
      { requestContext: { authorizer: { iam: { ...iam, principalOrgId: 'o-<script>' } } } },
    ],
  ])('answers 403 to a request with %s, before reading the body', async (_, context) => {
    const { handler, statuses } = setup();
    const event = {
      ...post('failover', 'us-east-1', '{not json'),
      requestContext: undefined,
      ...context,
    } as AdminEvent;
    const response = await handler(event);
    expect(response.statusCode).toBe(403);
    expect(parsed(response)).toMatchObject({ error: 'forbidden' });
    expect(statuses.calls).toEqual([]);
    expect(
      (await handler({ ...getRegions(), requestContext: event.requestContext } as AdminEvent)).statusCode,
    ).toBe(403);
  });

  it('answers 404 for a route it does not serve', async () => {
    const { handler } = setup();
    expect((await handler(getRegions({ routeKey: 'DELETE /admin/regions' }))).statusCode).toBe(404);
  });
});

describe('admin API: GET /admin/regions', () => {
  it('answers every configured region by priority: operator, health, effective status and spillover inputs', async () => {
    const { handler, readingsRead } = setup();
    await handler(post('failover', 'eu-central-1', reason('maintenance')));
    const response = await handler(getRegions());
    expect(response.statusCode).toBe(200);
    expect(readingsRead()).toBe(1);
    expect(parsed(response)).toEqual({
      regions: [
        {
          region: 'eu-central-1',
          priority: 1,
          status: 'draining',
          operator: {
            status: 'draining',
            changedBy: ALICE,
            changedAt: '2030-01-01T00:00:00.000Z',
            reason: 'maintenance',
            audit: [{ status: 'draining', by: ALICE, at: '2030-01-01T00:00:00.000Z', reason: 'maintenance' }],
          },
          health: { status: 'healthy', checkedAt: '2030-01-01T00:00:00.000Z', failing: [] },
          spillover: {
            metrics: { queueDepth: 120, inUse: 40, capacity: 50, dispatched: 200, failed: 3 },
            concurrencyPercent: 80,
            // failed over all attempts, as routing computes it: 3 / 203
            errorRate: 0.0148,
            spilling: ['queue-depth', 'concurrency'],
          },
        },
        {
          region: 'us-east-1',
          priority: 2,
          status: 'out',
          operator: { status: 'active', audit: [] },
          health: { status: 'missing', failing: [] },
          spillover: {
            unreadable: 'no answer within 1500 ms',
            metrics: { queueDepth: 0, inUse: 0, capacity: 0, dispatched: 0, failed: 0 },
            concurrencyPercent: 0,
            errorRate: 0,
            spilling: [],
          },
        },
      ],
      warnings: ['no region is routable (active and healthy)'],
    });
  });

  it.each([
    ['every attempt failed', { dispatched: 0, failed: 20 }, 1],
    ['three failures for each success', { dispatched: 10, failed: 30 }, 0.75],
    ['fewer attempts than minErrorSamples (10)', { dispatched: 3, failed: 6 }, 0],
    ['exactly minErrorSamples attempts', { dispatched: 5, failed: 5 }, 0.5],
    ['no attempt', { dispatched: 0, failed: 0 }, 0],
  ])('shows the error rate routing uses when %s', async (_, counts, errorRate) => {
    const { handler } = setup({ ...EU_METRICS, ...counts });
    const regions = parsed(await handler(getRegions())).regions as { spillover: { errorRate: number } }[];
    expect(regions[0]?.spillover.errorRate).toBe(errorRate);
  });

  it('shows when the inputs shown are the last good ones, and the runner queues that do not exist yet', async () => {
    const { handler } = setup(EU_METRICS, {
      unreadable: 'region-status: ProvisionedThroughputExceededException',
      lastGoodAt: Date.parse('2030-01-01T00:00:00.000Z'),
      missingQueues: ['docker'],
    });
    const regions = parsed(await handler(getRegions())).regions as { spillover: Record<string, unknown> }[];
    expect(regions[0]?.spillover).toMatchObject({
      unreadable: 'region-status: ProvisionedThroughputExceededException',
      lastGoodAt: '2030-01-01T00:00:00.000Z',
      missingQueues: ['docker'],
    });
  });

  it('warns when no region is operator-active (two drains through two regions within the replication lag)', async () => {
    const { handler, statuses } = setup();
    for (const region of ['eu-central-1', 'us-east-1'])
      statuses.operators.set(region, { status: 'draining', audit: [], version: 1 });
    const body = parsed(await handler(getRegions()));
    expect(body.warnings).toEqual([
      expect.stringContaining('no region is operator-active'),
      expect.stringContaining('no region is routable'),
    ]);
  });
});

describe('admin API settings', () => {
  it('names every missing or malformed setting at once, never a value', () => {
    let thrown: unknown;
    try {
      defaultAdminDependencies({ AWS_REGION: 'eu-central-1', ACCOUNT_ID: 'secret-ish-value' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(HandlerConfigError);
    const problems = (thrown as HandlerConfigError).problems.join('\n');
    for (const name of [
      'RUNNERS_CONFIG',
      'REGION_STATUS_TABLE',
      'STATE_TABLE',
      'RUNNER_QUEUE_PREFIX',
      'ACCOUNT_ID',
    ])
      expect(problems).toContain(name);
    expect(problems).not.toContain('secret-ish-value');
  });

  it('builds its dependencies from valid settings', () => {
    const deps = defaultAdminDependencies({
      AWS_REGION: 'eu-central-1',
      RUNNERS_CONFIG: JSON.stringify({
        regions: [{ region: 'eu-central-1', priority: 1, capacity: 5 }],
        runnerTypes: [{ name: 'standard', labels: ['self-hosted'] }],
      }),
      REGION_STATUS_TABLE: 'dev-region-status',
      STATE_TABLE: 'dev-region-state',
      RUNNER_QUEUE_PREFIX: 'dev-runners',
      ACCOUNT_ID: ACCOUNT,
    });
    expect(deps.config.regions.map((r) => r.region)).toEqual(['eu-central-1']);
    expect(deps.accountId).toBe(ACCOUNT);
  });
});
