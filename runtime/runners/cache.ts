import * as z from 'zod/mini';
import { jsonResponse, type HttpResponse } from '../lib/http';
import { boundedText, describeError } from '../lib/redact';
import type { CacheTokenClaims, CacheTokenRefusal, CacheTokenVerifier } from './cache-token';
import { LOGIN, REPOSITORY } from './config';
import { repositoryCacheKey } from './tables';

/**
 * The regional artifact cache (pure core: no AWS, the clock is passed in).
 *
 * - `GET /cache/{hash}` answers a presigned GET for `<owner>/<name>/<sha256>` from this region's bucket when
 *   the index records a live copy here, else from the nearest region that does (the configuration's
 *   `cacheDistance` order), else 404.
 * - `PUT /cache/{hash}` answers a presigned PUT into this region's bucket with the content's SHA-256 bound
 *   into the signature (`x-amz-checksum-sha256`, a signed header): S3 itself refuses a body whose digest
 *   differs from the hash, so nobody holding a token can poison a hash. A size given in the body is bound
 *   too (a signed `content-length`).
 * - S3 `ObjectCreated:*` records of this region's bucket record this region's copy in the index.
 *
 * Entries are scoped to the token's REPOSITORY: the entry and its object key are
 * `repositoryCacheKey(<owner>/<name>, sha256)`, so a job of one repository can never read another's
 * objects even knowing the hash (a fork's CI in the same organisation included).
 *
 * The index holds one item per (entry, region) (`<owner>/<name>/<sha256>#<region>`, tables.ts): a region
 * records its own copy only, so two regions recording the same object within the global table's
 * replication lag cannot lose one another's (conflicts are resolved per item, last writer wins). A GET reads
 * every configured region's item in one BatchGetItem.
 *
 * A presigned URL never outlives the token it was given for: its lifetime is the smaller of `urlTtlSec`
 * and what is left of the token, and a token with less than {@link MIN_TOKEN_REMAINING_SEC} seconds left is
 * refused as expired (401).
 *
 * Expiry: the bucket's lifecycle removes an object `expireDays` after its upload (S3 rounds up to the next
 * midnight UTC); the region's index item expires one day earlier (`expiresAt`, the table's TTL), so a copy
 * leaves the index before its object leaves the bucket, and a later upload elsewhere never extends it.
 * Items past their expiry are ignored on read (DynamoDB deletes expired items lazily). An index entry naming
 * an object removed otherwise (a manual delete, a lifecycle changed to fewer days) answers a URL that S3
 * answers 404 for: the client treats that as a miss and uploads again, which records the copy anew.
 */

export const SHA256_HEX = /^[0-9a-f]{64}$/;
/** One PUT to S3 carries at most 5 GiB (larger needs a multipart upload, which this cache does not offer). */
export const MAX_UPLOAD_BYTES = 5 * 1024 ** 3;
/** S3 objects are at most 5 TiB: a larger size in an event is not S3's. */
const MAX_OBJECT_BYTES = 5 * 1024 ** 4;
/** A PUT body says at most its size: a longer one is refused unread. */
export const MAX_PUT_BODY_CHARS = 1_024;
const MAX_AUTHORIZATION_CHARS = 4_096;
/** S3 keys are at most 1,024 bytes; URL-encoded, at most three times that. */
const MAX_EVENT_KEY_CHARS = 3_072;
const DAY_SEC = 86_400;
/** A token with less than this left is refused: no URL is worth handing out for a few seconds. */
export const MIN_TOKEN_REMAINING_SEC = 5;

/** One region's copy of a cache entry, as the index records it. */
export interface CacheCopy {
  readonly region: string;
  readonly bytes: number;
  /** Epoch seconds: from then on the copy is ignored (its object leaves the bucket a day later). */
  readonly expiresAtSec: number;
}

/** The artifact-cache-index global table: one item per (entry, region). */
export interface CacheIndex {
  /** The copies of `entry` recorded for `regions`, in one read of every region's item. */
  copies(entry: string, regions: readonly string[]): Promise<readonly CacheCopy[]>;
  /** Records `region`'s copy of `entry` in that region's own item (idempotent), expiring at `expiresAtSec`. */
  recordUpload(entry: string, region: string, bytes: number, expiresAtSec: number): Promise<void>;
}

/** Presigned S3 URLs, signed with the function's own credentials. */
export interface Presigner {
  getUrl(region: string, bucket: string, objectKey: string, ttlSec: number): Promise<string>;
  /** A PUT whose signature binds the headers of `uploadHeaders(sha256Hex, bytes)`. */
  putUrl(
    region: string,
    bucket: string,
    objectKey: string,
    sha256Hex: string,
    ttlSec: number,
    bytes?: number,
  ): Promise<string>;
}

export interface CacheCoreDeps {
  readonly region: string;
  /** Per region, the other regions nearest first (`RunnerConfig.cacheDistance`). */
  readonly cacheDistance: Readonly<Record<string, readonly string[]>>;
  /** The cache bucket of every configured region. */
  readonly buckets: ReadonlyMap<string, string>;
  readonly index: CacheIndex;
  readonly presigner: Presigner;
  readonly tokens: CacheTokenVerifier;
  readonly nowSec: () => number;
  readonly urlTtlSec: number;
  /** The buckets' lifecycle expiry in days. */
  readonly expireDays: number;
}

export interface CacheRequest {
  /** The `authorization` header. */
  readonly authorization?: string;
  /** The `{hash}` path parameter. */
  readonly hash?: string;
  /** The request body (PUT), already decoded from base64 when the API sent it so. */
  readonly body?: string;
}

export type CacheOutcome =
  'hit-local' | 'hit-remote' | 'miss' | 'upload-url' | 'unauthorized' | 'bad-request';

export interface CacheAnswer {
  readonly response: HttpResponse;
  readonly outcome: CacheOutcome;
  /** The verified token's claims (for the log: organisation, repository, job). */
  readonly claims?: CacheTokenClaims;
  /** Why the token was refused, when it was (for the log, never the caller). */
  readonly refusal?: CacheTokenRefusal | 'missing';
  /** The region whose bucket the URL points into. */
  readonly region?: string;
}

/** The object key of a cache entry in every region's bucket: `<owner>/<name>/<sha256>`. */
export const objectKeyOf = (repository: string, sha256: string): string =>
  repositoryCacheKey(repository, sha256);

/** S3's `ChecksumSHA256`: the raw digest in base64. */
export const checksumSha256Base64 = (sha256Hex: string): string =>
  Buffer.from(sha256Hex, 'hex').toString('base64');

/** The headers a client must send with a presigned PUT (each is signed: leaving one out fails). */
export function uploadHeaders(sha256Hex: string, bytes?: number): Record<string, string> {
  return {
    'x-amz-checksum-sha256': checksumSha256Base64(sha256Hex),
    ...(bytes === undefined ? {} : { 'content-length': String(bytes) }),
  };
}

const unauthorized = (refusal: CacheAnswer['refusal']): CacheAnswer => {
  const base = jsonResponse(401, { error: 'unauthorized' });
  return {
    response: { ...base, headers: { ...base.headers, 'www-authenticate': 'Bearer realm="runner-cache"' } },
    outcome: 'unauthorized',
    ...(refusal ? { refusal } : {}),
  };
};

const badRequest = (reason: string, statusCode = 400): CacheAnswer => ({
  response: jsonResponse(statusCode, { error: 'bad-request', reason }),
  outcome: 'bad-request',
});

const BEARER = /^Bearer +(\S+) *$/i;

interface Authorized {
  readonly claims: CacheTokenClaims;
  readonly hash: string;
  /** The presigned URL's lifetime: `urlTtlSec`, cut to what is left of the token. */
  readonly urlTtlSec: number;
}

/** The request's token claims and hash, or the answer refusing it (401 before 400: nothing for strangers). */
async function authorize(request: CacheRequest, deps: CacheCoreDeps): Promise<Authorized | CacheAnswer> {
  const header = request.authorization;
  if (typeof header !== 'string' || header.length === 0) return unauthorized('missing');
  const match = header.length <= MAX_AUTHORIZATION_CHARS ? BEARER.exec(header) : null;
  if (!match) return unauthorized('format');
  const nowSec = deps.nowSec();
  const check = await deps.tokens.check(match[1] as string, nowSec);
  if (!check.ok) return unauthorized(check.refusal);
  const left = check.claims.expiresAtSec - nowSec;
  if (!(left >= MIN_TOKEN_REMAINING_SEC)) return unauthorized('expired');
  if (typeof request.hash !== 'string' || !SHA256_HEX.test(request.hash))
    return badRequest('hash: expected 64 lowercase hexadecimal characters (a SHA-256)');
  return { claims: check.claims, hash: request.hash, urlTtlSec: Math.min(deps.urlTtlSec, left) };
}

/** `GET /cache/{hash}`: a presigned GET from this region or the nearest holding the object, else 404. */
export async function getCacheEntry(request: CacheRequest, deps: CacheCoreDeps): Promise<CacheAnswer> {
  const auth = await authorize(request, deps);
  if ('response' in auth) return auth;
  const { claims, hash, urlTtlSec } = auth;
  const entry = repositoryCacheKey(claims.repository, hash);
  const candidates = [...new Set([deps.region, ...(deps.cacheDistance[deps.region] ?? [])])].filter(
    (region) => deps.buckets.has(region),
  );
  const nowSec = deps.nowSec();
  const holding = new Set(
    (await deps.index.copies(entry, candidates))
      .filter((copy) => copy.expiresAtSec > nowSec)
      .map((copy) => copy.region),
  );
  for (const region of candidates) {
    const bucket = deps.buckets.get(region);
    if (!holding.has(region) || bucket === undefined) continue;
    const url = await deps.presigner.getUrl(region, bucket, objectKeyOf(claims.repository, hash), urlTtlSec);
    return {
      response: jsonResponse(200, { url, region, expiresInSec: urlTtlSec }),
      outcome: region === deps.region ? 'hit-local' : 'hit-remote',
      claims,
      region,
    };
  }
  return { response: jsonResponse(404, { error: 'not-found' }), outcome: 'miss', claims };
}

const putBody = z.strictObject({
  bytes: z.optional(z.number().check(z.int(), z.gte(1), z.lte(MAX_UPLOAD_BYTES))),
});

/** The size a PUT's body declares, undefined for none, or the reason it is refused. */
function declaredBytes(body: string | undefined): { bytes?: number } | { reason: string; status: number } {
  if (body === undefined) return {};
  if (body.length > MAX_PUT_BODY_CHARS)
    return { reason: `body: expected at most ${MAX_PUT_BODY_CHARS} characters`, status: 413 };
  if (body.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body) as unknown;
  } catch {
    return { reason: 'body: expected JSON', status: 400 };
  }
  const result = putBody.safeParse(parsed);
  if (!result.success)
    return {
      reason: `body: expected {"bytes": n} with n a whole number from 1 to ${MAX_UPLOAD_BYTES} (5 GiB), nothing else`,
      status: 400,
    };
  return result.data.bytes === undefined ? {} : { bytes: result.data.bytes };
}

/** `PUT /cache/{hash}`: a presigned PUT into this region's bucket, bound to the hash (and size, if given). */
export async function putCacheEntry(request: CacheRequest, deps: CacheCoreDeps): Promise<CacheAnswer> {
  const auth = await authorize(request, deps);
  if ('response' in auth) return auth;
  const { claims, hash, urlTtlSec } = auth;
  const declared = declaredBytes(request.body);
  if ('reason' in declared) return { ...badRequest(declared.reason, declared.status), claims };
  const bucket = deps.buckets.get(deps.region);
  if (bucket === undefined) throw new Error('no cache bucket is configured for this region');
  const url = await deps.presigner.putUrl(
    deps.region,
    bucket,
    objectKeyOf(claims.repository, hash),
    hash,
    urlTtlSec,
    declared.bytes,
  );
  return {
    response: jsonResponse(200, {
      url,
      expiresInSec: urlTtlSec,
      headers: uploadHeaders(hash, declared.bytes),
    }),
    outcome: 'upload-url',
    claims,
    region: deps.region,
  };
}

export interface ParsedUpload {
  readonly organization: string;
  /** `<owner>/<name>`. */
  readonly repository: string;
  readonly sha256: string;
  readonly bytes: number;
}

/** An own property of an outside object (never one read through its prototype). */
export const ownProperty = (value: unknown, name: string): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, name)
    ? (value as Record<string, unknown>)[name]
    : undefined;

/** An `ObjectCreated` record of this region's bucket as the upload it reports, or why it is refused. */
export function parseUploadRecord(
  record: unknown,
  region: string,
  bucket: string | undefined,
): { ok: true; upload: ParsedUpload } | { ok: false; reason: string } {
  const no = (reason: string) => ({ ok: false as const, reason });
  if (ownProperty(record, 'eventSource') !== 'aws:s3') return no('eventSource: expected aws:s3');
  const eventName = ownProperty(record, 'eventName');
  if (typeof eventName !== 'string' || !eventName.startsWith('ObjectCreated:'))
    return no('eventName: expected ObjectCreated:*');
  if (ownProperty(record, 'awsRegion') !== region) return no("awsRegion: expected the function's own region");
  const s3 = ownProperty(record, 's3');
  if (bucket === undefined || ownProperty(ownProperty(s3, 'bucket'), 'name') !== bucket)
    return no("s3.bucket.name: expected this region's cache bucket");
  const object = ownProperty(s3, 'object');
  const rawKey = ownProperty(object, 'key');
  if (typeof rawKey !== 'string' || rawKey.length === 0 || rawKey.length > MAX_EVENT_KEY_CHARS)
    return no(`s3.object.key: expected a key of 1 to ${MAX_EVENT_KEY_CHARS} characters`);
  let key: string;
  try {
    // S3 event keys are URL-encoded, with `+` for a space
    key = decodeURIComponent(rawKey.replace(/\+/g, '%20'));
  } catch {
    return no('s3.object.key: expected a URL-encoded key');
  }
  const parts = key.split('/');
  const [organization = '', name = '', sha256 = ''] = parts;
  const repository = `${organization}/${name}`;
  if (
    parts.length !== 3 ||
    !LOGIN.test(organization) ||
    !REPOSITORY.test(repository) ||
    !SHA256_HEX.test(sha256)
  )
    return no(
      's3.object.key: expected <owner>/<name>/<sha256>, a lower-cased repository and 64 lowercase hex',
    );
  const bytes = ownProperty(object, 'size');
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_OBJECT_BYTES)
    return no('s3.object.size: expected a whole number of bytes');
  return { ok: true, upload: { organization, repository, sha256, bytes } };
}

export interface UploadReport {
  readonly recorded: number;
  /** Records that are not uploads of this cache: logged, never retried. */
  readonly refused: readonly { readonly record: number; readonly reason: string }[];
  /** Uploads the index did not take (a transient failure): the invocation fails and S3's retry comes back. */
  readonly failed: readonly { readonly record: number; readonly reason: string }[];
}

/**
 * S3 event records: each upload of this region's bucket is recorded in this region's index item with an
 * expiry one day before the bucket's lifecycle removes it. Idempotent (the item is rewritten, the expiry
 * recomputed); a record that is not an upload of this cache is refused with a bounded reason and never
 * throws.
 */
export async function recordUploads(records: readonly unknown[], deps: CacheCoreDeps): Promise<UploadReport> {
  const refused: { record: number; reason: string }[] = [];
  const failed: { record: number; reason: string }[] = [];
  let recorded = 0;
  const bucket = deps.buckets.get(deps.region);
  const expiresAtSec = deps.nowSec() + (deps.expireDays - 1) * DAY_SEC;
  for (const [index, record] of records.entries()) {
    const parsed = parseUploadRecord(record, deps.region, bucket);
    if (!parsed.ok) {
      refused.push({ record: index, reason: boundedText(parsed.reason, 200) });
      continue;
    }
    const { repository, sha256, bytes } = parsed.upload;
    try {
      await deps.index.recordUpload(repositoryCacheKey(repository, sha256), deps.region, bytes, expiresAtSec);
      recorded += 1;
    } catch (error) {
      failed.push({ record: index, reason: `index update failed: ${describeError(error)}` });
    }
  }
  return { recorded, refused, failed };
}
