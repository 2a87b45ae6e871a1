import { createAppAuth } from '@octokit/auth-app';
import { request as octokitRequest } from '@octokit/request';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PermanentError, RetryableError } from '../lib/failures';
import { describeError } from '../lib/redact';
import { RunnerExistsError, type GitHubJobStatus, type GitHubRunners, type JitRequest } from './dispatch';

/**
 * GitHubRunners over a GitHub App: the App's id and private key come from a Secrets Manager secret
 * (`{"appId": "123", "privateKey": "-----BEGIN ..."}`, cached for `secretCacheMs`, re-read at once after
 * GitHub refuses the App's credentials: a rotated key is picked up without waiting), an installation token
 * per organisation (GET /orgs/{org}/installation, then the App's access-token exchange through
 * `@octokit/auth-app`), cached until `tokenMarginMs` before it expires.
 *
 * - `jitConfig`: POST /orgs/{org}/actions/runners/generate-jitconfig. A name already registered (409) is
 *   a runner of an earlier delivery of the same job: one that never came online is deleted and the config
 *   generated again; one online is reported as `RunnerExistsError`.
 * - `jobStatus`: GET /repos/{owner}/{repo}/actions/jobs/{job_id}.
 *
 * Failures: 401, 403 (other than a rate limit), 404, 422 and other 4xx are permanent, with a reason naming
 * the call and the status, never a value; 429, a 403 rate limit, 5xx and no answer are transient. The
 * private key, the JWT, tokens and JIT configs are never logged or put in an error.
 */

export interface GitHubAppOptions {
  /** The secret's JSON text. */
  readonly loadSecret: () => Promise<string>;
  /** GitHub's REST API root (GitHub Enterprise Server: `https://<host>/api/v3`). */
  readonly baseUrl?: string;
  readonly now?: () => number;
  /** Default: 10 minutes. */
  readonly secretCacheMs?: number;
  /** A token is renewed this long before it expires. Default: 5 minutes. */
  readonly tokenMarginMs?: number;
  /** Per request. Default: 10 s. */
  readonly timeoutMs?: number;
  /** For tests: the fetch implementation. */
  readonly fetch?: typeof fetch;
}

interface AppCredentials {
  readonly appId: string;
  readonly privateKey: string;
}

type AppAuth = ReturnType<typeof createAppAuth>;

interface App {
  readonly auth: AppAuth;
  readonly loadedAt: number;
}

interface Token {
  readonly token: string;
  readonly expiresAt: number;
}

/** A secret that is not the App's credentials: names the field, never a value. */
export class GitHubAppSecretError extends PermanentError {
  constructor(field: string, rule: string) {
    super('github-app-secret', `${field}: ${rule}`);
    this.name = 'GitHubAppSecretError';
  }
}

export function parseAppSecret(text: string): AppCredentials {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new GitHubAppSecretError('secret', 'expected JSON with appId and privateKey');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new GitHubAppSecretError('secret', 'expected a JSON object with appId and privateKey');
  const own = (key: string): unknown =>
    Object.prototype.hasOwnProperty.call(value, key) ? (value as Record<string, unknown>)[key] : undefined;
  const appId = own('appId');
  const id = typeof appId === 'number' ? String(appId) : appId;
  if (typeof id !== 'string' || !/^[1-9]\d{0,15}$/.test(id))
    throw new GitHubAppSecretError('appId', 'expected the App id, a positive whole number');
  const privateKey = own('privateKey');
  if (
    typeof privateKey !== 'string' ||
    !/^-----BEGIN (RSA )?PRIVATE KEY-----/.test(privateKey.trim()) ||
    privateKey.length > 16_384
  )
    throw new GitHubAppSecretError('privateKey', 'expected a private key in PEM form');
  return { appId: id, privateKey };
}

/** The secret's text from Secrets Manager. */
export function secretFromSecretsManager(
  client: SecretsManagerClient,
  secretId: string,
): () => Promise<string> {
  return async () => {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (SecretString === undefined)
      throw new GitHubAppSecretError('secret', 'expected a string secret (SecretString)');
    return SecretString;
  };
}

/** What may be said of a failed call: permanent or transient, with the call's name and the status. */
export function githubFailure(call: string, error: unknown): Error {
  if (error instanceof PermanentError || error instanceof RetryableError) return error;
  const status = statusOf(error);
  if (status === undefined || status === 0)
    return new RetryableError('github-unreachable', `${call}: no answer from GitHub`);
  if (status === 429 || status >= 500 || (status === 403 && rateLimited(error)))
    return new RetryableError('github-unavailable', `${call}: GitHub answered ${status}`);
  const hint =
    status === 401
      ? ' (the App credentials were refused)'
      : status === 403
        ? ' (the App lacks a permission)'
        : status === 404
          ? ' (the App is not installed there, or it does not exist)'
          : status === 422
            ? ' (GitHub refused the request)'
            : '';
  return new PermanentError(`github-${status}`, `${call}: GitHub answered ${status}${hint}`);
}

function statusOf(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' ? status : undefined;
}

function rateLimited(error: unknown): boolean {
  const headers = (error as { response?: { headers?: Record<string, unknown> } }).response?.headers ?? {};
  return headers['x-ratelimit-remaining'] === '0' || headers['retry-after'] !== undefined;
}

const JOB_STATUSES: ReadonlySet<string> = new Set(['queued', 'in_progress', 'completed']);

export class GitHubAppRunners implements GitHubRunners {
  private app: App | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly request: typeof octokitRequest;
  private readonly now: () => number;

  constructor(private readonly options: GitHubAppOptions) {
    this.now = options.now ?? Date.now;
    this.request = octokitRequest.defaults({
      baseUrl: (options.baseUrl ?? 'https://api.github.com').replace(/\/+$/, ''),
      headers: { 'user-agent': 'estate-runner-dispatcher', 'x-github-api-version': '2022-11-28' },
      ...(options.fetch ? { request: { fetch: options.fetch } } : {}),
    });
  }

  async jitConfig(request: JitRequest): Promise<string> {
    const call = 'generate-jitconfig';
    const generate = async () =>
      this.asInstallation(request.organization, call, (token) =>
        this.request('POST /orgs/{org}/actions/runners/generate-jitconfig', {
          org: request.organization,
          name: request.runnerName,
          runner_group_id: request.runnerGroupId,
          labels: [...request.labels],
          work_folder: '_work',
          headers: { authorization: `token ${token}` },
          request: { signal: this.signal() },
        }),
      );
    let response: Awaited<ReturnType<typeof generate>>;
    try {
      response = await generate();
    } catch (error) {
      // 409: the name is taken (an earlier delivery of this job registered it).
      if (!(error instanceof PermanentError) || error.code !== 'github-409') throw error;
      await this.removeStaleRunner(request.organization, request.runnerName);
      response = await generate();
    }
    const encoded = (response.data as { encoded_jit_config?: unknown }).encoded_jit_config;
    if (typeof encoded !== 'string' || encoded.length === 0 || encoded.length > 32_768)
      throw new RetryableError(
        'github-jitconfig-answer',
        `${call}: expected encoded_jit_config in the answer`,
      );
    return encoded;
  }

  async jobStatus(repository: string, jobId: number): Promise<GitHubJobStatus> {
    const [owner, repo] = repository.split('/');
    if (!owner || !repo) throw new PermanentError('repository', 'repository: expected owner/name');
    const { data } = await this.asInstallation(owner, 'get-job', (token) =>
      this.request('GET /repos/{owner}/{repo}/actions/jobs/{job_id}', {
        owner,
        repo,
        job_id: jobId,
        headers: { authorization: `token ${token}` },
        request: { signal: this.signal() },
      }),
    );
    const status = (data as { status?: unknown }).status;
    return typeof status === 'string' && JOB_STATUSES.has(status) ? (status as GitHubJobStatus) : 'unknown';
  }

  /** A runner of this name from an earlier delivery: deleted if it never came online, else reported. */
  private async removeStaleRunner(organization: string, runnerName: string): Promise<void> {
    const { data } = await this.asInstallation(organization, 'list-runners', (token) =>
      this.request('GET /orgs/{org}/actions/runners', {
        org: organization,
        name: runnerName,
        headers: { authorization: `token ${token}` },
        request: { signal: this.signal() },
      }),
    );
    const runners = (data as { runners?: unknown }).runners;
    const found = Array.isArray(runners)
      ? (runners as { id?: unknown; name?: unknown; status?: unknown; busy?: unknown }[]).find(
          (r) => r.name === runnerName,
        )
      : undefined;
    if (!found || typeof found.id !== 'number')
      throw new RetryableError(
        'github-runner-name',
        'generate-jitconfig: the runner name is taken, but no runner of it is listed',
      );
    if (found.status !== 'offline' || found.busy === true) throw new RunnerExistsError();
    const runnerId = found.id;
    await this.asInstallation(organization, 'delete-runner', (token) =>
      this.request('DELETE /orgs/{org}/actions/runners/{runner_id}', {
        org: organization,
        runner_id: runnerId,
        headers: { authorization: `token ${token}` },
        request: { signal: this.signal() },
      }),
    );
  }

  /**
   * Calls GitHub with the organisation's installation token, mapping failures. Refused credentials drop
   * the cached secret and token, and a call made with cached ones is tried once more with fresh ones.
   */
  private async asInstallation<T>(
    organization: string,
    call: string,
    fn: (token: string) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const cached = this.app !== undefined || this.tokens.has(organization);
      try {
        return await fn(await this.installationToken(organization));
      } catch (error) {
        if (error instanceof PermanentError || error instanceof RetryableError) throw error;
        if (statusOf(error) === 401) {
          this.app = undefined;
          this.tokens.delete(organization);
          if (cached && attempt === 1) continue;
        }
        throw githubFailure(call, error);
      }
    }
  }

  private async installationToken(organization: string): Promise<string> {
    const now = this.now();
    const cached = this.tokens.get(organization);
    if (cached && cached.expiresAt - (this.options.tokenMarginMs ?? 300_000) > now) return cached.token;
    const app = await this.appAuth(now);
    const { token: jwt } = await app.auth({ type: 'app' });
    const { data } = await this.request('GET /orgs/{org}/installation', {
      org: organization,
      headers: { authorization: `bearer ${jwt}` },
      request: { signal: this.signal() },
    });
    const installationId = (data as { id?: unknown }).id;
    if (typeof installationId !== 'number')
      throw new RetryableError('github-installation-answer', 'get-installation: expected an installation id');
    // This cache decides when a token is renewed: the library's own is bypassed.
    const auth = await app.auth({ type: 'installation', installationId, refresh: true });
    const expiresAt = Date.parse(auth.expiresAt);
    this.tokens.set(organization, {
      token: auth.token,
      expiresAt: Number.isFinite(expiresAt) ? expiresAt : now + 3_600_000,
    });
    return auth.token;
  }

  private async appAuth(now: number): Promise<App> {
    if (
      this.app &&
      now - this.app.loadedAt < (this.options.secretCacheMs ?? 600_000) &&
      now >= this.app.loadedAt
    )
      return this.app;
    let text: string;
    try {
      text = await this.options.loadSecret();
    } catch (error) {
      if (error instanceof PermanentError) throw error;
      throw new RetryableError(
        'github-app-secret-unavailable',
        `the App secret could not be read: ${describeError(error)}`,
      );
    }
    const { appId, privateKey } = parseAppSecret(text);
    this.app = {
      auth: createAppAuth({ appId, privateKey, request: this.request, log: { warn: () => undefined } }),
      loadedAt: now,
    };
    return this.app;
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.options.timeoutMs ?? 10_000);
  }
}
