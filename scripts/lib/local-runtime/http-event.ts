/**
 * API Gateway HTTP API's Lambda proxy integration, payload format 2.0: the event built from a request, and
 * the HTTP response made of the function's answer. Pure.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

/** A request as received: raw path and query, headers in arrival order (names as sent). */
export interface ReceivedRequest {
  readonly method: string;
  /** The path as sent, still percent-encoded. */
  readonly rawPath: string;
  /** Without the `?`. */
  readonly rawQueryString: string;
  /** Name / value pairs in arrival order (node's `rawHeaders`, paired). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  readonly sourceIp: string;
}

/** What API Gateway adds about the API and the request. */
export interface RequestFacts {
  readonly routeKey: string;
  readonly pathParameters?: Readonly<Record<string, string>>;
  readonly accountId: string;
  readonly apiId: string;
  readonly stage: string;
  readonly requestId: string;
  readonly timeEpoch: number;
  /** `requestContext.authorizer`, for IAM-authorised routes. */
  readonly authorizer?: { readonly iam: IamCaller };
}

/** The IAM caller API Gateway resolves from a SigV4-signed request. */
export interface IamCaller {
  readonly accessKey: string;
  readonly accountId: string;
  readonly callerId: string;
  readonly cognitoIdentity: null;
  readonly principalOrgId: string | null;
  readonly userArn: string;
  readonly userId: string;
}

/** Content types API Gateway passes as text; anything else (or any content-encoding) arrives base64-encoded. */
export function isTextual(contentType: string | undefined, contentEncoding: string | undefined): boolean {
  if (contentEncoding && contentEncoding.trim().toLowerCase() !== 'identity') return false;
  if (!contentType) return true;
  const type = (contentType.split(';')[0] as string).trim().toLowerCase();
  return (
    type.startsWith('text/') ||
    /^application\/(json|javascript|xml|x-www-form-urlencoded|graphql|yaml|x-yaml)$/.test(type) ||
    /\+(json|xml)$/.test(type)
  );
}

/** Lower-cased headers, repeated ones joined with commas (as API Gateway joins them). */
export function joinHeaders(headers: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const joined = new Map<string, string>();
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    joined.set(key, joined.has(key) ? `${joined.get(key)},${value}` : value);
  }
  return Object.fromEntries(joined);
}

/** Query parameters decoded, repeated ones joined with commas; undefined when there are none. */
export function queryParameters(rawQueryString: string): Record<string, string> | undefined {
  if (!rawQueryString) return undefined;
  const joined = new Map<string, string>();
  for (const pair of rawQueryString.split('&')) {
    if (!pair) continue;
    const at = pair.indexOf('=');
    const name = decodeQuery(at < 0 ? pair : pair.slice(0, at));
    const value = at < 0 ? '' : decodeQuery(pair.slice(at + 1));
    joined.set(name, joined.has(name) ? `${joined.get(name)},${value}` : value);
  }
  return joined.size > 0 ? Object.fromEntries(joined) : undefined;
}

function decodeQuery(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `12/Mar/2020:19:03:58 +0000`, API Gateway's `requestContext.time`. */
export function requestTime(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** The payload 2.0 event of a request. */
export function httpApiEvent(request: ReceivedRequest, facts: RequestFacts): APIGatewayProxyEventV2 {
  const all = joinHeaders(request.headers);
  const { cookie, ...headers } = all;
  const cookies = cookie
    ?.split(/;\s*/)
    .map((c) => c.trim())
    .filter((c) => c !== '');
  const domainName = headers.host ?? `${facts.apiId}.execute-api.local`;
  const query = queryParameters(request.rawQueryString);
  const hasBody = request.body.length > 0;
  const textual = isTextual(headers['content-type'], headers['content-encoding']);
  return {
    version: '2.0',
    routeKey: facts.routeKey,
    rawPath: request.rawPath,
    rawQueryString: request.rawQueryString,
    ...(cookies && cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(query ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: facts.accountId,
      apiId: facts.apiId,
      ...(facts.authorizer ? { authorizer: facts.authorizer } : {}),
      domainName,
      domainPrefix: domainName.split('.')[0] as string,
      http: {
        method: request.method.toUpperCase(),
        path: decodePath(request.rawPath),
        protocol: 'HTTP/1.1',
        sourceIp: request.sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: facts.requestId,
      routeKey: facts.routeKey,
      stage: facts.stage,
      time: requestTime(facts.timeEpoch),
      timeEpoch: facts.timeEpoch,
    },
    ...(facts.pathParameters ? { pathParameters: { ...facts.pathParameters } } : {}),
    ...(hasBody ? { body: textual ? request.body.toString('utf8') : request.body.toString('base64') } : {}),
    isBase64Encoded: hasBody && !textual,
  } as APIGatewayProxyEventV2;
}

function decodePath(path: string): string {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

/** An HTTP response to write. */
export interface HttpReply {
  readonly statusCode: number;
  /** Header values; `set-cookie` may repeat. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

const json = (statusCode: number, body: unknown): HttpReply => ({
  statusCode,
  headers: [['content-type', 'application/json']],
  body: Buffer.from(JSON.stringify(body)),
});

/** API Gateway's own answers. */
export const GATEWAY_REPLIES = {
  notFound: () => json(404, { message: 'Not Found' }),
  forbidden: () => json(403, { message: 'Forbidden' }),
  internalError: () => json(500, { message: 'Internal Server Error' }),
  unavailable: () => json(503, { message: 'Service Unavailable' }),
  tooLarge: () => json(413, { message: 'Request Entity Too Large' }),
} as const;

const scalar = (value: unknown): value is string | number | boolean =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

/**
 * The response of a function's answer, by payload 2.0's rules: an object with `statusCode` is a response
 * (headers, cookies, body, isBase64Encoded); anything else is a 200 JSON body (a string as it is). A malformed
 * response is API Gateway's 500.
 */
export function httpReplyOf(result: unknown): HttpReply {
  if (typeof result !== 'object' || result === null || Array.isArray(result) || !('statusCode' in result)) {
    const body = typeof result === 'string' ? result : JSON.stringify(result ?? null);
    return { statusCode: 200, headers: [['content-type', 'application/json']], body: Buffer.from(body) };
  }
  const response = result as {
    statusCode?: unknown;
    headers?: unknown;
    cookies?: unknown;
    body?: unknown;
    isBase64Encoded?: unknown;
  };
  const status = response.statusCode;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599)
    return GATEWAY_REPLIES.internalError();
  const headers: Array<[string, string]> = [];
  if (response.headers !== undefined && response.headers !== null) {
    if (typeof response.headers !== 'object' || Array.isArray(response.headers))
      return GATEWAY_REPLIES.internalError();
    for (const [name, value] of Object.entries(response.headers)) {
      if (!scalar(value)) return GATEWAY_REPLIES.internalError();
      headers.push([name.toLowerCase(), String(value)]);
    }
  }
  if (Array.isArray(response.cookies)) {
    for (const cookie of response.cookies as unknown[])
      if (typeof cookie === 'string') headers.push(['set-cookie', cookie]);
  }
  const raw = response.body;
  if (raw !== undefined && raw !== null && typeof raw !== 'string') return GATEWAY_REPLIES.internalError();
  const body = raw
    ? Buffer.from(raw, response.isBase64Encoded === true ? 'base64' : 'utf8')
    : Buffer.alloc(0);
  return { statusCode: status, headers, body };
}
