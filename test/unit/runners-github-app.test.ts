import { generateKeyPairSync, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { RunnerExistsError } from '../../runtime/runners/dispatch';
import {
  GitHubAppRunners,
  GitHubAppSecretError,
  GitHubRateLimitError,
  parseAppSecret,
  RunnerGroupMissingError,
  RunnerGroupOpenError,
} from '../../runtime/runners/github-app';

/** Two App keys: the one in force, and the one a rotation brings in. */
const keyPair = (format: 'pkcs8' | 'pkcs1') =>
  generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: format, format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
const KEY_A = keyPair('pkcs8');
const KEY_B = keyPair('pkcs1');
const APP_ID = '4242';
/** Keys that read as PEM at a glance and are unusable: each must be refused when the secret is parsed. */
const CORRUPT_KEY = KEY_A.privateKey.replace(
  /^(-----BEGIN PRIVATE KEY-----\n)(.{40})/,
  '$1' + 'A'.repeat(40),
);
const TRUNCATED_KEY = KEY_A.privateKey.slice(0, 600);
const ESCAPED_KEY = KEY_B.privateKey.replace(/\n/g, '\\n');
const EC_KEY = generateKeyPairSync('ec', {
  namedCurve: 'P-256',
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
}).privateKey;
const ENCRYPTED_KEY = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass-phrase' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
}).privateKey;
const ENCODED = 'ENCODED-JIT-CONFIG-SECRET';

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly auth: 'jwt' | 'token' | 'none';
  readonly body: unknown;
}

type Override = (
  request: Seen,
) => { status: number; body?: unknown; headers?: Record<string, string> } | undefined;

/**
 * GitHub, played in-process: checks the App's JWT against the key in force, issues installation tokens,
 * generates JIT configs, lists and deletes runners and answers job statuses; `override` injects answers.
 */
class FakeGitHub {
  readonly seen: Seen[] = [];
  publicKey = KEY_A.publicKey;
  readonly tokens = new Set<string>();
  installations: Record<string, number> = { acme: 77, globex: 78 };
  runners: { id: number; name: string; status: string; busy: boolean }[] = [];
  /** Per organisation; `Default` is always id 1. */
  runnerGroups: Record<string, { id: number; name: string }[]> = {
    acme: [
      { id: 1, name: 'Default' },
      { id: 7, name: 'docker-trusted' },
    ],
  };
  jobStatus = 'queued';
  /** Per group id: its visibility and, for `selected`, the repositories it admits. */
  groupAccess: Record<number, { visibility: string; repositories: string[] }> = {
    7: { visibility: 'selected', repositories: ['acme/app', 'acme/infra'] },
  };
  override: Override | undefined;
  tokenTtlMs = 3_600_000;
  private issued = 0;
  private server: Server | undefined;
  prefix = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.answer(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  rotate(): void {
    this.publicKey = KEY_B.publicKey;
    this.tokens.clear();
  }

  private validJwt(jwt: string): boolean {
    const [header, payload, signature] = jwt.split('.');
    if (!header || !payload || !signature) return false;
    const ok = verify(
      'RSA-SHA256',
      Buffer.from(`${header}.${payload}`),
      this.publicKey,
      Buffer.from(signature, 'base64url'),
    );
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: unknown };
    return ok && String(claims.iss) === APP_ID;
  }

  private answer(req: IncomingMessage, res: ServerResponse, text: string): void {
    const url = new URL(req.url ?? '/', 'http://github');
    let path = url.pathname;
    if (this.prefix && path.startsWith(this.prefix)) path = path.slice(this.prefix.length);
    const header = req.headers.authorization ?? '';
    const [scheme, credential = ''] = header.split(' ');
    const auth =
      scheme?.toLowerCase() === 'bearer' ? 'jwt' : scheme?.toLowerCase() === 'token' ? 'token' : 'none';
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    const seen: Seen = { method: req.method ?? '', path: `${path}${url.search}`, auth, body };
    this.seen.push(seen);
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    const injected = this.override?.(seen);
    if (injected) return send(injected.status, injected.body ?? { message: 'injected' }, injected.headers);

    let m: RegExpMatchArray | null;
    if (auth === 'jwt') {
      if (!this.validJwt(credential)) return send(401, { message: 'A JSON web token could not be decoded' });
      if ((m = path.match(/^\/orgs\/([^/]+)\/installation$/)) && req.method === 'GET') {
        const id = this.installations[m[1] ?? ''];
        return id ? send(200, { id, account: { login: m[1] } }) : send(404, { message: 'Not Found' });
      }
      if ((m = path.match(/^\/app\/installations\/(\d+)\/access_tokens$/)) && req.method === 'POST') {
        const token = `ghs_token_${++this.issued}`;
        this.tokens.add(token);
        return send(201, { token, expires_at: new Date(Date.now() + this.tokenTtlMs).toISOString() });
      }
      return send(404, { message: 'Not Found' });
    }
    if (auth !== 'token' || !this.tokens.has(credential)) return send(401, { message: 'Bad credentials' });
    if (
      (m = path.match(/^\/orgs\/([^/]+)\/actions\/runners\/generate-jitconfig$/)) &&
      req.method === 'POST'
    ) {
      const name = (body as { name: string }).name;
      if (this.runners.some((r) => r.name === name)) return send(409, { message: 'Already exists' });
      this.runners.push({ id: 100 + this.runners.length, name, status: 'offline', busy: false });
      return send(201, { runner: { id: 100, name }, encoded_jit_config: ENCODED });
    }
    if ((m = path.match(/^\/orgs\/([^/]+)\/actions\/runners$/)) && req.method === 'GET') {
      const name = url.searchParams.get('name');
      if (name !== null) {
        const runners = this.runners.filter((r) => r.name === name);
        return send(200, { total_count: runners.length, runners });
      }
      return send(200, { total_count: this.runners.length, runners: paged(this.runners, url) });
    }
    if ((m = path.match(/^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/)) && req.method === 'DELETE') {
      const runner = this.runners.find((r) => r.id === Number(m?.[2]));
      if (!runner) return send(404, { message: 'Not Found' });
      if (runner.busy)
        return send(422, { message: `Bad request - Runner "${runner.name}" is still running a job"` });
      this.runners = this.runners.filter((r) => r !== runner);
      return send(204);
    }
    if ((m = path.match(/^\/orgs\/([^/]+)\/actions\/runner-groups$/)) && req.method === 'GET') {
      const groups = this.runnerGroups[m[1] ?? ''] ?? [{ id: 1, name: 'Default' }];
      return send(200, { total_count: groups.length, runner_groups: paged(groups, url) });
    }
    if ((m = path.match(/^\/orgs\/([^/]+)\/actions\/runner-groups\/(\d+)$/)) && req.method === 'GET') {
      const access = this.groupAccess[Number(m[2])];
      if (!access) return send(404, { message: 'Not Found' });
      return send(200, {
        id: Number(m[2]),
        visibility: access.visibility,
        allows_public_repositories: false,
      });
    }
    if (
      (m = path.match(/^\/orgs\/([^/]+)\/actions\/runner-groups\/(\d+)\/repositories$/)) &&
      req.method === 'GET'
    ) {
      const access = this.groupAccess[Number(m[2])];
      if (!access) return send(404, { message: 'Not Found' });
      const repositories = access.repositories.map((fullName, i) => ({
        id: 500 + i,
        name: fullName.split('/')[1],
        full_name: fullName,
      }));
      return send(200, { total_count: repositories.length, repositories: paged(repositories, url) });
    }
    if ((m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/actions\/jobs\/(\d+)$/)) && req.method === 'GET')
      return send(200, { id: Number(m[3]), status: this.jobStatus });
    return send(404, { message: 'Not Found' });
  }

  calls(pattern: RegExp): Seen[] {
    return this.seen.filter((s) => pattern.test(`${s.method} ${s.path}`));
  }
}

/** A page of a list as GitHub pages it (`per_page`, default 30; `page` from 1). */
function paged<T>(items: readonly T[], url: URL): T[] {
  const perPage = Number(url.searchParams.get('per_page') ?? 30);
  const page = Number(url.searchParams.get('page') ?? 1);
  return items.slice((page - 1) * perPage, page * perPage);
}

const secretOf = (privateKey: string) => JSON.stringify({ appId: APP_ID, privateKey });

let github: FakeGitHub;
let baseUrl: string;
beforeEach(async () => {
  github = new FakeGitHub();
  baseUrl = await github.start();
});
afterEach(async () => {
  await github.stop();
});

function client(
  options: {
    secret?: () => Promise<string>;
    now?: () => number;
    base?: string;
    maxRunnerPages?: number;
  } = {},
) {
  let reads = 0;
  const loadSecret =
    options.secret ??
    (async () => {
      reads++;
      return secretOf(KEY_A.privateKey);
    });
  const runners = new GitHubAppRunners({
    loadSecret,
    baseUrl: options.base ?? baseUrl,
    ...(options.now ? { now: options.now } : {}),
    ...(options.maxRunnerPages ? { maxRunnerPages: options.maxRunnerPages } : {}),
  });
  return { runners, reads: () => reads };
}

const jit = {
  organization: 'acme',
  runnerName: 'eu-central-1-42-0',
  labels: ['self-hosted', 'linux'],
  runnerGroup: 'Default',
};

async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

describe('GitHubAppRunners', () => {
  it('generates a JIT config with an installation token of the organisation, as the API documents', async () => {
    const { runners } = client();
    expect(await runners.jitConfig(jit)).toBe(ENCODED);
    expect(github.seen.map((s) => `${s.method} ${s.path} ${s.auth}`)).toEqual([
      'GET /orgs/acme/installation jwt',
      'POST /app/installations/77/access_tokens jwt',
      'POST /orgs/acme/actions/runners/generate-jitconfig token',
    ]);
    expect(github.seen[2]?.body).toEqual({
      name: 'eu-central-1-42-0',
      runner_group_id: 1,
      labels: ['self-hosted', 'linux'],
      work_folder: '_work',
    });
  });

  it('caches the secret and each organisation’s token until shortly before it expires', async () => {
    const clock = { t: Date.now() };
    const { runners, reads } = client({ now: () => clock.t });
    await runners.jitConfig(jit);
    await runners.jitConfig({ ...jit, runnerName: 'eu-central-1-43-0' });
    expect(github.calls(/access_tokens/)).toHaveLength(1);
    await runners.jitConfig({ ...jit, organization: 'globex', runnerName: 'eu-central-1-44-0' });
    expect(github.calls(/access_tokens/)).toHaveLength(2);
    expect(reads()).toBe(1);
    // 56 minutes on, the token has less than the 5-minute margin left: renewed.
    clock.t += 56 * 60_000;
    await runners.jitConfig({ ...jit, runnerName: 'eu-central-1-45-0' });
    expect(github.calls(/installations\/77\/access_tokens/)).toHaveLength(2);
  });

  it('reads a job’s status', async () => {
    const { runners } = client();
    for (const [status, expected] of [
      ['queued', 'queued'],
      ['in_progress', 'in_progress'],
      ['completed', 'completed'],
      // Held by an environment's reviewers or wait timer: no runner until approved.
      ['waiting', 'waiting'],
      ['pending', 'waiting'],
      ['requested', 'waiting'],
      ['something-new', 'unknown'],
    ] as const) {
      github.jobStatus = status;
      expect(await runners.jobStatus('acme/app', 991)).toBe(expected);
    }
    expect(github.calls(/jobs/)[0]?.path).toBe('/repos/acme/app/actions/jobs/991');
  });

  it('talks to GitHub Enterprise Server under its API path', async () => {
    github.prefix = '/api/v3';
    const { runners } = client({ base: `${baseUrl}/api/v3/` });
    expect(await runners.jitConfig(jit)).toBe(ENCODED);
  });

  it('replaces a runner of the same name that never came online, and reports one online', async () => {
    const { runners } = client();
    await runners.jitConfig(jit);
    expect(await runners.jitConfig(jit)).toBe(ENCODED);
    expect(github.calls(/^DELETE /)).toHaveLength(1);
    expect(github.runners).toHaveLength(1);

    (github.runners[0] as { status: string }).status = 'online';
    await expect(runners.jitConfig(jit)).rejects.toBeInstanceOf(RunnerExistsError);
  });

  it.each([
    [
      'an App not installed on the organisation (404)',
      'acme-unknown',
      undefined,
      PermanentError,
      'github-404',
    ],
    ['a refusal of the request (422)', 'acme', 422, PermanentError, 'github-422'],
    ['a missing permission (403)', 'acme', 403, PermanentError, 'github-403'],
    ['a server error (502)', 'acme', 502, RetryableError, 'github-unavailable'],
    ['throttling (429)', 'acme', 429, RetryableError, 'github-rate-limited'],
  ] as const)('maps %s', async (_, organization, status, type, code) => {
    if (status) github.override = (s) => (s.path.endsWith('generate-jitconfig') ? { status } : undefined);
    const { runners } = client();
    const error = await failureOf(runners.jitConfig({ ...jit, organization }));
    expect(error).toBeInstanceOf(type);
    expect((error as PermanentError).code).toBe(code);
    expect(error.message).not.toContain(organization);
  });

  it('treats no answer at all as transient', async () => {
    await github.stop();
    const error = await failureOf(client().runners.jitConfig(jit));
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).code).toBe('github-unreachable');
    github = new FakeGitHub();
    baseUrl = await github.start();
  });

  it('picks up a rotated key: refused credentials read the secret again and the call is tried once more', async () => {
    let current = KEY_A.privateKey;
    let reads = 0;
    const { runners } = client({
      secret: async () => {
        reads++;
        return secretOf(current);
      },
    });
    await runners.jitConfig(jit);
    github.rotate();
    current = KEY_B.privateKey;
    expect(await runners.jitConfig({ ...jit, runnerName: 'eu-central-1-43-0' })).toBe(ENCODED);
    expect(reads).toBe(2);
  });

  it('refuses credentials GitHub refuses, once fresh ones were tried, permanently and without the key', async () => {
    const { runners } = client({ secret: async () => secretOf(KEY_B.privateKey) });
    const error = await failureOf(runners.jitConfig(jit));
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).code).toBe('github-401');
    expect(error.message).not.toContain('-----BEGIN');
  });

  it('never puts the key, a token or the JIT config in an error', async () => {
    github.override = (s) => (s.path.endsWith('generate-jitconfig') ? { status: 500 } : undefined);
    const error = await failureOf(client().runners.jitConfig(jit));
    const text = `${error.message} ${error.stack ?? ''} ${JSON.stringify(error)}`;
    expect(text).not.toMatch(/ghs_token|-----BEGIN|ENCODED-JIT/);
  });
});

describe('rate limits', () => {
  const T0 = Date.parse('2030-01-01T00:00:00Z');
  const limited = (status: number, headers: Record<string, string>, message = 'limited') => {
    github.override = (s) =>
      s.path.endsWith('generate-jitconfig') ? { status, headers, body: { message } } : undefined;
    return failureOf(client({ now: () => T0 }).runners.jitConfig(jit));
  };

  it.each([
    [
      'a spent primary limit (403, x-ratelimit-remaining 0): until x-ratelimit-reset',
      403,
      { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(T0 / 1000 + 120) },
      'API rate limit exceeded for installation ID 77.',
      120,
    ],
    [
      'a secondary limit with retry-after (403)',
      403,
      { 'retry-after': '30' },
      'You have exceeded a secondary rate limit.',
      30,
    ],
    [
      'a secondary limit named in the message only (403): a minute, as GitHub advises',
      403,
      {},
      'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
      60,
    ],
    ['a retry-after on a 403 whatever the message', 403, { 'retry-after': '7' }, 'Forbidden', 7],
    ['a 429 with retry-after', 429, { 'retry-after': '5' }, 'Too many requests', 5],
    ['a 429 without headers', 429, {}, 'Too many requests', 60],
    [
      'a retry-after as an HTTP date',
      429,
      { 'retry-after': new Date(T0 + 90_000).toUTCString() },
      'Too many requests',
      90,
    ],
    ['a retry-after far out, bounded to an hour', 429, { 'retry-after': '86400' }, 'Too many requests', 3600],
  ] as const)(
    'treats %s as transient, with the seconds to wait',
    async (_, status, headers, message, sec) => {
      const error = await limited(status, headers, message);
      expect(error).toBeInstanceOf(GitHubRateLimitError);
      expect(error).toBeInstanceOf(RetryableError);
      expect((error as GitHubRateLimitError).code).toBe('github-rate-limited');
      expect((error as GitHubRateLimitError).retryAfterSec).toBe(sec);
      expect(error.message).not.toContain('installation ID');
    },
  );

  it.each([
    ['a missing permission', 'Resource not accessible by integration', {}],
    ['a limit left (x-ratelimit-remaining above 0)', 'Forbidden', { 'x-ratelimit-remaining': '4999' }],
  ] as const)('keeps other 403s permanent: %s', async (_, message, headers) => {
    const error = await limited(403, headers, message);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).not.toBeInstanceOf(GitHubRateLimitError);
    expect((error as PermanentError).code).toBe('github-403');
  });

  it('treats a rate-limited token exchange as transient too', async () => {
    github.override = (s) =>
      s.path.endsWith('/installation') ? { status: 429, headers: { 'retry-after': '12' } } : undefined;
    const error = await failureOf(client().runners.jitConfig(jit));
    expect(error).toBeInstanceOf(GitHubRateLimitError);
    expect((error as GitHubRateLimitError).retryAfterSec).toBe(12);
  });
});

describe('runner groups by name', () => {
  it('joins Default (id 1) without asking GitHub', async () => {
    const { runners } = client();
    await runners.jitConfig(jit);
    expect(github.calls(/runner-groups/)).toHaveLength(0);
    expect((github.calls(/generate-jitconfig/)[0]?.body as { runner_group_id: number }).runner_group_id).toBe(
      1,
    );
  });

  it('resolves a group’s id in the organisation, cached for ten minutes', async () => {
    const clock = { t: Date.now() };
    const { runners } = client({ now: () => clock.t });
    const docker = { ...jit, runnerGroup: 'docker-trusted' };
    await runners.jitConfig(docker);
    await runners.jitConfig({ ...docker, runnerName: 'eu-central-1-43-0' });
    const generated = github
      .calls(/generate-jitconfig/)
      .map((s) => (s.body as { runner_group_id: number }).runner_group_id);
    expect(generated).toEqual([7, 7]);
    expect(github.calls(/runner-groups/).map((s) => s.path)).toEqual([
      '/orgs/acme/actions/runner-groups?per_page=100&page=1',
    ]);
    clock.t += 11 * 60_000;
    await runners.jitConfig({ ...docker, runnerName: 'eu-central-1-44-0' });
    expect(github.calls(/runner-groups/)).toHaveLength(2);
  });

  it('reads every page of the groups', async () => {
    github.runnerGroups.acme = [
      { id: 1, name: 'Default' },
      ...Array.from({ length: 149 }, (_, i) => ({ id: 100 + i, name: `group-${i}` })),
      { id: 999, name: 'docker-trusted' },
    ];
    const { runners } = client();
    await runners.jitConfig({ ...jit, runnerGroup: 'docker-trusted' });
    expect(github.calls(/runner-groups/).map((s) => s.path)).toEqual([
      '/orgs/acme/actions/runner-groups?per_page=100&page=1',
      '/orgs/acme/actions/runner-groups?per_page=100&page=2',
    ]);
    expect((github.calls(/generate-jitconfig/)[0]?.body as { runner_group_id: number }).runner_group_id).toBe(
      999,
    );
  });

  it('refuses a group the organisation does not have, permanently, naming it and what to do', async () => {
    const clock = { t: Date.now() };
    const { runners } = client({ now: () => clock.t });
    const error = await failureOf(runners.jitConfig({ ...jit, runnerGroup: 'gpu-trusted' }));
    expect(error).toBeInstanceOf(RunnerGroupMissingError);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).code).toBe('runner-group-missing');
    expect((error as PermanentError).reason).toMatch(
      /^runnerGroup: .*"gpu-trusted".*restricted to the trusted repositories/,
    );
    expect(error.message).not.toContain('acme');
    expect(github.calls(/generate-jitconfig/)).toHaveLength(0);

    // Created on GitHub: found once the listing is a minute old (not before: a burst asks once).
    github.runnerGroups.acme?.push({ id: 12, name: 'gpu-trusted' });
    await expect(runners.jitConfig({ ...jit, runnerGroup: 'gpu-trusted' })).rejects.toBeInstanceOf(
      RunnerGroupMissingError,
    );
    expect(github.calls(/runner-groups/)).toHaveLength(1);
    clock.t += 61_000;
    expect(await runners.jitConfig({ ...jit, runnerGroup: 'gpu-trusted' })).toBe(ENCODED);
    expect(github.calls(/runner-groups/)).toHaveLength(2);
  });

  it('matches the name exactly: `default` is not Default', async () => {
    const error = await failureOf(client().runners.jitConfig({ ...jit, runnerGroup: 'default' }));
    expect(error).toBeInstanceOf(RunnerGroupMissingError);
  });

  it('maps a failed listing like every call', async () => {
    github.override = (s) => (s.path.includes('runner-groups') ? { status: 403 } : undefined);
    const error = await failureOf(client().runners.jitConfig({ ...jit, runnerGroup: 'docker-trusted' }));
    expect((error as PermanentError).code).toBe('github-403');
    expect(error.message).toContain('list-runner-groups');
  });
});

describe('runners for the reaper', () => {
  const seed = (count: number) => {
    github.runners = Array.from({ length: count }, (_, i) => ({
      id: 1_000 + i,
      name: i % 2 === 0 ? `eu-central-1-${i}-0` : `us-east-1-${i}-0`,
      status: i % 3 === 0 ? 'online' : 'offline',
      busy: i % 5 === 0,
    }));
  };

  it('lists every page and keeps the names with the prefix', async () => {
    seed(230);
    const listed = await client().runners.listRunners('acme', 'eu-central-1-');
    expect(github.calls(/GET \/orgs\/acme\/actions\/runners\?/).map((s) => s.path)).toEqual([
      '/orgs/acme/actions/runners?per_page=100&page=1',
      '/orgs/acme/actions/runners?per_page=100&page=2',
      '/orgs/acme/actions/runners?per_page=100&page=3',
    ]);
    expect(listed).toHaveLength(115);
    expect(listed.every((r) => r.name.startsWith('eu-central-1-'))).toBe(true);
    expect(listed.find((r) => r.id === 1_000)).toEqual({
      id: 1_000,
      name: 'eu-central-1-0-0',
      status: 'online',
      busy: true,
    });
    expect(listed.find((r) => r.id === 1_002)).toEqual({
      id: 1_002,
      name: 'eu-central-1-2-0',
      status: 'offline',
      busy: false,
    });
  });

  it('fails rather than answer part of a list too long to read', async () => {
    seed(230);
    const error = await failureOf(client({ maxRunnerPages: 2 }).runners.listRunners('acme', 'eu-central-1-'));
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).code).toBe('github-runners-truncated');
  });

  it('deletes an idle registration, says `busy` for one running a job (422) and `absent` for none', async () => {
    seed(3);
    const { runners } = client();
    expect(await runners.deleteRunner('acme', 1_001)).toBe('deleted');
    expect(github.runners.map((r) => r.id)).toEqual([1_000, 1_002]);
    expect(await runners.deleteRunner('acme', 1_000)).toBe('busy');
    expect(github.runners.map((r) => r.id)).toEqual([1_000, 1_002]);
    expect(await runners.deleteRunner('acme', 4_242)).toBe('absent');
    expect(github.calls(/^DELETE /).map((s) => s.path)).toEqual([
      '/orgs/acme/actions/runners/1001',
      '/orgs/acme/actions/runners/1000',
      '/orgs/acme/actions/runners/4242',
    ]);
  });

  it('never takes a failure to reach the organisation for an absent runner', async () => {
    const error = await failureOf(client().runners.deleteRunner('acme-unknown', 1_001));
    expect((error as PermanentError).code).toBe('github-404');
  });

  it('maps other refusals of a deletion', async () => {
    seed(3);
    github.override = (s) => (s.method === 'DELETE' ? { status: 403 } : undefined);
    const error = await failureOf(client().runners.deleteRunner('acme', 1_001));
    expect((error as PermanentError).code).toBe('github-403');
  });
});

describe('the App secret', () => {
  it('reads the App id and a PKCS#8 or PKCS#1 key', () => {
    expect(parseAppSecret(secretOf(KEY_A.privateKey)).appId).toBe(APP_ID);
    expect(parseAppSecret(JSON.stringify({ appId: 4242, privateKey: KEY_B.privateKey })).appId).toBe(APP_ID);
  });

  it.each([
    ['not JSON', 'nope', 'secret'],
    ['an array', '[]', 'secret'],
    ['no App id', JSON.stringify({ privateKey: KEY_A.privateKey }), 'appId'],
    ['an App id of letters', JSON.stringify({ appId: 'abc', privateKey: KEY_A.privateKey }), 'appId'],
    ['no key', JSON.stringify({ appId: APP_ID }), 'privateKey'],
    ['a key that is no PEM', JSON.stringify({ appId: APP_ID, privateKey: 'hunter2' }), 'privateKey'],
    ['an App id on the prototype', '{"__proto__":{"appId":"1"},"privateKey":"x"}', 'appId'],
    [
      'a corrupt key (PEM armour, broken body)',
      JSON.stringify({ appId: APP_ID, privateKey: CORRUPT_KEY }),
      'privateKey',
    ],
    ['a truncated key', JSON.stringify({ appId: APP_ID, privateKey: TRUNCATED_KEY }), 'privateKey'],
    [
      'a key with escaped line breaks',
      JSON.stringify({ appId: APP_ID, privateKey: ESCAPED_KEY }),
      'privateKey',
    ],
    ['an EC key', JSON.stringify({ appId: APP_ID, privateKey: EC_KEY }), 'privateKey'],
    ['an encrypted key', JSON.stringify({ appId: APP_ID, privateKey: ENCRYPTED_KEY }), 'privateKey'],
  ])('refuses %s, naming the field and never the value', (_, text, field) => {
    let error: unknown;
    try {
      parseAppSecret(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(GitHubAppSecretError);
    expect((error as GitHubAppSecretError).reason.startsWith(field)).toBe(true);
    expect((error as Error).message).not.toMatch(/hunter2|-----BEGIN|abc/);
  });

  it('is a permanent failure naming privateKey for a corrupt key, before a single call to GitHub', async () => {
    const error = await failureOf(
      client({ secret: async () => secretOf(CORRUPT_KEY) }).runners.jitConfig(jit),
    );
    expect(error).toBeInstanceOf(GitHubAppSecretError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expect((error as GitHubAppSecretError).reason.startsWith('privateKey:')).toBe(true);
    expect(error.message).not.toMatch(/no answer|-----BEGIN|AAAAAAAAAA/);
    expect(github.seen).toHaveLength(0);
  });

  it('is a permanent failure of the call when the secret is malformed, and a transient one when it cannot be read', async () => {
    const malformed = await failureOf(client({ secret: async () => 'nope' }).runners.jitConfig(jit));
    expect(malformed).toBeInstanceOf(GitHubAppSecretError);
    const unreadable = await failureOf(
      client({
        secret: async () => {
          throw Object.assign(new Error('arn:aws:secretsmanager:... denied'), {
            name: 'AccessDeniedException',
          });
        },
      }).runners.jitConfig(jit),
    );
    expect(unreadable).toBeInstanceOf(RetryableError);
    expect(unreadable.message).not.toContain('arn:aws');
  });
});

describe('runner groups: which repositories may use them', () => {
  const groupCalls = () =>
    github
      .calls(/runner-groups\/\d+/)
      .map((s) => s.path.replace(/^\/orgs\/acme\/actions\/runner-groups/, ''));

  it('admits every repository to Default without asking GitHub', async () => {
    expect(await client().runners.repositoryAllowed('acme', 'Default', 'acme/app')).toBe(true);
    expect(github.calls(/runner-groups/)).toHaveLength(0);
  });

  it('admits a repository a `selected` group lists, by full name, and refuses one it does not', async () => {
    const { runners } = client();
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/app')).toBe(true);
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'ACME/Infra')).toBe(true);
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/untrusted')).toBe(false);
    // The group's id once, its access once (cached): a repository missing from a fresh listing asks no more.
    expect(groupCalls()).toEqual(['/7', '/7/repositories?per_page=100&page=1']);
  });

  it('reads every page of the repositories, caches them ten minutes, and lists again for a missing one after a minute', async () => {
    github.groupAccess[7] = {
      visibility: 'selected',
      repositories: Array.from({ length: 150 }, (_, i) => `acme/repo-${i}`),
    };
    const clock = { t: Date.now() };
    const { runners } = client({ now: () => clock.t });
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/repo-149')).toBe(true);
    expect(groupCalls()).toEqual([
      '/7',
      '/7/repositories?per_page=100&page=1',
      '/7/repositories?per_page=100&page=2',
    ]);
    github.groupAccess[7]?.repositories.push('acme/new');
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/new')).toBe(false);
    expect(groupCalls()).toHaveLength(3);
    clock.t += 61_000;
    expect(await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/new')).toBe(true);
    expect(groupCalls()).toHaveLength(6);
    clock.t += 11 * 60_000;
    await runners.repositoryAllowed('acme', 'docker-trusted', 'acme/repo-1');
    expect(groupCalls()).toHaveLength(9);
  });

  it.each(['all', 'private'])(
    'refuses a group open to %s repositories, permanently, saying to restrict it',
    async (visibility) => {
      github.groupAccess[7] = { visibility, repositories: [] };
      const error = await failureOf(client().runners.repositoryAllowed('acme', 'docker-trusted', 'acme/app'));
      expect(error).toBeInstanceOf(RunnerGroupOpenError);
      expect((error as PermanentError).code).toBe('runner-group-open');
      expect((error as PermanentError).reason).toMatch(
        /"docker-trusted".*restrict it to selected repositories/,
      );
      expect(github.calls(/repositories/)).toHaveLength(0);
    },
  );

  it('maps a failed look like every call', async () => {
    github.override = (s) => (/runner-groups\/7/.test(s.path) ? { status: 503 } : undefined);
    const error = await failureOf(client().runners.repositoryAllowed('acme', 'docker-trusted', 'acme/app'));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toContain('get-runner-group');
  });
});
