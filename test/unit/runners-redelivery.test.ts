import type { Logger } from '@aws-lambda-powertools/logger';
import { generateKeyPairSync, verify } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { GitHubRateLimitError } from '../../runtime/runners/github-app';
import { redeliverFailed, type HookDelivery, type RedeliveryGitHub } from '../../runtime/runners/redelivery';
import {
  AppHookDeliveries,
  createRedeliveryHandler,
  loadRedeliverySettings,
  nextCursor,
  type MetricsSink,
} from '../../runtime/runners/redelivery/handler';

const NOW = Date.parse('2025-06-01T12:00:00Z');
let nextId = 1;

/** An attempt `ageSec` old. */
const attempt = (
  guid: string,
  ageSec: number,
  statusCode: number,
  extra: Partial<HookDelivery> = {},
): HookDelivery => ({
  id: nextId++,
  guid,
  deliveredAt: NOW - ageSec * 1_000,
  redelivery: false,
  statusCode,
  event: 'workflow_job',
  action: 'queued',
  ...extra,
});

/** A port over a fixed listing, recording redeliveries; `fail` decides a redelivery's failure. */
function port(
  deliveries: readonly HookDelivery[],
  fail: (id: number) => Error | undefined = () => undefined,
): RedeliveryGitHub & { redelivered: number[]; since: number[] } {
  const redelivered: number[] = [];
  const since: number[] = [];
  return {
    redelivered,
    since,
    listDeliveries: async (sinceMs) => {
      since.push(sinceMs);
      return deliveries;
    },
    redeliver: async (id) => {
      const error = fail(id);
      if (error) throw error;
      redelivered.push(id);
    },
  };
}

describe('redeliverFailed', () => {
  it('redelivers the latest attempt of a guid whose attempts all failed, and nothing with a 2xx', async () => {
    const failed = attempt('g-failed', 300, 500);
    const failedTwice = [attempt('g-twice', 900, 409), attempt('g-twice', 600, 500)];
    const ok = [attempt('g-ok', 900, 500), attempt('g-ok', 600, 200)];
    const github = port([failed, ...failedTwice, ...ok, attempt('g-fine', 100, 202)]);
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([failedTwice[1]?.id, failed.id]);
    expect(github.since).toEqual([NOW - 3_600_000]);
    expect(report).toMatchObject({ failedGuids: 2, redelivered: 2, redeliveryFailed: 0, gaveUp: 0 });
  });

  it("redelivers what another attempt may change (no answer, 5xx, 409, 401), not the router's final 4xx", async () => {
    const retried = [0, 502, 409, 401].map((status) => attempt(`g-${status}`, 300, status));
    const final = [400, 413, 404].map((status) => attempt(`g-${status}`, 300, status));
    const github = port([...retried, ...final]);
    const report = await redeliverFailed({ github, now: () => NOW });
    expect([...github.redelivered].sort()).toEqual(retried.map((a) => a.id).sort());
    expect(report).toMatchObject({ failedGuids: 7, final: 3, redelivered: 4 });
  });

  it('leaves alone a guid whose latest attempt is under 60 s old', async () => {
    const github = port([attempt('g', 600, 500), attempt('g', 59, 500)]);
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([]);
    expect(report).toMatchObject({ recent: 1, redelivered: 0 });
  });

  it('gives up on a guid with 5 attempts, reporting its guid and last status', async () => {
    const attempts = [900, 800, 700, 600, 500].map((age) => attempt('g-5', age, 500));
    const four = [900, 800, 700, 600].map((age) => attempt('g-4', age, 500));
    const github = port([...attempts, ...four]);
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([four[3]?.id]);
    expect(report.gaveUp).toBe(1);
    expect(report.gaveUpGuids).toEqual([
      expect.objectContaining({ guid: 'g-5', statusCode: 500, attempts: 5, deliveryId: attempts[4]?.id }),
    ]);
  });

  it('ignores other events', async () => {
    const github = port([
      attempt('g-push', 300, 500, { event: 'push' }),
      attempt('g-ping', 300, 0, { event: 'ping' }),
    ]);
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([]);
    expect(report).toMatchObject({ listed: 2, failedGuids: 0 });
  });

  it('redelivers at most the per-run bound, oldest first, and nothing older than the window', async () => {
    const due = [500, 400, 300, 200, 100].map((age, i) => attempt(`g-${i}`, age, 500));
    const stale = attempt('g-stale', 3_700, 500);
    const github = port([...due, stale]);
    const report = await redeliverFailed({ github, now: () => NOW, maxPerRun: 3 });
    expect(github.redelivered).toEqual([due[0]?.id, due[1]?.id, due[2]?.id]);
    expect(report).toMatchObject({ redelivered: 3, deferred: 2, failedGuids: 5 });
    const wide = port([...due, stale]);
    await redeliverFailed({ github: wide, now: () => NOW, windowSec: 7_200 });
    expect(wide.since).toEqual([NOW - 7_200_000]);
    expect(wide.redelivered).toContain(stale.id);
  });

  it('keeps going after one redelivery fails, counting it', async () => {
    const [a, b, c] = [300, 200, 100].map((age, i) => attempt(`g-${i}`, age, 500));
    const github = port([a!, b!, c!], (id) =>
      id === b!.id ? new RetryableError('github-unavailable', 'redeliver: GitHub answered 502') : undefined,
    );
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([a!.id, c!.id]);
    expect(report).toMatchObject({ redelivered: 2, redeliveryFailed: 1, rateLimited: false });
    expect(report.failures).toEqual([expect.objectContaining({ guid: 'g-1', code: 'github-unavailable' })]);
  });

  it('stops the pass on a rate limit, in a redelivery or in the listing', async () => {
    const due = [300, 200, 100].map((age, i) => attempt(`g-${i}`, age, 500));
    const github = port(due, (id) =>
      id === due[1]!.id ? new GitHubRateLimitError('redeliver', 429, 60) : undefined,
    );
    const report = await redeliverFailed({ github, now: () => NOW });
    expect(github.redelivered).toEqual([due[0]!.id]);
    expect(report).toMatchObject({ rateLimited: true, redelivered: 1, redeliveryFailed: 1, deferred: 1 });

    const listing: RedeliveryGitHub = {
      listDeliveries: async () => {
        throw new GitHubRateLimitError('list', 403, 60);
      },
      redeliver: async () => undefined,
    };
    await expect(redeliverFailed({ github: listing, now: () => NOW })).resolves.toMatchObject({
      rateLimited: true,
      redelivered: 0,
    });
    const broken: RedeliveryGitHub = {
      listDeliveries: async () => {
        throw new PermanentError('github-401', 'list: GitHub answered 401');
      },
      redeliver: async () => undefined,
    };
    await expect(redeliverFailed({ github: broken, now: () => NOW })).rejects.toThrow('github-401');
  });

  it('starts no redelivery with too little time left', async () => {
    const github = port([attempt('g', 300, 500)]);
    const report = await redeliverFailed({ github, now: () => NOW, timeLeftMs: () => 5_000 });
    expect(github.redelivered).toEqual([]);
    expect(report.deferred).toBe(1);
  });
});

// ------------------------------------------------------------------------------ the adapter over HTTP

const KEY = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const APP_ID = '4242';
const SECRET = JSON.stringify({ appId: APP_ID, privateKey: KEY.privateKey });

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly jwtValid: boolean;
}

/** GitHub's App webhook deliveries, in-process: the JWT verified, pages of `perPage` linked by cursor. */
class FakeHookDeliveries {
  readonly seen: Seen[] = [];
  /** Newest first, as GitHub lists them. */
  items: Record<string, unknown>[] = [];
  perPage = 2;
  /** Answers for a redelivery, by delivery id. */
  redeliveryStatus: Record<number, number> = {};
  rateLimitListing = false;
  private server: Server | undefined;
  private base = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://github');
        const jwt = /^bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
        const jwtValid = this.validJwt(jwt);
        this.seen.push({ method: req.method ?? '', path: `${url.pathname}${url.search}`, jwtValid });
        const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(body === undefined ? undefined : JSON.stringify(body));
        };
        if (!jwtValid) return send(401, { message: 'A JSON web token could not be decoded' });
        if (req.method === 'GET' && url.pathname === '/app/hook/deliveries') {
          if (this.rateLimitListing)
            return send(403, { message: 'API rate limit exceeded' }, { 'x-ratelimit-remaining': '0' });
          const start = Number(url.searchParams.get('cursor') ?? 0);
          const page = this.items.slice(start, start + this.perPage);
          const more = start + this.perPage < this.items.length;
          const link = more
            ? `<${this.base}/app/hook/deliveries?per_page=100&cursor=${start + this.perPage}>; rel="next"`
            : undefined;
          return send(200, page, link ? { link } : {});
        }
        const redeliver = /^\/app\/hook\/deliveries\/(\d+)\/attempts$/.exec(url.pathname);
        if (req.method === 'POST' && redeliver) {
          const status = this.redeliveryStatus[Number(redeliver[1])] ?? 202;
          return send(status, status === 202 ? {} : { message: 'failed' });
        }
        return send(404, { message: 'Not Found' });
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private validJwt(jwt: string): boolean {
    const [header, payload, signature] = jwt.split('.');
    if (!header || !payload || !signature) return false;
    const ok = verify(
      'RSA-SHA256',
      Buffer.from(`${header}.${payload}`),
      KEY.publicKey,
      Buffer.from(signature, 'base64url'),
    );
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      iss?: unknown;
      exp?: unknown;
    };
    return ok && String(claims.iss) === APP_ID && Number(claims.exp) * 1_000 > Date.now();
  }
}

const item = (id: number, guid: string, ageSec: number, status: number, event = 'workflow_job') => ({
  id,
  guid,
  delivered_at: new Date(Date.now() - ageSec * 1_000).toISOString(),
  redelivery: false,
  duration: 0.1,
  status: status === 200 ? 'OK' : 'failed',
  status_code: status,
  event,
  action: 'queued',
  installation_id: 7,
  repository_id: 9,
});

describe('AppHookDeliveries and the handler', () => {
  const fake = new FakeHookDeliveries();
  let baseUrl = '';
  beforeAll(async () => {
    baseUrl = await fake.start();
  });
  afterAll(async () => fake.stop());
  beforeEach(() => {
    fake.seen.length = 0;
    fake.items = [];
    fake.redeliveryStatus = {};
    fake.rateLimitListing = false;
  });

  const github = () => new AppHookDeliveries({ loadSecret: async () => SECRET, baseUrl });

  it('reads the cursor of the next link only', () => {
    expect(
      nextCursor('<https://api.github.com/app/hook/deliveries?cursor=v1_9&per_page=100>; rel="next"'),
    ).toBe('v1_9');
    expect(nextCursor('<https://x/app/hook/deliveries?cursor=a>; rel="prev"')).toBeUndefined();
    expect(nextCursor(undefined)).toBeUndefined();
  });

  it('lists with a verified JWT, following Link pages until the items leave the window', async () => {
    fake.items = [
      item(10, 'a', 100, 500),
      item(9, 'b', 200, 200),
      item(8, 'c', 300, 500),
      item(7, 'd', 4_000, 500),
      item(6, 'e', 5_000, 500),
      item(5, 'f', 6_000, 500),
    ];
    const listed = await github().listDeliveries(Date.now() - 3_600_000);
    expect(listed.map((d) => d.id)).toEqual([10, 9, 8, 7]);
    expect(listed[0]).toMatchObject({ guid: 'a', statusCode: 500, event: 'workflow_job', action: 'queued' });
    expect(fake.seen.map((s) => s.path)).toEqual([
      '/app/hook/deliveries?per_page=100',
      '/app/hook/deliveries?per_page=100&cursor=2',
    ]);
    expect(fake.seen.every((s) => s.jwtValid)).toBe(true);
  });

  it('runs a pass: redelivers the failed guids, counts the failure and the metrics', async () => {
    fake.items = [
      item(10, 'a', 100, 500),
      item(9, 'b', 200, 200),
      item(8, 'c', 300, 409),
      item(7, 'x', 400, 500, 'push'),
    ];
    fake.redeliveryStatus = { 8: 502 };
    const recorded: Record<string, number> = {};
    const metrics: MetricsSink = {
      addMetric: (name, _unit, value) => {
        recorded[name] = value;
      },
      publishStoredMetrics: () => undefined,
    };
    const logs: string[] = [];
    const logger = {
      info: (...args: unknown[]) => logs.push(JSON.stringify(args)),
      warn: (...args: unknown[]) => logs.push(JSON.stringify(args)),
      error: (...args: unknown[]) => logs.push(JSON.stringify(args)),
    } as unknown as Logger;
    const handler = createRedeliveryHandler({
      region: 'eu-west-1',
      deps: { github: github(), now: () => Date.now() },
      metrics,
      logger,
    });
    const summary = await handler({}, { getRemainingTimeInMillis: () => 60_000 });
    expect(summary).toMatchObject({ redelivered: 1, redeliveryFailed: 1, failedGuids: 2 });
    expect(recorded).toEqual({
      Redelivered: 1,
      RedeliveryFailed: 1,
      RedeliveryGaveUp: 0,
      RedeliveryRateLimited: 0,
    });
    expect(fake.seen.filter((s) => s.method === 'POST').map((s) => s.path)).toEqual([
      '/app/hook/deliveries/8/attempts',
      '/app/hook/deliveries/10/attempts',
    ]);
    const text = logs.join('\n');
    expect(text).toContain('"guid":"c"');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });

  it("logs a guid's failed redelivery under its correlation id, as the router logged the delivery", async () => {
    const guid = '5D1B0A9E-3C4F-4E21-9B7A-0C2D4E6F8A10';
    fake.items = [item(10, guid, 100, 500), item(8, 'c', 300, 409)];
    fake.redeliveryStatus = { 10: 502, 8: 502 };
    const warnings: Record<string, unknown>[] = [];
    const logger = {
      info: () => undefined,
      warn: (_message: string, extra: Record<string, unknown>) => warnings.push(extra),
      error: () => undefined,
    } as unknown as Logger;
    const metrics: MetricsSink = { addMetric: () => undefined, publishStoredMetrics: () => undefined };
    const handler = createRedeliveryHandler({
      region: 'eu-west-1',
      deps: { github: github(), now: () => Date.now() },
      metrics,
      logger,
    });
    await handler({}, { getRemainingTimeInMillis: () => 60_000 });
    const failed = (g: string) => warnings.find((w) => w.guid === g);
    // The router takes the X-GitHub-Delivery GUID lower-cased; a guid of another form has no correlation id.
    expect(failed(guid)).toMatchObject({ correlation_id: guid.toLowerCase(), code: expect.any(String) });
    expect(failed('c')).toBeDefined();
    expect(failed('c')).not.toHaveProperty('correlation_id');
  });

  it('stops on a rate-limited listing (403, remaining 0) without throwing', async () => {
    fake.rateLimitListing = true;
    fake.items = [item(10, 'a', 100, 500)];
    await expect(redeliverFailed({ github: github(), now: () => Date.now() })).resolves.toMatchObject({
      rateLimited: true,
      redelivered: 0,
    });
  });

  it('fails a run whose JWT GitHub refuses, naming the call and never the key', async () => {
    const other = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const wrong = new AppHookDeliveries({
      loadSecret: async () => JSON.stringify({ appId: APP_ID, privateKey: other.privateKey }),
      baseUrl,
    });
    const error = await wrong.listDeliveries(0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(String(error)).toContain('list-hook-deliveries');
    expect(String(error)).not.toContain('PRIVATE KEY');
  });

  it('reads its settings', () => {
    expect(loadRedeliverySettings({ AWS_REGION: 'eu-west-1', GITHUB_APP_SECRET_ID: 'app' })).toEqual({
      region: 'eu-west-1',
      githubAppSecretId: 'app',
      githubApiUrl: 'https://api.github.com',
    });
    expect(
      loadRedeliverySettings({
        AWS_REGION: 'eu-west-1',
        GITHUB_APP_SECRET_ID: 'app',
        REDELIVERY_WINDOW_SEC: '7200',
      }).windowSec,
    ).toBe(7_200);
    expect(() => loadRedeliverySettings({ AWS_REGION: 'eu-west-1' })).toThrow('GITHUB_APP_SECRET_ID');
  });
});
