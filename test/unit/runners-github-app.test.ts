import { generateKeyPairSync, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { RunnerExistsError } from '../../runtime/runners/dispatch';
import { GitHubAppRunners, GitHubAppSecretError, parseAppSecret } from '../../runtime/runners/github-app';

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
  jobStatus = 'queued';
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
      const runners = this.runners.filter((r) => r.name === name);
      return send(200, { total_count: runners.length, runners });
    }
    if ((m = path.match(/^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/)) && req.method === 'DELETE') {
      this.runners = this.runners.filter((r) => r.id !== Number(m?.[2]));
      return send(204);
    }
    if ((m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/actions\/jobs\/(\d+)$/)) && req.method === 'GET')
      return send(200, { id: Number(m[3]), status: this.jobStatus });
    return send(404, { message: 'Not Found' });
  }

  calls(pattern: RegExp): Seen[] {
    return this.seen.filter((s) => pattern.test(`${s.method} ${s.path}`));
  }
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

function client(options: { secret?: () => Promise<string>; now?: () => number; base?: string } = {}) {
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
  });
  return { runners, reads: () => reads };
}

const jit = {
  organization: 'acme',
  runnerName: 'eu-central-1-42-0',
  labels: ['self-hosted', 'linux'],
  runnerGroupId: 1,
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
      ['waiting', 'unknown'],
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
    ['throttling (429)', 'acme', 429, RetryableError, 'github-unavailable'],
  ] as const)('maps %s', async (_, organization, status, type, code) => {
    if (status) github.override = (s) => (s.path.endsWith('generate-jitconfig') ? { status } : undefined);
    const { runners } = client();
    const error = await failureOf(runners.jitConfig({ ...jit, organization }));
    expect(error).toBeInstanceOf(type);
    expect((error as PermanentError).code).toBe(code);
    expect(error.message).not.toContain(organization);
  });

  it('treats a 403 rate limit as transient', async () => {
    github.override = (s) =>
      s.path.endsWith('generate-jitconfig')
        ? { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '9999999999' } }
        : undefined;
    const error = await failureOf(client().runners.jitConfig(jit));
    expect(error).toBeInstanceOf(RetryableError);
  });

  it('treats no answer at all as transient', async () => {
    await github.stop();
    const error = await failureOf(client().runners.jitConfig(jit));
    expect(error).toBeInstanceOf(RetryableError);
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
