/**
 * Checks a SigV4-signed request the way API Gateway checks an IAM-authorised route: the credential scope names
 * the region and `execute-api`, the date is within 15 minutes, the access key is known, and the signature,
 * recomputed over the request as received (method, path, query, the headers it says it signed, the body), is
 * the one sent. The signature is recomputed by the AWS SDK's own signer (@smithy/signature-v4).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/** The request as received. */
export interface SignedRequest {
  readonly method: string;
  /** The path as sent (still percent-encoded). */
  readonly rawPath: string;
  readonly rawQueryString: string;
  /** Lower-cased names; repeated headers joined with commas. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

export interface VerifyOptions {
  readonly region: string;
  /** Default `execute-api`. */
  readonly service?: string;
  /** The secret of an access key, or undefined when the key is unknown. */
  readonly secretOf: (accessKeyId: string) => string | undefined;
  /** Default Date.now(). */
  readonly now?: number;
  /** Default 15 minutes, as AWS allows. */
  readonly maxSkewMs?: number;
}

export type Verdict =
  | { readonly ok: true; readonly accessKeyId: string; readonly sessionToken?: string }
  | { readonly ok: false; readonly reason: string };

/** The bytes of what the SDK's signer hashes (a string, an ArrayBuffer or a view of one). */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytesOf = (data: SourceData): string | Uint8Array =>
  typeof data === 'string'
    ? data
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);

/** SHA-256 (or HMAC-SHA256 with a key), in the shape the SDK's signer takes (`new SignatureV4({ sha256: Sha256 })`). */
export class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytesOf(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/;

/** `20240101T120000Z` -> epoch ms. */
function parseAmzDate(value: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  return Date.UTC(y as number, (mo as number) - 1, d, h, mi, s);
}

/** Decoded query parameters, repeated names as lists (the signer encodes and sorts them again). */
function queryOf(raw: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const pair of raw.split('&')) {
    if (!pair) continue;
    const at = pair.indexOf('=');
    const name = safeDecode(at < 0 ? pair : pair.slice(0, at));
    const value = at < 0 ? '' : safeDecode(pair.slice(at + 1));
    const existing = query[name];
    query[name] =
      existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return query;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const sameText = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export async function verifySigV4(request: SignedRequest, options: VerifyOptions): Promise<Verdict> {
  const service = options.service ?? 'execute-api';
  const authorization = request.headers.authorization;
  if (!authorization) return { ok: false, reason: 'no Authorization header' };
  const match = AUTHORIZATION.exec(authorization.trim());
  if (!match)
    return {
      ok: false,
      reason: 'Authorization: expected AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...',
    };
  const [, accessKeyId, scopeDate, region, scopeService, signedHeaderList, signature] =
    match as unknown as string[];
  if (region !== options.region)
    return { ok: false, reason: `credential scope: signed for region ${region}, not ${options.region}` };
  if (scopeService !== service)
    return { ok: false, reason: `credential scope: signed for ${scopeService}, not ${service}` };
  const amzDate = request.headers['x-amz-date'];
  const signedAt = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (signedAt === undefined) return { ok: false, reason: 'x-amz-date: expected YYYYMMDDTHHMMSSZ' };
  if (amzDate?.slice(0, 8) !== scopeDate)
    return { ok: false, reason: "credential scope: its date is not x-amz-date's" };
  const skew = Math.abs((options.now ?? Date.now()) - signedAt);
  if (skew > (options.maxSkewMs ?? 15 * 60_000))
    return { ok: false, reason: 'x-amz-date: more than 15 minutes from now' };
  const signedHeaders = (signedHeaderList as string).split(';');
  if (!signedHeaders.includes('host')) return { ok: false, reason: 'SignedHeaders: host must be signed' };
  if (!signedHeaders.includes('x-amz-date'))
    return { ok: false, reason: 'SignedHeaders: x-amz-date must be signed' };
  const missing = signedHeaders.find((name) => request.headers[name] === undefined);
  if (missing) return { ok: false, reason: `SignedHeaders: ${missing.slice(0, 60)} was not sent` };
  const secret = options.secretOf(accessKeyId as string);
  if (secret === undefined) return { ok: false, reason: 'the access key is not known' };

  const declaredHash = request.headers['x-amz-content-sha256'];
  if (declaredHash && declaredHash !== 'UNSIGNED-PAYLOAD') {
    const actual = createHash('sha256').update(request.body).digest('hex');
    if (declaredHash !== actual) return { ok: false, reason: 'x-amz-content-sha256: not the body sent' };
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: accessKeyId as string, secretAccessKey: secret },
    region: options.region,
    service,
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, request.headers[name] as string]));
  const host = request.headers.host as string;
  const recomputed = await signer.sign(
    {
      method: request.method.toUpperCase(),
      protocol: 'http:',
      hostname: host.replace(/:\d+$/, ''),
      path: request.rawPath,
      query: queryOf(request.rawQueryString),
      headers,
      body: request.body.length > 0 ? request.body : undefined,
    },
    { signingDate: new Date(signedAt), signableHeaders: new Set(signedHeaders) },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(recomputed.headers.authorization ?? ''))?.[1];
  const expectedList = /SignedHeaders=([^,]+),/.exec(String(recomputed.headers.authorization ?? ''))?.[1];
  if (!expected || expectedList !== signedHeaderList)
    return { ok: false, reason: 'SignedHeaders: not a set this check can recompute' };
  if (!sameText(expected, signature as string))
    return { ok: false, reason: 'the signature does not match the request' };
  const sessionToken = request.headers['x-amz-security-token'];
  return { ok: true, accessKeyId: accessKeyId as string, ...(sessionToken ? { sessionToken } : {}) };
}
