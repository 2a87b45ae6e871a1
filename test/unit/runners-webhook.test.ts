import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RetryableError } from '../../runtime/lib/failures';
import { createRouterHandler } from '../../runtime/runners/router/handler';
import { readDelivery, type Delivery, type WebhookRequest } from '../../runtime/runners/webhook';
import {
  readAuthenticatedDelivery,
  secretsManagerReader,
  WebhookSecretSource,
  webhookSecretOf,
} from '../../runtime/runners/webhook-secret';
import {
  awsError,
  handlerDeps,
  jobPayload,
  MemorySecret,
  recordingTelemetry,
  routerWorld,
  signature,
  staticSecrets,
  US,
  webhookEvent,
  WORLD_NOW,
} from '../support/runners-fakes';

const SECRET = 'current-webhook-secret-3b8f';
const OLD = 'previous-webhook-secret-91ce';
const LIMIT = { maxBodyBytes: 1024 };
const MARKER = 'leak-marker-7f3a9c';
const DELIVERY = '0b8a36a0-3f1e-11ef-9a5d-2f6f3c1e7a10';

const body = (payload: unknown = jobPayload('queued')) => JSON.stringify(payload);
const read = (request: WebhookRequest, secrets: readonly string[] = [SECRET], config = LIMIT) =>
  readDelivery(request, secrets, config);
const refusal = (delivery: Delivery) =>
  delivery.kind === 'refused' ? { status: delivery.status, code: delivery.code } : { kind: delivery.kind };

describe('readDelivery', () => {
  it('reads a signed queued job, lower-casing names and labels', async () => {
    const payload = jobPayload('queued', {
      jobId: 42,
      runId: 7,
      labels: ['Self-Hosted', 'LINUX', 'x64'],
      repository: 'Acme/Web.App',
      installationId: 5,
    });
    const delivery = await read(webhookEvent(body(payload), SECRET, { deliveryId: DELIVERY.toUpperCase() }));
    expect(delivery).toEqual({
      kind: 'job',
      deliveryId: DELIVERY,
      jobStatus: 'queued',
      createdAt: WORLD_NOW - 60_000,
      ownerType: 'organization',
      job: {
        action: 'queued',
        jobId: 42,
        runId: 7,
        runAttempt: 1,
        organization: 'acme',
        repository: 'acme/web.app',
        labels: ['self-hosted', 'linux', 'x64'],
        installationId: 5,
      },
    });
  });

  it('defaults run_attempt to 1 and keeps a runner name', async () => {
    const payload = jobPayload('completed') as { workflow_job: Record<string, unknown> };
    delete payload.workflow_job.run_attempt;
    payload.workflow_job.runner_name = 'runner-1';
    const delivery = await read(webhookEvent(body(payload), SECRET));
    expect(delivery.kind === 'job' && delivery.job).toMatchObject({ runAttempt: 1, runnerName: 'runner-1' });
  });

  it('reads header names in every case', async () => {
    const text = body();
    const delivery = await read({
      headers: {
        'X-Hub-Signature-256': signature(SECRET, text),
        'X-GitHub-Delivery': DELIVERY,
        'X-GITHUB-EVENT': 'workflow_job',
      },
      body: text,
    });
    expect(delivery.kind).toBe('job');
  });

  it('verifies a base64 body over its decoded text', async () => {
    const text = body(jobPayload('queued', { repository: 'acme/wéb' }));
    const event = webhookEvent(text, SECRET, { base64: true });
    // é is outside the repository rule: the body was decoded, verified and parsed
    expect(refusal(await read(event))).toEqual({ status: 400, code: 'field-invalid' });
    const plain = webhookEvent(body(), SECRET, { base64: true });
    expect((await read(plain)).kind).toBe('job');
  });

  it('refuses a base64 body that is not base64, and bytes that are not UTF-8', async () => {
    const event = webhookEvent(body(), SECRET, { base64: true });
    expect(refusal(await read({ ...event, body: `${event.body}!` }))).toEqual({
      status: 400,
      code: 'body-encoding',
    });
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64');
    expect(refusal(await read({ ...event, body: bytes }))).toEqual({ status: 400, code: 'body-encoding' });
  });

  describe('the body limit, in decoded bytes', () => {
    const padded = (bytes: number, pad = 'x') => {
      const base = body({ ...jobPayload('queued'), pad: '' });
      return body({
        ...jobPayload('queued'),
        pad: pad.repeat((bytes - base.length) / Buffer.byteLength(pad)),
      });
    };

    it('accepts a body of exactly the limit and answers 413 one byte over', async () => {
      const exact = padded(1024);
      expect(Buffer.byteLength(exact)).toBe(1024);
      expect((await read(webhookEvent(exact, SECRET))).kind).toBe('job');
      const over = `${exact} `;
      expect(refusal(await read(webhookEvent(over, SECRET)))).toEqual({
        status: 413,
        code: 'body-too-large',
      });
    });

    it('counts bytes, not characters', async () => {
      const base = body({ ...jobPayload('queued'), pad: '' });
      const text = body({
        ...jobPayload('queued'),
        pad: 'é'.repeat(Math.ceil((1024 - base.length) / 2) + 1),
      });
      expect(text.length).toBeLessThanOrEqual(1024);
      expect(refusal(await read(webhookEvent(text, SECRET)))).toEqual({
        status: 413,
        code: 'body-too-large',
      });
    });

    it('applies to base64 bodies after decoding, at the same boundary', async () => {
      for (const size of [1022, 1023, 1024]) {
        const text = padded(size);
        expect((await read(webhookEvent(text, SECRET, { base64: true }))).kind).toBe('job');
      }
      for (const extra of [' ', '  ', '   ']) {
        const event = webhookEvent(`${padded(1024)}${extra}`, SECRET, { base64: true });
        expect(refusal(await read(event))).toEqual({ status: 413, code: 'body-too-large' });
      }
    });

    it('reads a base64 body of 8 MiB under the largest limit (10 MiB)', async () => {
      const text = body({ ...jobPayload('queued'), pad: 'x'.repeat(8 * 1_048_576) });
      const event = webhookEvent(text, SECRET, { base64: true });
      expect((await read(event, [SECRET], { maxBodyBytes: 10 * 1_048_576 })).kind).toBe('job');
      const broken = { ...event, body: `${event.body.slice(0, -4)}*AAA` };
      expect(refusal(await read(broken, [SECRET], { maxBodyBytes: 10 * 1_048_576 }))).toEqual({
        status: 400,
        code: 'body-encoding',
      });
    });

    it('answers 413 before looking at the signature', async () => {
      expect(refusal(await read(webhookEvent(`${padded(1024)} `, undefined)))).toEqual({
        status: 413,
        code: 'body-too-large',
      });
    });
  });

  describe('the signature', () => {
    it.each([
      ['missing', undefined],
      ['sha1', `sha1=${'a'.repeat(40)}`],
      ['upper-case hex', `sha256=${'A'.repeat(64)}`],
      ['short', `sha256=${'a'.repeat(63)}`],
      ['two values', `sha256=${'a'.repeat(64)},sha256=${'b'.repeat(64)}`],
    ])('answers 401 when it is %s', async (_case, value) => {
      const event = webhookEvent(body(), undefined, {
        headers: value === undefined ? {} : { 'x-hub-signature-256': value },
      });
      expect(refusal(await read(event))).toEqual({ status: 401, code: 'signature-missing' });
    });

    it('answers 401 when no secret signed it', async () => {
      expect(refusal(await read(webhookEvent(body(), 'another-secret')))).toEqual({
        status: 401,
        code: 'signature-mismatch',
      });
      const signedOther = webhookEvent(body(), SECRET);
      const tampered = { ...signedOther, body: signedOther.body.replace('9001', '9002') };
      expect(refusal(await read(tampered))).toEqual({ status: 401, code: 'signature-mismatch' });
      expect(refusal(await read(webhookEvent(body(), SECRET), []))).toEqual({
        status: 401,
        code: 'signature-mismatch',
      });
    });

    it('answers 401 to an empty body, whatever its headers', async () => {
      const event = webhookEvent('', undefined, {
        headers: { 'x-hub-signature-256': signature(SECRET, ' ') },
      });
      expect(refusal(await read(event))).toEqual({ status: 401, code: 'signature-mismatch' });
      expect(refusal(await read({ headers: null, body: null }))).toEqual({
        status: 401,
        code: 'signature-missing',
      });
    });

    it('verifies with the previous secret during a rotation', async () => {
      expect((await read(webhookEvent(body(), OLD), [SECRET, OLD])).kind).toBe('job');
    });

    it('is checked before the body is parsed', async () => {
      const parse = jest.spyOn(JSON, 'parse');
      try {
        expect(refusal(await read(webhookEvent('{"action":', 'wrong')))).toEqual({
          status: 401,
          code: 'signature-mismatch',
        });
        expect(parse).not.toHaveBeenCalled();
      } finally {
        parse.mockRestore();
      }
    });
  });

  describe('the delivery and event headers', () => {
    it.each([
      ['a missing delivery id', { 'x-github-delivery': '' }],
      ['a delivery id that is not a GUID', { 'x-github-delivery': `${MARKER}` }],
      ['a missing event', { 'x-github-event': '' }],
      ['a malformed event', { 'x-github-event': 'workflow-job!' }],
    ])('answers 400 to %s', async (_case, headers) => {
      const delivery = await read(webhookEvent(body(), SECRET, { headers }));
      expect(refusal(delivery)).toEqual({ status: 400, code: 'header-invalid' });
      expect(JSON.stringify(delivery)).not.toContain(MARKER);
    });

    it('ignores other events without parsing their body (202)', async () => {
      const delivery = await read(webhookEvent('not json at all', SECRET, { event: 'ping' }));
      expect(delivery).toMatchObject({
        kind: 'ignored',
        reason: 'x-github-event: only workflow_job is handled',
      });
    });

    it.each(['in_progress', 'waiting', 'requested'])('ignores the %s action (202)', async (action) => {
      const delivery = await read(webhookEvent(body(jobPayload(action)), SECRET));
      expect(delivery).toMatchObject({
        kind: 'ignored',
        reason: 'action: only queued and completed are acted on',
      });
    });
  });

  describe('the payload', () => {
    it.each([
      ['truncated JSON', '{"action":"queued"'],
      ['an array', '[1,2,3]'],
      ['a string', '"queued"'],
      ['null', 'null'],
    ])('answers 400 to %s', async (_case, text) => {
      expect(refusal(await read(webhookEvent(text, SECRET)))).toEqual({
        status: 400,
        code: 'json-malformed',
      });
    });

    it('says so when the webhook sends forms', async () => {
      const text = `payload=${encodeURIComponent(body())}`;
      const delivery = await read(
        webhookEvent(text, SECRET, { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      );
      expect(delivery).toMatchObject({ status: 400, reason: expect.stringContaining('application/json') });
    });

    type Mutate = (p: { workflow_job: Record<string, unknown>; repository: Record<string, unknown> }) => void;
    const cases: [string, Mutate, string][] = [
      [
        'no workflow_job',
        (p) => Object.assign(p, { workflow_job: MARKER }),
        'workflow_job: expected an object',
      ],
      [
        'a string id',
        (p) => (p.workflow_job.id = MARKER),
        'workflow_job.id: expected a positive safe integer',
      ],
      ['id 0', (p) => (p.workflow_job.id = 0), 'workflow_job.id: expected a positive safe integer'],
      ['id 2^53', (p) => (p.workflow_job.id = 2 ** 53), 'workflow_job.id: expected a positive safe integer'],
      [
        'a fractional id',
        (p) => (p.workflow_job.id = 1.5),
        'workflow_job.id: expected a positive safe integer',
      ],
      [
        'no run_id',
        (p) => delete p.workflow_job.run_id,
        'workflow_job.run_id: expected a positive safe integer',
      ],
      [
        'run_attempt -1',
        (p) => (p.workflow_job.run_attempt = -1),
        'workflow_job.run_attempt: expected a positive safe integer',
      ],
      [
        'labels not an array',
        (p) => (p.workflow_job.labels = MARKER),
        'workflow_job.labels: expected an array',
      ],
      [
        'an empty label',
        (p) => (p.workflow_job.labels = ['']),
        'workflow_job.labels: expected strings of 1-100',
      ],
      [
        'a label of 101 characters',
        (p) => (p.workflow_job.labels = [`${MARKER}${'x'.repeat(101)}`]),
        'workflow_job.labels: expected strings of 1-100',
      ],
      [
        'a number label',
        (p) => (p.workflow_job.labels = [7]),
        'workflow_job.labels: expected strings of 1-100',
      ],
      [
        '101 labels',
        (p) => (p.workflow_job.labels = Array.from({ length: 101 }, (_, i) => `l${i}`)),
        'workflow_job.labels: expected at most 100 labels',
      ],
      ['no repository', (p) => Object.assign(p, { repository: null }), 'repository: expected an object'],
      [
        'a full_name without owner',
        (p) => (p.repository.full_name = `${MARKER}`),
        'repository.full_name: expected owner/name',
      ],
      ['no owner', (p) => delete p.repository.owner, 'repository.owner: expected an object'],
      [
        'a login with a slash',
        (p) => (p.repository.owner = { login: `${MARKER}/x` }),
        'repository.owner.login: expected a GitHub login',
      ],
      [
        'an installation without id',
        (p) => Object.assign(p, { installation: { id: MARKER } }),
        'installation.id: expected a positive safe integer',
      ],
      [
        'a runner name of 256 characters',
        (p) => (p.workflow_job.runner_name = MARKER.repeat(20)),
        'workflow_job.runner_name: expected null or a string',
      ],
      [
        'no status',
        (p) => delete p.workflow_job.status,
        'workflow_job.status: expected one of queued, waiting, in_progress, completed, pending, requested',
      ],
      [
        'an unknown status',
        (p) => (p.workflow_job.status = `${MARKER}`),
        'workflow_job.status: expected one of queued, waiting',
      ],
      ['a status as a number', (p) => (p.workflow_job.status = 1), 'workflow_job.status: expected one of'],
      [
        'a created_at that is not a date-time',
        (p) => (p.workflow_job.created_at = `${MARKER}`),
        'workflow_job.created_at: expected an ISO 8601 date-time',
      ],
      [
        'a created_at of the 13th month',
        (p) => (p.workflow_job.created_at = '2025-13-01T00:00:00Z'),
        'workflow_job.created_at: expected an ISO 8601 date-time',
      ],
      [
        'a created_at as a number',
        (p) => (p.workflow_job.created_at = 1_760_000_000),
        'workflow_job.created_at: expected an ISO 8601 date-time',
      ],
      [
        'an owner type that is not a word',
        (p) => (p.repository.owner = { login: 'acme', type: `${MARKER}` }),
        'repository.owner.type: expected an account type',
      ],
      [
        'an owner type that is a number',
        (p) => (p.repository.owner = { login: 'acme', type: 1 }),
        'repository.owner.type: expected an account type',
      ],
    ];
    it.each(cases)('answers 400 to %s, naming the field and the rule', async (_case, mutate, reason) => {
      const payload = jobPayload('queued') as Parameters<Mutate>[0];
      mutate(payload);
      const delivery = await read(webhookEvent(body(payload), SECRET));
      expect(delivery).toMatchObject({ kind: 'refused', status: 400, code: 'field-invalid' });
      expect(delivery.kind === 'refused' && delivery.reason.startsWith(reason)).toBe(true);
      expect(JSON.stringify(delivery)).not.toContain(MARKER);
    });

    it('reads the status: waiting on a queued job behind an environment approval', async () => {
      const statusOf = (action: string, status: string) =>
        read(webhookEvent(body(jobPayload(action, { status })), SECRET)).then((d) =>
          d.kind === 'job' ? d.jobStatus : d,
        );
      expect(await statusOf('queued', 'waiting')).toBe('waiting');
      expect(await statusOf('queued', 'queued')).toBe('queued');
      expect(await statusOf('completed', 'completed')).toBe('completed');
    });

    it('reads created_at with fractions and offsets, and does without it (queued or completed)', async () => {
      const at = (createdAt: string) =>
        read(webhookEvent(body(jobPayload('queued', { createdAt })), SECRET)).then((d) =>
          d.kind === 'job' ? d.createdAt : d,
        );
      expect(await at('2021-09-13T02:21:13Z')).toBe(Date.UTC(2021, 8, 13, 2, 21, 13));
      expect(await at('2021-09-13T04:21:13.250+02:00')).toBe(Date.UTC(2021, 8, 13, 2, 21, 13, 250));
      for (const action of ['queued', 'completed']) {
        const payload = jobPayload(action) as { workflow_job: Record<string, unknown> };
        delete payload.workflow_job.created_at;
        const delivery = await read(webhookEvent(body(payload), SECRET));
        expect(delivery.kind).toBe('job');
        expect(delivery.kind === 'job' && delivery.createdAt).toBeUndefined();
      }
    });

    it('reads the owner type lower-cased, and none when the payload has none', async () => {
      const user = await read(webhookEvent(body(jobPayload('queued', { ownerType: 'User' })), SECRET));
      expect(user.kind === 'job' && user.ownerType).toBe('user');
      const bare = jobPayload('queued') as { repository: { owner: Record<string, unknown> } };
      delete bare.repository.owner.type;
      const none = await read(webhookEvent(body(bare), SECRET));
      expect(none.kind).toBe('job');
      expect(none.kind === 'job' && none.ownerType).toBeUndefined();
    });

    it("holds jobs to the label limits of model.ts (the dispatcher's)", async () => {
      // webhook.ts loaded against a model whose limits are smaller: its refusals follow them.
      let limited: typeof readDelivery = readDelivery;
      jest.isolateModules(() => {
        jest.doMock('../../runtime/runners/model', () => ({
          ...jest.requireActual<object>('../../runtime/runners/model'),
          MAX_JOB_LABELS: 3,
          MAX_LABEL_CHARS: 12,
        }));
        ({ readDelivery: limited } = jest.requireActual<typeof import('../../runtime/runners/webhook')>(
          '../../runtime/runners/webhook',
        ));
      });
      jest.dontMock('../../runtime/runners/model');
      const labelled = (labels: string[]) =>
        limited(webhookEvent(body(jobPayload('queued', { labels })), SECRET), [SECRET], LIMIT);
      expect((await labelled(['self-hosted', 'linux', 'x64'])).kind).toBe('job');
      expect(await labelled(['self-hosted', 'linux', 'x64', 'gpu'])).toMatchObject({
        reason: 'workflow_job.labels: expected at most 3 labels',
      });
      expect(await labelled(['self-hosted-13'])).toMatchObject({
        reason: 'workflow_job.labels: expected strings of 1-12 characters',
      });
    });

    it('answers 400 to an action that is not a string', async () => {
      const delivery = await read(webhookEvent(body({ ...jobPayload('queued'), action: 7 }), SECRET));
      expect(delivery).toMatchObject({ status: 400, reason: 'action: expected a string' });
    });

    it('reads own properties only: __proto__ and constructor keys are data', async () => {
      const text =
        '{"__proto__":{"action":"queued","workflow_job":{"id":1}},"constructor":{"prototype":{"x":1}},' +
        body(jobPayload('queued')).slice(1);
      expect((await read(webhookEvent(text, SECRET))).kind).toBe('job');
      const inherited = '{"__proto__":{"action":"queued"},"workflow_job":{}}';
      expect(await read(webhookEvent(inherited, SECRET))).toMatchObject({
        reason: 'action: expected a string',
      });
      const owner = body(jobPayload('queued')).replace('"owner":{', '"owner":{"__proto__":{"x":1},');
      expect((await read(webhookEvent(owner, SECRET))).kind).toBe('job');
      expect(({} as Record<string, unknown>).x).toBeUndefined();
    });

    it('survives deep nesting and huge numbers', async () => {
      const deep = `{"deep":${'['.repeat(50_000)}${']'.repeat(50_000)},${body().slice(1)}`;
      expect((await read(webhookEvent(deep, SECRET), [SECRET], { maxBodyBytes: 1_048_576 })).kind).toBe(
        'job',
      );
      const huge = body().replace('"id":9001', `"id":1${'0'.repeat(400)}`);
      expect(await read(webhookEvent(huge, SECRET))).toMatchObject({ status: 400, code: 'field-invalid' });
    });
  });
});

describe('webhookSecretOf', () => {
  it('takes plain text as the secret, untrimmed', () => {
    expect(webhookSecretOf(' s3cret\n', 'AWSCURRENT')).toBe(' s3cret\n');
    expect(webhookSecretOf('{not json', 'AWSCURRENT')).toBe('{not json');
  });

  it('takes the secret field of a JSON object', () => {
    expect(webhookSecretOf('{"secret":"abc","note":"x"}', 'AWSCURRENT')).toBe('abc');
  });

  it('refuses a JSON object without a string secret, quoting nothing', () => {
    for (const value of [`{"secret":""}`, `{"token":"${MARKER}"}`, `{"secret":1}`, '']) {
      const error = (() => {
        try {
          webhookSecretOf(value, 'AWSPREVIOUS');
        } catch (thrown) {
          return thrown as Error;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(RetryableError);
      expect(error?.message).not.toContain(MARKER);
    }
  });
});

describe('WebhookSecretSource', () => {
  const clock = () => {
    const time = { now: 1_000_000 };
    return Object.assign(time, { fn: () => time.now });
  };

  it('reads the current and previous labels, tolerating a missing previous one', async () => {
    const stored = new MemorySecret(SECRET);
    expect(await new WebhookSecretSource(stored.reader).secrets()).toEqual([SECRET]);
    stored.rotate('next');
    expect(await new WebhookSecretSource(stored.reader).secrets()).toEqual(['next', SECRET]);
    const same = new MemorySecret('x', 'x');
    expect(await new WebhookSecretSource(same.reader).secrets()).toEqual(['x']);
  });

  it('caches for its time-to-live', async () => {
    const time = clock();
    const stored = new MemorySecret(SECRET);
    const source = new WebhookSecretSource(stored.reader, { ttlMs: 300_000, now: time.fn });
    await source.secrets();
    time.now += 299_999;
    await source.secrets();
    expect(stored.reads).toBe(1);
    time.now += 1;
    await source.secrets();
    expect(stored.reads).toBe(2);
  });

  it('keeps serving cached secrets when a read fails, and throws when none was ever read', async () => {
    const time = clock();
    const stored = new MemorySecret(SECRET);
    const source = new WebhookSecretSource(stored.reader, { ttlMs: 1000, now: time.fn });
    await source.secrets();
    stored.fault = () => awsError('InternalServiceError');
    time.now += 5_000;
    expect(await source.secrets()).toEqual([SECRET]);
    const fresh = new WebhookSecretSource(stored.reader, { now: time.fn });
    await expect(fresh.secrets()).rejects.toThrow();
  });

  describe('when AWSPREVIOUS cannot be used (the labels are read apart)', () => {
    const failing = (stored: MemorySecret, error: Error) =>
      (stored.fault = (_op, stage) => (stage === 'AWSPREVIOUS' ? error : undefined));
    const listener = () => {
      const heard: { stage: string; code: string; reason: string }[] = [];
      return Object.assign(heard, {
        onUnreadable: (stage: string, failure: { code: string; reason: string }) =>
          heard.push({ stage, code: failure.code, reason: failure.reason }),
      });
    };

    it('serves AWSCURRENT when AWSPREVIOUS cannot be read, and reports it without its value', async () => {
      const stored = new MemorySecret(SECRET, OLD);
      const denied = awsError('AccessDeniedException', 400);
      denied.message = `denied ${MARKER} ${OLD}`;
      failing(stored, denied);
      const heard = listener();
      const source = new WebhookSecretSource(stored.reader, { onUnreadable: heard.onUnreadable });
      expect(await source.secrets()).toEqual([SECRET]);
      expect(heard).toHaveLength(1);
      expect(heard[0]).toMatchObject({ stage: 'AWSPREVIOUS', code: 'transient' });
      expect(JSON.stringify(heard)).not.toContain(MARKER);
      expect(JSON.stringify(heard)).not.toContain(OLD);
      expect(JSON.stringify(heard)).not.toContain(SECRET);
    });

    it('reports a previous value it cannot parse, never quoting it', async () => {
      const stored = new MemorySecret(SECRET, `{"token":"${MARKER}"}`);
      const heard = listener();
      const source = new WebhookSecretSource(stored.reader, { onUnreadable: heard.onUnreadable });
      expect(await source.secrets()).toEqual([SECRET]);
      expect([...heard]).toEqual([
        {
          stage: 'AWSPREVIOUS',
          code: 'webhook-secret-invalid',
          reason: expect.stringContaining('webhook secret AWSPREVIOUS: expected'),
        },
      ]);
      expect(JSON.stringify(heard)).not.toContain(MARKER);
    });

    it('keeps verifying with the previous secret it read before when a refresh cannot read it', async () => {
      const time = clock();
      const stored = new MemorySecret(SECRET, OLD);
      const source = new WebhookSecretSource(stored.reader, { ttlMs: 1_000, now: time.fn });
      expect(await source.secrets()).toEqual([SECRET, OLD]);
      failing(stored, awsError('ThrottlingException', 400));
      time.now += 31_000;
      expect(await source.secrets()).toEqual([SECRET, OLD]);
      expect(stored.reads).toBe(2);
      // rotated since: the cached current secret is the previous one now
      stored.rotate('rotated');
      time.now += 31_000;
      expect(await source.secrets()).toEqual(['rotated', SECRET]);
    });

    it('still fails without AWSCURRENT, whatever AWSPREVIOUS holds', async () => {
      const stored = new MemorySecret(SECRET, OLD);
      stored.fault = (_op, stage) =>
        stage === 'AWSCURRENT' ? awsError('ThrottlingException', 400) : undefined;
      await expect(new WebhookSecretSource(stored.reader).secrets()).rejects.toThrow('ThrottlingException');
    });

    it('tells the router telemetry when it is the listener', async () => {
      const heard = listener();
      const stored = new MemorySecret(SECRET, OLD);
      failing(stored, awsError('AccessDeniedException', 400));
      const telemetry = { ...recordingTelemetry() };
      const source = new WebhookSecretSource(stored.reader, {
        onUnreadable: (stage, failure) => telemetry.secretUnreadable?.(stage, failure),
      });
      await source.secrets();
      expect(telemetry.records).toContainEqual({
        kind: 'secretUnreadable',
        detail: { stage: 'AWSPREVIOUS', code: 'transient' },
      });
      expect(heard).toHaveLength(0);
    });
  });

  describe('with deliveries (readAuthenticatedDelivery)', () => {
    const config = { maxBodyBytes: 1_048_576 };

    it('verifies a delivery signed with the previous secret without reading again', async () => {
      const stored = new MemorySecret('new');
      stored.previous = OLD;
      const source = new WebhookSecretSource(stored.reader);
      expect((await readAuthenticatedDelivery(webhookEvent(body(), OLD), source, config)).kind).toBe('job');
      expect((await readAuthenticatedDelivery(webhookEvent(body(), 'new'), source, config)).kind).toBe('job');
      expect(stored.reads).toBe(1);
    });

    it('verifies a secret rotated since the cache was filled, after one refresh', async () => {
      const time = clock();
      const stored = new MemorySecret(SECRET);
      const source = new WebhookSecretSource(stored.reader, { now: time.fn });
      await source.secrets();
      time.now += 60_000;
      stored.rotate('rotated');
      expect((await readAuthenticatedDelivery(webhookEvent(body(), 'rotated'), source, config)).kind).toBe(
        'job',
      );
      expect(stored.reads).toBe(2);
      // and the previous value still verifies, from the cache
      expect((await readAuthenticatedDelivery(webhookEvent(body(), SECRET), source, config)).kind).toBe(
        'job',
      );
      expect(stored.reads).toBe(2);
    });

    it('refreshes at most once per 30 s, however many forged signatures arrive', async () => {
      const time = clock();
      const stored = new MemorySecret(SECRET);
      const source = new WebhookSecretSource(stored.reader, { now: time.fn });
      await source.secrets();
      time.now += 30_000;
      for (let i = 0; i < 50; i++) {
        const delivery = await readAuthenticatedDelivery(webhookEvent(body(), `forged-${i}`), source, config);
        expect(refusal(delivery)).toEqual({ status: 401, code: 'signature-mismatch' });
        time.now += 100;
      }
      expect(stored.reads).toBe(2);
      time.now += 30_000;
      await readAuthenticatedDelivery(webhookEvent(body(), 'forged'), source, config);
      expect(stored.reads).toBe(3);
      // a missing signature never triggers a read
      time.now += 60_000;
      await readAuthenticatedDelivery(webhookEvent(body(), undefined), source, config);
      expect(stored.reads).toBe(3);
    });

    it('does not refresh for a delivery the cached secrets verify', async () => {
      const time = clock();
      const stored = new MemorySecret(SECRET);
      const source = new WebhookSecretSource(stored.reader, { now: time.fn });
      for (let i = 0; i < 12; i++) {
        await readAuthenticatedDelivery(webhookEvent(body(), SECRET), source, config);
        time.now += 31_000;
      }
      expect(stored.reads).toBe(2); // 341 s: the TTL (5 min) passed once
    });
  });
});

describe('secretsManagerReader', () => {
  const client = (answer: (stage: string) => unknown) =>
    ({
      send: async (command: { input: { VersionStage: string } }) => {
        const result = answer(command.input.VersionStage);
        if (result instanceof Error) throw result;
        return result;
      },
    }) as unknown as SecretsManagerClient;

  it('reads a string or binary value and a missing previous label as undefined', async () => {
    const read = secretsManagerReader(
      client((stage) =>
        stage === 'AWSCURRENT'
          ? { SecretBinary: Buffer.from('bin') }
          : awsError('ResourceNotFoundException', 400),
      ),
      'webhook',
    );
    expect(await read('AWSCURRENT')).toBe('bin');
    expect(await read('AWSPREVIOUS')).toBeUndefined();
    expect(
      await secretsManagerReader(
        client(() => ({ SecretString: 's' })),
        'w',
      )('AWSCURRENT'),
    ).toBe('s');
  });

  it('turns failures into value-free retryable errors', async () => {
    const failing = new Error(`AccessDenied on arn:aws:secretsmanager:${MARKER}`);
    failing.name = 'AccessDeniedException';
    const read = secretsManagerReader(
      client(() => failing),
      'webhook',
    );
    await expect(read('AWSCURRENT')).rejects.toThrow(RetryableError);
    await expect(read('AWSCURRENT')).rejects.not.toThrow(MARKER);
    await expect(
      secretsManagerReader(
        client(() => awsError('ResourceNotFoundException', 400)),
        'w',
      )('AWSCURRENT'),
    ).rejects.toThrow(RetryableError);
  });
});

describe('the router handler, status by status', () => {
  const world = routerWorld();
  const handle = createRouterHandler(handlerDeps(world, US, staticSecrets(SECRET)));
  const text = body();

  it.each<[string, WebhookRequest, number]>([
    ['a body over the limit', webhookEvent(`${'x'.repeat(1_048_577)}`, SECRET), 413],
    ['an unsigned delivery', webhookEvent(text, undefined), 401],
    ['a wrongly signed delivery', webhookEvent(text, 'wrong'), 401],
    ['a delivery without id', webhookEvent(text, SECRET, { headers: { 'x-github-delivery': 'nope' } }), 400],
    ['malformed JSON', webhookEvent('{', SECRET), 400],
    ['a missing field', webhookEvent(body({ action: 'queued' }), SECRET), 400],
    ['another event', webhookEvent(text, SECRET, { event: 'push' }), 202],
    ['an in_progress job', webhookEvent(body(jobPayload('in_progress')), SECRET), 202],
    [
      'a GitHub-hosted job',
      webhookEvent(body(jobPayload('queued', { labels: ['ubuntu-latest'] })), SECRET),
      202,
    ],
    ['a queued job', webhookEvent(text, SECRET, { deliveryId: DELIVERY }), 202],
    ['the same delivery again', webhookEvent(text, SECRET, { deliveryId: DELIVERY }), 200],
    ['the same body under another delivery id', webhookEvent(text, SECRET), 200],
    [
      'a job of a user-owned repository',
      webhookEvent(body(jobPayload('queued', { jobId: 2, ownerType: 'User' })), SECRET),
      202,
    ],
    [
      'a queued body created years ago (acted on: the dispatcher checks the job at GitHub)',
      webhookEvent(body(jobPayload('queued', { jobId: 3, createdAt: '2021-09-13T02:21:13Z' })), SECRET),
      202,
    ],
    [
      'a queued job without created_at',
      webhookEvent(
        body({
          ...jobPayload('queued'),
          workflow_job: { id: 4, run_id: 1, labels: ['self-hosted'], status: 'queued' },
        }),
        SECRET,
      ),
      202,
    ],
    [
      'a queued job with an unknown status',
      webhookEvent(body(jobPayload('queued', { jobId: 5, status: 'stalled' })), SECRET),
      400,
    ],
  ])('answers %s with its status', async (_case, event, status) => {
    const response = await handle(event);
    expect(response.statusCode).toBe(status);
    expect(response.body).not.toContain(SECRET);
  });

  it('answers 500 when the webhook secret cannot be read, and nothing is sent', async () => {
    const stored = new MemorySecret(SECRET);
    stored.fault = () => awsError('InternalServiceError');
    const failing = routerWorld();
    const handler = createRouterHandler(handlerDeps(failing, US, new WebhookSecretSource(stored.reader)));
    const response = await handler(webhookEvent(text, SECRET));
    expect(response.statusCode).toBe(500);
    expect(failing.queues.sent).toHaveLength(0);
  });
});
