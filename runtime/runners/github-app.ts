import { createPrivateKey, sign } from 'node:crypto';
import { createAppAuth } from '@octokit/auth-app';
import { request as octokitRequest } from '@octokit/request';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PermanentError, RetryableError } from '../lib/failures';
import { boundedText, describeError } from '../lib/redact';
import { DEFAULT_RUNNER_GROUP } from './config';
import { RunnerExistsError, type GitHubJobStatus, type GitHubRunners, type JitRequest } from './dispatch';
import type { RegisteredRunner, ReaperGitHub, RunnerDeletion } from './reaper';

/**
 * GitHubRunners (the dispatcher's port) and ReaperGitHub (the reaper's) over a GitHub App: the App's id and
 * private key come from a Secrets Manager secret (`{"appId": "123", "privateKey": "-----BEGIN ..."}`, the
 * key checked to be an RSA key that signs when the secret is read, cached for `secretCacheMs`, re-read at
 * once after GitHub refuses the App's credentials: a rotated key is picked up without waiting), an
 * installation token per organisation (GET /orgs/{org}/installation, then the App's access-token exchange
 * through `@octokit/auth-app`), cached until `tokenMarginMs` before it expires.
 *
 * - `jitConfig`: the runner group's id by its name (`Default` is 1 without a call; every other from
 *   GET /orgs/{org}/actions/runner-groups, every page, cached per organisation for `groupCacheMs`, listed
 *   again when a name is missing from a listing older than a minute), then
 *   POST /orgs/{org}/actions/runners/generate-jitconfig. A group the organisation does not have is
 *   permanent, naming the group. A name already registered (409) is a runner of an earlier delivery of the
 *   same job: one that never came online is deleted and the config generated again; one online is
 *   reported as `RunnerExistsError`.
 * - `jobStatus`: GET /repos/{owner}/{repo}/actions/jobs/{job_id}; GitHub's `waiting`, `pending` and
 *   `requested` (a deployment environment's reviewers or wait timer holding the job) are `waiting`.
 * - `repositoryAllowed`: for a runner group other than `Default`, its `visibility` from
 *   GET /orgs/{org}/actions/runner-groups/{id} and, for `selected`, its repositories from
 *   GET /orgs/{org}/actions/runner-groups/{id}/repositories (every page, at most `maxRunnerPages`), cached
 *   per group for `groupCacheMs` and read again when a repository is missing from a listing older than a
 *   minute. A group open to every repository (`all`) or to every private one (`private`) is refused
 *   (`RunnerGroupOpenError`, permanent): the group exists to keep its runners to trusted repositories.
 * - `listRunners`: GET /orgs/{org}/actions/runners, every page (at most `maxRunnerPages` of 100: more is a
 *   transient failure, never a partial list a reaper would take for "absent"), the names starting with the
 *   prefix kept.
 * - `deleteRunner`: DELETE /orgs/{org}/actions/runners/{id}; GitHub's 422 (the runner is running a job) is
 *   `busy` and its 404 `absent`, neither an error.
 *
 * Failures: 401, 403 (other than a rate limit), 404, 422 and other 4xx are permanent, with a reason naming
 * the call and the status, never a value; a rate limit (429, or a 403 with `x-ratelimit-remaining: 0`, a
 * `retry-after` header or a message saying so) is a `GitHubRateLimitError` (transient) carrying how long to
 * wait; 5xx and no answer are transient. The private key, the JWT, tokens and JIT configs are never logged
 * or put in an error.
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
  /** How long an organisation's runner groups are kept. Default: 10 minutes. */
  readonly groupCacheMs?: number;
  /** Pages of 100 runners `listRunners` reads at most. Default: 100 (10,000 runners). */
  readonly maxRunnerPages?: number;
  /** Per request. Default: 10 s. */
  readonly timeoutMs?: number;
  /** The `user-agent` of every request. Default: `estate-runner-dispatcher`. */
  readonly userAgent?: string;
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

interface RunnerGroups {
  /** Name -> id, as GitHub spells the name. */
  readonly ids: ReadonlyMap<string, number>;
  readonly loadedAt: number;
  /** More groups exist than were read. */
  readonly truncated: boolean;
}

/** A secret that is not the App's credentials: names the field, never a value. */
export class GitHubAppSecretError extends PermanentError {
  constructor(field: string, rule: string) {
    super('github-app-secret', `${field}: ${rule}`);
    this.name = 'GitHubAppSecretError';
  }
}

/** GitHub's rate limit (primary or secondary): transient, with how long GitHub asks callers to wait. */
export class GitHubRateLimitError extends RetryableError {
  constructor(
    call: string,
    readonly status: number,
    /** Seconds to wait before calling again (from `retry-after`, `x-ratelimit-reset`, else 60). */
    readonly retryAfterSec: number,
  ) {
    super(
      'github-rate-limited',
      `${call}: GitHub answered ${status} (rate limited; retry after ${retryAfterSec} s)`,
    );
    this.name = 'GitHubRateLimitError';
  }
}

/** What a non-Default runner group admits, as last read. */
interface GroupAccess {
  readonly visibility: string;
  /** `owner/name`, lower-cased; empty unless `selected`. */
  readonly repositories: ReadonlySet<string>;
  readonly loadedAt: number;
}

/** A non-Default runner group open to every repository (or every private one) of the organisation. */
export class RunnerGroupOpenError extends PermanentError {
  constructor(group: string, visibility: string) {
    super(
      'runner-group-open',
      `runnerGroup: the organisation's runner group ${JSON.stringify(boundedText(group, 100))} admits ${
        visibility === 'private' ? 'every private repository' : 'every repository'
      }; restrict it to selected repositories (the trusted ones) in the organisation's Actions runner groups`,
    );
    this.name = 'RunnerGroupOpenError';
  }
}

/** An organisation's runner group that the configuration names and GitHub does not know. */
export class RunnerGroupMissingError extends PermanentError {
  constructor(group: string, truncated: boolean) {
    super(
      'runner-group-missing',
      `runnerGroup: the organisation has no runner group named ${JSON.stringify(boundedText(group, 100))}${
        truncated ? ' among the first groups listed' : ''
      }; create it in the organisation's Actions runner groups, restricted to the trusted repositories`,
    );
    this.name = 'RunnerGroupMissingError';
  }
}

const PEM_KEY = /^-----BEGIN (RSA )?PRIVATE KEY-----/;

/**
 * The key must be one node can read (PEM, PKCS#1 or PKCS#8, not encrypted), RSA (GitHub signs App JWTs
 * with RS256) and able to sign: a corrupt key is named here, not found later as a failed JWT.
 */
function checkPrivateKey(privateKey: string): void {
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey({ key: privateKey, format: 'pem' });
  } catch {
    throw new GitHubAppSecretError(
      'privateKey',
      'expected a readable, unencrypted private key in PEM form (line breaks as newlines, not as \\n)',
    );
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new GitHubAppSecretError('privateKey', "expected the App's RSA private key");
  try {
    sign('RSA-SHA256', Buffer.from('estate-github-app-key-check'), key);
  } catch {
    throw new GitHubAppSecretError('privateKey', 'expected a private key that signs (RS256)');
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
  if (typeof privateKey !== 'string' || !PEM_KEY.test(privateKey.trim()) || privateKey.length > 16_384)
    throw new GitHubAppSecretError('privateKey', 'expected a private key in PEM form');
  checkPrivateKey(privateKey);
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
export function githubFailure(call: string, error: unknown, now: number = Date.now()): Error {
  if (error instanceof PermanentError || error instanceof RetryableError) return error;
  const status = statusOf(error);
  // @octokit/request gives a failed fetch or a timeout status 500, without an answer.
  const answered = (error as { response?: unknown }).response !== undefined;
  if (status === undefined || status === 0 || !answered)
    return new RetryableError('github-unreachable', `${call}: no answer from GitHub`);
  const limited = rateLimitOf(error, status, now);
  if (limited !== undefined) return new GitHubRateLimitError(call, status, limited);
  if (status >= 500) return new RetryableError('github-unavailable', `${call}: GitHub answered ${status}`);
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

/** A header of a failed call's answer (fetch gives them lower-cased), read as an own property. */
function headerOf(error: unknown, name: string): string | undefined {
  const headers = (error as { response?: { headers?: unknown } }).response?.headers;
  if (typeof headers !== 'object' || headers === null || !Object.prototype.hasOwnProperty.call(headers, name))
    return undefined;
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === 'string' || typeof value === 'number' ? String(value).trim() : undefined;
}

/** The text of a failed call's answer: its `message` and `documentation_url`, or the text itself. */
function answerTextOf(error: unknown): string {
  const data = (error as { response?: { data?: unknown } }).response?.data;
  if (typeof data === 'string') return data.slice(0, 2_000);
  if (typeof data !== 'object' || data === null) return '';
  const field = (key: string): string => {
    const value = Object.prototype.hasOwnProperty.call(data, key)
      ? (data as Record<string, unknown>)[key]
      : undefined;
    return typeof value === 'string' ? value.slice(0, 1_000) : '';
  };
  return `${field('message')} ${field('documentation_url')}`;
}

const RATE_LIMIT_TEXT = /rate[ -]?limit|abuse detection/i;
/** GitHub's advice for a secondary rate limit without a header: wait at least a minute. */
const DEFAULT_RETRY_AFTER_SEC = 60;
const MAX_RETRY_AFTER_SEC = 3_600;

/**
 * Seconds to wait when the answer is a rate limit, else undefined. A 429 always is; a 403 is when
 * `x-ratelimit-remaining` is 0 (primary), or a `retry-after` header is present or the message says so
 * (secondary). As GitHub documents: `retry-after` first, then `x-ratelimit-reset` for a spent primary
 * limit, else a minute; bounded to 1 s - 1 h.
 */
export function rateLimitOf(error: unknown, status: number, now: number): number | undefined {
  if (status !== 403 && status !== 429) return undefined;
  const retryAfter = headerOf(error, 'retry-after');
  const primary = headerOf(error, 'x-ratelimit-remaining') === '0';
  if (status === 403 && !primary && retryAfter === undefined && !RATE_LIMIT_TEXT.test(answerTextOf(error)))
    return undefined;
  let seconds: number | undefined;
  if (retryAfter !== undefined) {
    // Seconds, or an HTTP date.
    const at = /^\d{1,10}$/.test(retryAfter) ? now + Number(retryAfter) * 1000 : Date.parse(retryAfter);
    if (Number.isFinite(at)) seconds = Math.ceil((at - now) / 1000);
  }
  if (seconds === undefined && primary) {
    const reset = headerOf(error, 'x-ratelimit-reset');
    if (reset !== undefined && /^\d{1,12}$/.test(reset)) seconds = Number(reset) - Math.floor(now / 1000);
  }
  return Math.min(MAX_RETRY_AFTER_SEC, Math.max(1, seconds ?? DEFAULT_RETRY_AFTER_SEC));
}

const JOB_STATUSES: ReadonlyMap<string, GitHubJobStatus> = new Map([
  ['queued', 'queued'],
  ['in_progress', 'in_progress'],
  ['completed', 'completed'],
  // Held by a deployment environment's protection rules (reviewers, a wait timer) until approved.
  ['waiting', 'waiting'],
  ['pending', 'waiting'],
  ['requested', 'waiting'],
]);
const PER_PAGE = 100;
const MAX_GROUP_PAGES = 10;
/** A group name missing from a listing at least this old lists the groups again (one created since). */
const GROUP_RELIST_MS = 60_000;

const ownField = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

const isId = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0;

export class GitHubAppRunners implements GitHubRunners, ReaperGitHub {
  private app: App | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly groups = new Map<string, RunnerGroups>();
  /** `<organisation>\n<group id>` -> what the group admits. */
  private readonly access = new Map<string, GroupAccess>();
  private readonly request: typeof octokitRequest;
  private readonly now: () => number;

  constructor(private readonly options: GitHubAppOptions) {
    this.now = options.now ?? Date.now;
    this.request = octokitRequest.defaults({
      baseUrl: (options.baseUrl ?? 'https://api.github.com').replace(/\/+$/, ''),
      headers: {
        'user-agent': options.userAgent ?? 'estate-runner-dispatcher',
        'x-github-api-version': '2022-11-28',
      },
      ...(options.fetch ? { request: { fetch: options.fetch } } : {}),
    });
  }

  async jitConfig(request: JitRequest): Promise<string> {
    const call = 'generate-jitconfig';
    const runnerGroupId = await this.runnerGroupId(request.organization, request.runnerGroup);
    const generate = async () =>
      this.asInstallation(request.organization, call, (token) =>
        this.request('POST /orgs/{org}/actions/runners/generate-jitconfig', {
          org: request.organization,
          name: request.runnerName,
          runner_group_id: runnerGroupId,
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
    return (typeof status === 'string' ? JOB_STATUSES.get(status) : undefined) ?? 'unknown';
  }

  /**
   * Whether the organisation's runner group of that name admits the repository (`owner/name`); `Default`
   * admits every one. A group open to every repository is a `RunnerGroupOpenError`.
   */
  async repositoryAllowed(organization: string, runnerGroup: string, repository: string): Promise<boolean> {
    if (runnerGroup === DEFAULT_RUNNER_GROUP) return true;
    const groupId = await this.runnerGroupId(organization, runnerGroup);
    const key = `${organization}\n${groupId}`;
    const wanted = repository.toLowerCase();
    const now = this.now();
    let access = this.access.get(key);
    const age = access ? now - access.loadedAt : Infinity;
    const fresh = age >= 0 && age < (this.options.groupCacheMs ?? 600_000);
    // Missing from a listing a minute old or more: a repository added to the group since is found.
    if (!access || !fresh || (!access.repositories.has(wanted) && age >= GROUP_RELIST_MS)) {
      access = await this.readGroupAccess(organization, groupId, now);
      this.access.set(key, access);
    }
    if (access.visibility !== 'selected') throw new RunnerGroupOpenError(runnerGroup, access.visibility);
    return access.repositories.has(wanted);
  }

  /**
   * The organisation's self-hosted runners whose name starts with `namePrefix`: every page is read, or the
   * call fails (a partial list would make a busy runner look absent).
   */
  async listRunners(organization: string, namePrefix: string): Promise<readonly RegisteredRunner[]> {
    const call = 'list-runners';
    const maxPages = this.options.maxRunnerPages ?? 100;
    const found = new Map<number, RegisteredRunner>();
    for (let page = 1; ; page++) {
      if (page > maxPages)
        throw new RetryableError(
          'github-runners-truncated',
          `${call}: the organisation lists more than ${maxPages * PER_PAGE} runners; not all could be read`,
        );
      const { data } = await this.asInstallation(organization, call, (token) =>
        this.request('GET /orgs/{org}/actions/runners', {
          org: organization,
          per_page: PER_PAGE,
          page,
          headers: { authorization: `token ${token}` },
          request: { signal: this.signal() },
        }),
      );
      const runners = ownField(data, 'runners');
      if (!Array.isArray(runners))
        throw new RetryableError('github-runners-answer', `${call}: expected runners in the answer`);
      for (const runner of runners as unknown[]) {
        const name = ownField(runner, 'name');
        if (typeof name !== 'string' || !name.startsWith(namePrefix)) continue;
        const id = ownField(runner, 'id');
        const busy = ownField(runner, 'busy');
        if (!isId(id) || typeof busy !== 'boolean')
          throw new RetryableError(
            'github-runners-answer',
            `${call}: expected an id and busy for every runner in the answer`,
          );
        found.set(id, {
          id,
          name,
          status: ownField(runner, 'status') === 'online' ? 'online' : 'offline',
          busy,
        });
      }
      const total = ownField(data, 'total_count');
      const seen = (page - 1) * PER_PAGE + runners.length;
      if (runners.length < PER_PAGE || (typeof total === 'number' && seen >= total)) break;
    }
    return [...found.values()];
  }

  /** Removes a runner's registration: `busy` when GitHub refuses because it runs a job (422). */
  async deleteRunner(organization: string, runnerId: number): Promise<RunnerDeletion> {
    if (!isId(runnerId)) throw new PermanentError('runner-id', 'runnerId: expected a positive whole number');
    return this.asInstallation(organization, 'delete-runner', async (token): Promise<RunnerDeletion> => {
      try {
        await this.request('DELETE /orgs/{org}/actions/runners/{runner_id}', {
          org: organization,
          runner_id: runnerId,
          headers: { authorization: `token ${token}` },
          request: { signal: this.signal() },
        });
        return 'deleted';
      } catch (error) {
        // Only this call's own answers: a failure to get the token is never taken for them.
        const status = statusOf(error);
        if (status === 422) return 'busy';
        if (status === 404) return 'absent';
        throw error;
      }
    });
  }

  /** The id of the organisation's runner group of that name (`Default` is 1). */
  private async runnerGroupId(organization: string, name: string): Promise<number> {
    if (name === DEFAULT_RUNNER_GROUP) return 1;
    const now = this.now();
    const maxAge = this.options.groupCacheMs ?? 600_000;
    let groups = this.groups.get(organization);
    const age = groups ? now - groups.loadedAt : Infinity;
    const fresh = age >= 0 && age < maxAge;
    const known = groups?.ids.get(name);
    if (fresh && known !== undefined) return known;
    // Missing from a listing a minute old or more: a group created since is found.
    if (!groups || !fresh || age >= GROUP_RELIST_MS) {
      groups = await this.listRunnerGroups(organization, now);
      this.groups.set(organization, groups);
    }
    const id = groups.ids.get(name);
    if (id === undefined) throw new RunnerGroupMissingError(name, groups.truncated);
    return id;
  }

  private async listRunnerGroups(organization: string, now: number): Promise<RunnerGroups> {
    const call = 'list-runner-groups';
    const ids = new Map<string, number>();
    for (let page = 1; page <= MAX_GROUP_PAGES; page++) {
      const { data } = await this.asInstallation(organization, call, (token) =>
        this.request('GET /orgs/{org}/actions/runner-groups', {
          org: organization,
          per_page: PER_PAGE,
          page,
          headers: { authorization: `token ${token}` },
          request: { signal: this.signal() },
        }),
      );
      const groups = ownField(data, 'runner_groups');
      if (!Array.isArray(groups))
        throw new RetryableError(
          'github-runner-groups-answer',
          `${call}: expected runner_groups in the answer`,
        );
      for (const group of groups as unknown[]) {
        const id = ownField(group, 'id');
        const name = ownField(group, 'name');
        if (isId(id) && typeof name === 'string' && !ids.has(name)) ids.set(name, id);
      }
      const total = ownField(data, 'total_count');
      const seen = (page - 1) * PER_PAGE + groups.length;
      if (groups.length < PER_PAGE || (typeof total === 'number' && seen >= total))
        return { ids, loadedAt: now, truncated: false };
    }
    return { ids, loadedAt: now, truncated: true };
  }

  private async readGroupAccess(organization: string, groupId: number, now: number): Promise<GroupAccess> {
    const { data: group } = await this.asInstallation(organization, 'get-runner-group', (token) =>
      this.request('GET /orgs/{org}/actions/runner-groups/{runner_group_id}', {
        org: organization,
        runner_group_id: groupId,
        headers: { authorization: `token ${token}` },
        request: { signal: this.signal() },
      }),
    );
    const visibility = ownField(group, 'visibility');
    if (typeof visibility !== 'string')
      throw new RetryableError(
        'github-runner-group-answer',
        'get-runner-group: expected visibility in the answer',
      );
    const repositories = new Set<string>();
    if (visibility !== 'selected') return { visibility, repositories, loadedAt: now };
    const call = 'list-runner-group-repositories';
    const maxPages = this.options.maxRunnerPages ?? 100;
    for (let page = 1; ; page++) {
      if (page > maxPages)
        throw new RetryableError(
          'github-runner-group-repositories-truncated',
          `${call}: the group lists more than ${maxPages * PER_PAGE} repositories; not all could be read`,
        );
      const { data } = await this.asInstallation(organization, call, (token) =>
        this.request('GET /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories', {
          org: organization,
          runner_group_id: groupId,
          per_page: PER_PAGE,
          page,
          headers: { authorization: `token ${token}` },
          request: { signal: this.signal() },
        }),
      );
      const listed = ownField(data, 'repositories');
      if (!Array.isArray(listed))
        throw new RetryableError(
          'github-runner-group-answer',
          `${call}: expected repositories in the answer`,
        );
      for (const repo of listed as unknown[]) {
        const fullName = ownField(repo, 'full_name');
        if (typeof fullName === 'string') repositories.add(fullName.toLowerCase());
      }
      const total = ownField(data, 'total_count');
      const seen = (page - 1) * PER_PAGE + listed.length;
      if (listed.length < PER_PAGE || (typeof total === 'number' && seen >= total)) break;
    }
    return { visibility, repositories, loadedAt: now };
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
        throw githubFailure(call, error, this.now());
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
