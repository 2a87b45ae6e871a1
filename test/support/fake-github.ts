import { createPublicKey, generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * A GitHub REST API that plays a GitHub App's side of the runner dispatcher (runtime/runners/github-app.ts)
 * on a loopback port, in the test's process: the dispatcher bundle reaches it through GITHUB_API_URL, over
 * real HTTP with its own @octokit/request and @octokit/auth-app. No network, no real GitHub.
 *
 * - `GET /orgs/{org}/installation` and `POST /app/installations/{id}/access_tokens` take the App's JWT:
 *   its RS256 signature is verified against the public key of the App's key pair (generated here), its
 *   issuer must be the App id and it must not have expired. A JWT failing one of these is answered 401, as
 *   GitHub does, and counted.
 * - `POST /orgs/{org}/actions/runners/generate-jitconfig` and `GET /repos/{owner}/{repo}/actions/jobs/{id}`
 *   take an installation token this server issued for the organisation (else 401).
 * - So do the runner registrations and groups: `GET /orgs/{org}/actions/runner-groups` (paged; every
 *   organisation has `Default`, id 1, plus the groups of `runnerGroups` or `addRunnerGroup`), a group's
 *   `visibility` and repositories (`GET /orgs/{org}/actions/runner-groups/{id}` and `.../repositories`,
 *   paged; set by `setGroupAccess`, else `all`),
 *   `GET /orgs/{org}/actions/runners` (paged, or by `name`) and `DELETE /orgs/{org}/actions/runners/{id}`
 *   (422 for a busy runner, 404 for none). A generated JIT config registers its runner, offline and idle;
 *   `runners` lets a test bring one online or make it busy.
 *
 * Every request is recorded (method, path, the kind of credentials, the JSON body), and every credential
 * and JIT config it handed out is kept, so a test can look for them where they must never appear.
 */

/** One request as the server saw it. */
export interface GitHubCall {
  readonly method: string;
  readonly path: string;
  /** `jwt` (the App's, verified), `token` (an installation token of this server) or `none`. */
  readonly credentials: 'jwt' | 'token' | 'none';
  readonly body: unknown;
  readonly status: number;
}

/** What a generate-jitconfig request asked for, and what it was given. */
export interface JitIssue {
  readonly organization: string;
  readonly name: string;
  readonly labels: readonly string[];
  readonly runnerGroupId: number;
  readonly encodedJitConfig: string;
}

export interface FakeGitHubOptions {
  /** The App's id (the JWT's issuer). */
  readonly appId: number;
  /** Organisation login (lower-cased) -> installation id: the App is installed there only. */
  readonly installations: Readonly<Record<string, number>>;
  /** Epoch ms (the JWT's expiry is judged by it). Default: Date.now. */
  readonly now?: () => number;
  /** Organisation -> runner group names it has besides `Default` (ids from 2, in order). */
  readonly runnerGroups?: Readonly<Record<string, readonly string[]>>;
}

/** A self-hosted runner registered at the fake, as GitHub lists it. */
export interface FakeRunner {
  readonly id: number;
  readonly name: string;
  status: 'online' | 'offline';
  busy: boolean;
}

/** A page of a list as GitHub pages it (`per_page` default 30, at most 100; `page` from 1). */
function paged<T>(items: readonly T[], search: URLSearchParams): T[] {
  const perPage = Math.min(100, Math.max(1, Number(search.get('per_page') ?? 30) || 30));
  const page = Math.max(1, Number(search.get('page') ?? 1) || 1);
  return items.slice((page - 1) * perPage, page * perPage);
}

const json = (response: ServerResponse, status: number, body: unknown): number => {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
  return status;
};

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const own = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

export class FakeGitHub {
  /** PKCS#1 PEM, as GitHub hands out an App's private key. */
  readonly privateKeyPem: string;
  readonly calls: GitHubCall[] = [];
  readonly jitConfigs: JitIssue[] = [];
  /** Installation tokens issued, by organisation. */
  readonly tokens = new Map<string, string[]>();
  /** Every JWT presented, verified or not. */
  readonly jwts: string[] = [];
  /** JWTs refused (bad signature, issuer or expiry). */
  refusedJwts = 0;
  /** What `GET .../actions/jobs/{id}` answers per job id (default `queued`). */
  readonly jobStatuses = new Map<number, string>();
  /** Registered runners by organisation (lower-cased). */
  readonly runners = new Map<string, FakeRunner[]>();
  /** Runner groups by organisation (lower-cased), besides `Default` (id 1). */
  readonly runnerGroups = new Map<string, { readonly id: number; readonly name: string }[]>();
  private nextGroupId = 2;
  private readonly publicKey: KeyObject;
  private readonly server: Server;
  private readonly now: () => number;
  private nextRunnerId = 1;

  private constructor(
    private readonly options: FakeGitHubOptions,
    readonly url: string,
    server: Server,
    privateKeyPem: string,
  ) {
    this.server = server;
    this.privateKeyPem = privateKeyPem;
    this.publicKey = createPublicKey(privateKeyPem);
    this.now = options.now ?? (() => Date.now());
    for (const [organization, names] of Object.entries(options.runnerGroups ?? {}))
      for (const name of names) this.addRunnerGroup(organization, name);
  }

  /** Creates a runner group in the organisation; its id. */
  addRunnerGroup(organization: string, name: string): number {
    const key = organization.toLowerCase();
    const id = this.nextGroupId++;
    this.runnerGroups.set(key, [...(this.runnerGroups.get(key) ?? []), { id, name }]);
    return id;
  }

  /**
   * Who may use a runner group (by its id): GET /orgs/{org}/actions/runner-groups/{id} answers its
   * `visibility`, .../repositories (paged) its repositories by full name. A group not set here is `all`
   * (GitHub's default for a new group), `Default` included.
   */
  readonly groupAccess = new Map<number, { visibility: string; repositories: string[] }>();

  /** Restricts the group of that name to the repositories given (`owner/name`), or opens it. */
  setGroupAccess(
    organization: string,
    name: string,
    visibility: 'selected' | 'all' | 'private',
    repositories: readonly string[] = [],
  ): void {
    const id =
      name === 'Default'
        ? 1
        : this.runnerGroups.get(organization.toLowerCase())?.find((g) => g.name === name)?.id;
    if (id === undefined) throw new Error(`no runner group ${name} in ${organization}`);
    this.groupAccess.set(id, { visibility, repositories: [...repositories] });
  }

  /** Every runner registered in the organisation. */
  runnersOf(organization: string): FakeRunner[] {
    return this.runners.get(organization.toLowerCase()) ?? [];
  }

  static async start(options: FakeGitHubOptions): Promise<FakeGitHub> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const started: { fake?: FakeGitHub } = {};
    const server = createServer((request, response) => {
      void started.fake
        ?.handle(request, response)
        .catch(() => json(response, 500, { message: 'fake failed' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    started.fake = new FakeGitHub(options, `http://127.0.0.1:${port}`, server, pem);
    return started.fake;
  }

  /** The App's secret as the estate stores it in Secrets Manager. */
  appSecret(): string {
    return JSON.stringify({ appId: String(this.options.appId), privateKey: this.privateKeyPem });
  }

  /** Values that must never reach a log line or an answer: the key, every credential and JIT config. */
  secrets(): string[] {
    const keyBody = this.privateKeyPem.split('\n').slice(1, -2).join('');
    return [
      keyBody.slice(40, 104),
      ...this.jwts,
      ...[...this.tokens.values()].flat(),
      ...this.jitConfigs.map((issue) => issue.encodedJitConfig),
    ];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The JWT of an `authorization: bearer <jwt>` header, verified: RS256 by the App's key, its issuer, live. */
  private verifiedJwt(authorization: string | undefined): boolean {
    const match = /^bearer (\S+)$/i.exec(authorization ?? '');
    if (!match) return false;
    const jwt = match[1] as string;
    this.jwts.push(jwt);
    const [header, payload, signature] = jwt.split('.');
    if (header === undefined || payload === undefined || signature === undefined) return false;
    const signed = verify(
      'RSA-SHA256',
      Buffer.from(`${header}.${payload}`),
      this.publicKey,
      Buffer.from(signature, 'base64url'),
    );
    let claims: unknown;
    let alg: unknown;
    try {
      alg = own(JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown, 'alg');
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
    } catch {
      return false;
    }
    const exp = own(claims, 'exp');
    const iat = own(claims, 'iat');
    const nowSec = Math.floor(this.now() / 1000);
    return (
      signed &&
      alg === 'RS256' &&
      String(own(claims, 'iss')) === String(this.options.appId) &&
      typeof exp === 'number' &&
      typeof iat === 'number' &&
      exp > nowSec &&
      exp - iat <= 660
    );
  }

  /** The organisation an `authorization: token <t>` header's token was issued for. */
  private tokenOrganization(authorization: string | undefined): string | undefined {
    const match = /^token (\S+)$/i.exec(authorization ?? '');
    if (!match) return undefined;
    return [...this.tokens].find(([, issued]) => issued.includes(match[1] as string))?.[0];
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', this.url);
    const path = url.pathname;
    const search = url.searchParams;
    const body = await readBody(request);
    const authorization = request.headers.authorization;
    const record = (credentials: GitHubCall['credentials'], status: number) =>
      this.calls.push({ method, path, credentials, body, status });
    const appCall = (answer: () => number) => {
      if (!this.verifiedJwt(authorization)) {
        this.refusedJwts += 1;
        return record('none', json(response, 401, { message: 'A JSON web token could not be decoded' }));
      }
      return record('jwt', answer());
    };
    const installationCall = (organization: string, answer: () => number) => {
      if (this.tokenOrganization(authorization) !== organization)
        return record('none', json(response, 401, { message: 'Bad credentials' }));
      return record('token', answer());
    };

    let match = /^\/orgs\/([^/]+)\/installation$/.exec(path);
    if (method === 'GET' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      return void appCall(() => {
        const id = this.options.installations[organization];
        return id === undefined
          ? json(response, 404, { message: 'Not Found' })
          : json(response, 200, { id, app_id: this.options.appId, account: { login: organization } });
      });
    }
    match = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path);
    if (method === 'POST' && match) {
      const id = Number(match[1]);
      return void appCall(() => {
        const organization = Object.entries(this.options.installations).find(([, i]) => i === id)?.[0];
        if (organization === undefined) return json(response, 404, { message: 'Not Found' });
        const token = `ghs_${randomBytes(18).toString('base64url')}`;
        this.tokens.set(organization, [...(this.tokens.get(organization) ?? []), token]);
        return json(response, 201, {
          token,
          expires_at: new Date(this.now() + 3_600_000).toISOString(),
          permissions: { organization_self_hosted_runners: 'write', actions: 'read' },
          repository_selection: 'all',
        });
      });
    }
    match = /^\/orgs\/([^/]+)\/actions\/runners\/generate-jitconfig$/.exec(path);
    if (method === 'POST' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      return void installationCall(organization, () => {
        const name = own(body, 'name');
        const labels = own(body, 'labels');
        const group = own(body, 'runner_group_id');
        if (typeof name !== 'string' || !Array.isArray(labels) || typeof group !== 'number')
          return json(response, 422, { message: 'Invalid request.' });
        const id = this.nextRunnerId++;
        const encodedJitConfig = Buffer.from(
          JSON.stringify({ '.runner': randomBytes(24).toString('base64'), name, id }),
        ).toString('base64');
        this.jitConfigs.push({
          organization,
          name,
          labels: labels.map(String),
          runnerGroupId: group,
          encodedJitConfig,
        });
        this.runners.set(organization, [
          ...this.runnersOf(organization),
          { id, name, status: 'offline', busy: false },
        ]);
        return json(response, 201, {
          runner: { id, name, os: 'unknown', status: 'offline', busy: false, labels },
          encoded_jit_config: encodedJitConfig,
        });
      });
    }
    match = /^\/orgs\/([^/]+)\/actions\/runner-groups$/.exec(path);
    if (method === 'GET' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      return void installationCall(organization, () => {
        const groups = [{ id: 1, name: 'Default' }, ...(this.runnerGroups.get(organization) ?? [])];
        return json(response, 200, { total_count: groups.length, runner_groups: paged(groups, search) });
      });
    }
    match = /^\/orgs\/([^/]+)\/actions\/runner-groups\/(\d+)(\/repositories)?$/.exec(path);
    if (method === 'GET' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      const id = Number(match[2]);
      const listing = match[3] !== undefined;
      return void installationCall(organization, () => {
        const group =
          id === 1
            ? { id: 1, name: 'Default' }
            : (this.runnerGroups.get(organization) ?? []).find((g) => g.id === id);
        if (!group) return json(response, 404, { message: 'Not Found' });
        const access = this.groupAccess.get(id) ?? { visibility: 'all', repositories: [] };
        if (!listing)
          return json(response, 200, {
            ...group,
            visibility: access.visibility,
            default: id === 1,
            allows_public_repositories: false,
          });
        const repositories = access.repositories.map((fullName, index) => ({
          id: 1_000 + index,
          name: fullName.split('/')[1] ?? fullName,
          full_name: fullName,
        }));
        return json(response, 200, {
          total_count: repositories.length,
          repositories: paged(repositories, search),
        });
      });
    }
    match = /^\/orgs\/([^/]+)\/actions\/runners$/.exec(path);
    if (method === 'GET' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      return void installationCall(organization, () => {
        const name = search.get('name');
        const all = this.runnersOf(organization).filter((r) => name === null || r.name === name);
        return json(response, 200, { total_count: all.length, runners: paged(all, search) });
      });
    }
    match = /^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/.exec(path);
    if (method === 'DELETE' && match) {
      const organization = decodeURIComponent(match[1] as string).toLowerCase();
      const id = Number(match[2]);
      return void installationCall(organization, () => {
        const runners = this.runnersOf(organization);
        const runner = runners.find((r) => r.id === id);
        if (!runner) return json(response, 404, { message: 'Not Found' });
        if (runner.busy)
          return json(response, 422, {
            message: `Bad request - Runner "${runner.name}" is still running a job"`,
          });
        this.runners.set(
          organization,
          runners.filter((r) => r !== runner),
        );
        response.writeHead(204);
        response.end();
        return 204;
      });
    }
    match = /^\/repos\/([^/]+)\/([^/]+)\/actions\/jobs\/(\d+)$/.exec(path);
    if (method === 'GET' && match) {
      const owner = decodeURIComponent(match[1] as string).toLowerCase();
      const jobId = Number(match[3]);
      return void installationCall(owner, () =>
        json(response, 200, { id: jobId, status: this.jobStatuses.get(jobId) ?? 'queued' }),
      );
    }
    record('none', json(response, 404, { message: 'Not Found' }));
  }
}
