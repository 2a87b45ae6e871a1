import { createHmac, timingSafeEqual } from 'node:crypto';
import { GetSecretValueCommand, type GetSecretValueCommandOutput } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod/mini';
import { PermanentError } from '../lib/failures';
import { describeError } from '../lib/redact';
import { LOGIN, REPOSITORY } from './config';

/**
 * Job-scoped runner tokens for the artifact cache. The dispatcher gives each runner task a token naming its
 * job; the cache function accepts it until it expires (less a few seconds: a presigned URL never outlives
 * its token, cache.ts) and scopes every entry to the token's repository (`r`, `owner/name`).
 *
 * Wire form: `<base64url(payload)>.<base64url(mac)>`, where payload is the canonical JSON
 * `{"v":1,"o":<organisation>,"r":<owner/name>,"j":<job id>,"e":<expiry, epoch seconds>}` (keys in this order,
 * no spaces) and mac = HMAC-SHA256(key, "estate-runner-cache-token\n" + base64url(payload)). The key is the
 * `CACHE_TOKEN_SECRET_ID` secret's text: AWSCURRENT signs, AWSCURRENT and AWSPREVIOUS both verify, so a
 * rotation never refuses a token signed just before it.
 *
 * Verification never throws and never says why to the caller: a token over 2 KiB is refused before other
 * work, the MAC is compared in constant time, and only an authentic payload is parsed (strictly: unknown
 * keys such as `__proto__`, a non-canonical form, or a repository outside its organisation are refused).
 * Token and key values are never logged nor put in an error.
 */

export const CACHE_TOKEN_VERSION = 1;
/** Longest token looked at (a real one is under 400 characters). */
export const MAX_CACHE_TOKEN_CHARS = 2_048;
/** Longest a token may live: GitHub lets a self-hosted job run for 5 days, plus a margin. */
export const MAX_CACHE_TOKEN_TTL_SEC = 6 * 86_400;
/** Shortest key accepted, in UTF-8 bytes (HMAC-SHA256's block of security). */
export const MIN_CACHE_TOKEN_KEY_BYTES = 32;

const MAC_CONTEXT = 'estate-runner-cache-token\n';
const MAC_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Expiries beyond this are not plausible epoch seconds (year 2286). */
const MAX_EXPIRY_SEC = 9_999_999_999;

export interface CacheTokenScope {
  /** The repository owner's login, lower-cased. */
  readonly organization: string;
  /** `owner/name`, lower-cased; its owner is `organization`. */
  readonly repository: string;
  readonly jobId: number;
}

export interface CacheTokenClaims extends CacheTokenScope {
  readonly expiresAtSec: number;
}

/** Why a token was refused: for logs and counters, never for the caller. */
export type CacheTokenRefusal = 'format' | 'signature' | 'payload' | 'expired' | 'too-long-lived';

export type CacheTokenCheck =
  | { readonly ok: true; readonly claims: CacheTokenClaims }
  | { readonly ok: false; readonly refusal: CacheTokenRefusal };

/** What the cache function asks of its keys. */
export interface CacheTokenVerifier {
  check(token: string, nowSec: number): Promise<CacheTokenCheck>;
}

/** What the dispatcher asks to give a runner task its token. */
export interface CacheTokenIssuer {
  issue(scope: CacheTokenScope, ttlSec: number): Promise<string>;
}

const payloadSchema = z.strictObject({
  v: z.literal(CACHE_TOKEN_VERSION),
  o: z.string().check(z.maxLength(39), z.regex(LOGIN)),
  r: z.string().check(z.maxLength(140), z.regex(REPOSITORY)),
  j: z.number().check(z.int(), z.gte(1), z.lte(Number.MAX_SAFE_INTEGER)),
  e: z.number().check(z.int(), z.gte(1), z.lte(MAX_EXPIRY_SEC)),
});
type Payload = z.output<typeof payloadSchema>;

const canonical = (p: Payload): string => JSON.stringify({ v: p.v, o: p.o, r: p.r, j: p.j, e: p.e });

const keyBytes = (key: Buffer | string): Buffer => (typeof key === 'string' ? Buffer.from(key, 'utf8') : key);

const macOf = (key: Buffer, encodedPayload: string): Buffer =>
  createHmac('sha256', key).update(MAC_CONTEXT).update(encodedPayload).digest();

const refuse = (field: string, rule: string): never => {
  throw new PermanentError('cache-token', `${field}: ${rule}`);
};

/** Signs a token for `scope` valid until `expiresAtSec`. Throws, naming the field, on a bad scope or key. */
export function issueCacheToken(key: Buffer | string, scope: CacheTokenScope, expiresAtSec: number): string {
  const bytes = keyBytes(key);
  if (bytes.length < MIN_CACHE_TOKEN_KEY_BYTES)
    refuse('key', `expected at least ${MIN_CACHE_TOKEN_KEY_BYTES} bytes`);
  const payload = payloadSchema.safeParse({
    v: CACHE_TOKEN_VERSION,
    o: scope.organization,
    r: scope.repository,
    j: scope.jobId,
    e: expiresAtSec,
  });
  if (!payload.success) {
    const field = { o: 'organization', r: 'repository', j: 'jobId', e: 'expiresAtSec' };
    const first = String(payload.error.issues[0]?.path[0] ?? '');
    refuse(
      field[first as keyof typeof field] ?? 'scope',
      'expected a lower-cased login, its owner/name repository, a positive job id and an expiry in epoch seconds',
    );
  }
  const data = payload.data as Payload;
  if (!data.r.startsWith(`${data.o}/`)) refuse('repository', 'expected a repository of the organization');
  const encoded = Buffer.from(canonical(data), 'utf8').toString('base64url');
  return `${encoded}.${macOf(bytes, encoded).toString('base64url')}`;
}

/** base64url text decoded, only when it is the canonical encoding of what it decodes to. */
function decodeStrict(text: string): Buffer | undefined {
  if (!BASE64URL.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/** A token's verdict against `keys` (one of them suffices) at `nowSec`; never throws. */
export function checkCacheToken(keys: readonly string[], token: string, nowSec: number): CacheTokenCheck {
  const no = (refusal: CacheTokenRefusal): CacheTokenCheck => ({ ok: false, refusal });
  if (typeof token !== 'string' || token.length > MAX_CACHE_TOKEN_CHARS) return no('format');
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return no('format');
  const encoded = token.slice(0, dot);
  const body = decodeStrict(encoded);
  const mac = decodeStrict(token.slice(dot + 1));
  if (!body || !mac || mac.length !== MAC_BYTES) return no('format');

  let authentic = false;
  for (const key of keys) {
    const bytes = keyBytes(key);
    if (bytes.length < MIN_CACHE_TOKEN_KEY_BYTES) continue;
    // every key is tried, so the time taken does not say which one matched
    if (timingSafeEqual(macOf(bytes, encoded), mac)) authentic = true;
  }
  if (!authentic) return no('signature');

  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    parsed = JSON.parse(text) as unknown;
  } catch {
    return no('payload');
  }
  const payload = payloadSchema.safeParse(parsed);
  if (
    !payload.success ||
    canonical(payload.data) !== text ||
    !payload.data.r.startsWith(`${payload.data.o}/`)
  )
    return no('payload');
  const { o, r, j, e } = payload.data;
  if (!Number.isFinite(nowSec) || e <= nowSec) return no('expired');
  if (e - nowSec > MAX_CACHE_TOKEN_TTL_SEC) return no('too-long-lived');
  return { ok: true, claims: { organization: o, repository: r, jobId: j, expiresAtSec: e } };
}

/** The token's claims when one of `keys` signed it and it has not expired at `nowSec`; else undefined. */
export function verifyCacheToken(
  keys: readonly string[],
  token: string,
  nowSec: number,
): CacheTokenClaims | undefined {
  const result = checkCacheToken(keys, token, nowSec);
  return result.ok ? result.claims : undefined;
}

export type SecretStage = 'AWSCURRENT' | 'AWSPREVIOUS';
/** Reads the token secret's text at a stage; undefined when the stage has no version. */
export type SecretStageReader = (stage: SecretStage) => Promise<string | undefined>;

/** The part of a Secrets Manager client the key source uses. */
export interface SecretsManagerLike {
  send(command: GetSecretValueCommand): Promise<GetSecretValueCommandOutput>;
}

/** Reads stages of `secretId` through Secrets Manager; a stage without a version reads as undefined. */
export function secretsManagerStageReader(client: SecretsManagerLike, secretId: string): SecretStageReader {
  return async (stage) => {
    try {
      const out = await client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }));
      if (typeof out.SecretString !== 'string')
        throw new PermanentError('cache-token-key', `${stage}: expected the key as a SecretString`);
      return out.SecretString;
    } catch (error) {
      if (stage === 'AWSPREVIOUS' && error instanceof Error && error.name === 'ResourceNotFoundException')
        return undefined;
      throw error;
    }
  };
}

interface Keys {
  readonly signing: string;
  readonly verifying: readonly string[];
}

export interface CacheTokenKeysOptions {
  /** How long keys read are used before they are read again. Default 5 minutes. */
  readonly ttlMs?: number;
  /** A refusal for the signature reads the keys again at most this often (a rotation). Default 30 s. */
  readonly minRefreshMs?: number;
  /** After a failed read, the keys read before stay in use this long at most. Default 1 hour. */
  readonly maxStaleMs?: number;
  readonly nowMs?: () => number;
  /** Told (by error name only) when a read failed and the previous keys stay in use. */
  readonly onStale?: (error: string) => void;
}

/**
 * The token keys from the secret, cached: AWSCURRENT signs, AWSCURRENT and AWSPREVIOUS verify. A token
 * refused for its signature reads the keys again (at most once per `minRefreshMs`), so a token signed with
 * a key rotated in since the last read verifies at once. Key values are never logged.
 */
export class CacheTokenKeys implements CacheTokenVerifier {
  private cached:
    { readonly keys: Keys; readonly loadedAtMs: number; readonly goodUntilMs: number } | undefined;
  private inflight: Promise<Keys> | undefined;
  private readonly ttlMs: number;
  private readonly minRefreshMs: number;
  private readonly maxStaleMs: number;
  private readonly nowMs: () => number;

  constructor(
    private readonly read: SecretStageReader,
    private readonly options: CacheTokenKeysOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 300_000;
    this.minRefreshMs = options.minRefreshMs ?? 30_000;
    this.maxStaleMs = options.maxStaleMs ?? 3_600_000;
    this.nowMs = options.nowMs ?? Date.now;
  }

  async signingKey(): Promise<string> {
    return (await this.keys(false)).signing;
  }

  async verifyingKeys(): Promise<readonly string[]> {
    return (await this.keys(false)).verifying;
  }

  async check(token: string, nowSec: number): Promise<CacheTokenCheck> {
    const first = checkCacheToken((await this.keys(false)).verifying, token, nowSec);
    if (first.ok || first.refusal !== 'signature') return first;
    if (this.cached && this.nowMs() - this.cached.loadedAtMs < this.minRefreshMs) return first;
    return checkCacheToken((await this.keys(true)).verifying, token, nowSec);
  }

  private async keys(force: boolean): Promise<Keys> {
    const now = this.nowMs();
    const cached = this.cached;
    if (cached && !force && now < cached.goodUntilMs) return cached.keys;
    this.inflight ??= this.fetch().finally(() => (this.inflight = undefined));
    try {
      const keys = await this.inflight;
      this.cached = { keys, loadedAtMs: this.nowMs(), goodUntilMs: this.nowMs() + this.ttlMs };
      return keys;
    } catch (error) {
      if (!cached || now - cached.loadedAtMs > this.maxStaleMs) throw error;
      this.options.onStale?.(describeError(error));
      this.cached = {
        ...cached,
        goodUntilMs: Math.min(now + this.minRefreshMs, cached.loadedAtMs + this.maxStaleMs + 1),
      };
      return cached.keys;
    }
  }

  private async fetch(): Promise<Keys> {
    const [current, previous] = await Promise.all([this.read('AWSCURRENT'), this.read('AWSPREVIOUS')]);
    const usable = (key: string | undefined) =>
      key !== undefined && Buffer.byteLength(key, 'utf8') >= MIN_CACHE_TOKEN_KEY_BYTES;
    if (!usable(current))
      throw new PermanentError(
        'cache-token-key',
        `AWSCURRENT: expected a key of at least ${MIN_CACHE_TOKEN_KEY_BYTES} bytes`,
      );
    const signing = current as string;
    return { signing, verifying: usable(previous) ? [signing, previous as string] : [signing] };
  }
}

/**
 * Issues runner tokens with the current key of the `CACHE_TOKEN_SECRET_ID` secret (the dispatcher injects
 * one and gives each runner task the token of its job).
 */
export class SecretsManagerCacheTokenIssuer implements CacheTokenIssuer {
  private readonly keys: CacheTokenKeys;
  private readonly nowMs: () => number;

  constructor(
    options:
      | { readonly secretId: string; readonly client: SecretsManagerLike; readonly nowMs?: () => number }
      | { readonly keys: CacheTokenKeys; readonly nowMs?: () => number },
  ) {
    this.nowMs = options.nowMs ?? Date.now;
    this.keys =
      'keys' in options
        ? options.keys
        : new CacheTokenKeys(secretsManagerStageReader(options.client, options.secretId), {
            nowMs: this.nowMs,
          });
  }

  /** A token for the job valid `ttlSec` seconds (1 to MAX_CACHE_TOKEN_TTL_SEC). */
  async issue(scope: CacheTokenScope, ttlSec: number): Promise<string> {
    if (!Number.isSafeInteger(ttlSec) || ttlSec < 1 || ttlSec > MAX_CACHE_TOKEN_TTL_SEC)
      refuse('ttlSec', `expected a whole number of seconds from 1 to ${MAX_CACHE_TOKEN_TTL_SEC}`);
    const key = await this.keys.signingKey();
    return issueCacheToken(key, scope, Math.floor(this.nowMs() / 1000) + ttlSec);
  }
}
