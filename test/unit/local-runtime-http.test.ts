import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SignatureV4 } from '@smithy/signature-v4';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { DiscoveredApi, DiscoveredRoute } from '../../scripts/lib/local-runtime/discover';
import { serveHttpApi, type AccessLogEntry } from '../../scripts/lib/local-runtime/http-api';
import {
  httpApiEvent,
  httpReplyOf,
  isTextual,
  queryParameters,
} from '../../scripts/lib/local-runtime/http-event';
import { RouteTable, parseRouteKey } from '../../scripts/lib/local-runtime/http-routes';
import { Sha256, verifySigV4, type SignedRequest } from '../../scripts/lib/local-runtime/sigv4';

const run = promisify(execFile);

describe('route selection', () => {
  const table = new RouteTable(
    [
      'GET /health',
      'POST /admin/failover/{region}',
      'GET /cache/{hash}',
      'GET /cache/special',
      'ANY /files/{proxy+}',
      'GET /files/{proxy+}',
      'GET /',
      '$default',
    ].map((routeKey) => ({ routeKey })),
  );
  const select = (method: string, path: string) => {
    const match = table.select(method, path);
    return match && { routeKey: match.route.routeKey, pathParameters: match.pathParameters };
  };

  it('prefers literal segments to parameters, parameters to a greedy tail, an exact method to ANY', () => {
    expect(select('GET', '/health')).toEqual({ routeKey: 'GET /health', pathParameters: undefined });
    expect(select('GET', '/cache/special')).toEqual({
      routeKey: 'GET /cache/special',
      pathParameters: undefined,
    });
    expect(select('GET', '/cache/abc')).toEqual({
      routeKey: 'GET /cache/{hash}',
      pathParameters: { hash: 'abc' },
    });
    expect(select('GET', '/files/a/b%20c')).toEqual({
      routeKey: 'GET /files/{proxy+}',
      pathParameters: { proxy: 'a/b c' },
    });
    expect(select('DELETE', '/files/a')).toEqual({
      routeKey: 'ANY /files/{proxy+}',
      pathParameters: { proxy: 'a' },
    });
    expect(select('GET', '/')).toEqual({ routeKey: 'GET /', pathParameters: undefined });
  });

  it('falls back to $default, and otherwise matches nothing', () => {
    expect(select('POST', '/health')?.routeKey).toBe('$default');
    expect(select('GET', '/cache')?.routeKey).toBe('$default');
    expect(new RouteTable([{ routeKey: 'GET /health' }]).select('GET', '/health/extra')).toBeUndefined();
  });

  it('keeps a path parameter named __proto__ as an own value', () => {
    const match = new RouteTable([{ routeKey: 'GET /x/{__proto__}' }]).select('GET', '/x/v');
    expect(Object.prototype.hasOwnProperty.call(match?.pathParameters, '__proto__')).toBe(true);
  });

  it('refuses malformed route keys', () => {
    expect(() => parseRouteKey('get /x')).toThrow(/expected "METHOD \/path" or \$default/);
    expect(() => parseRouteKey('GET /{proxy+}/more')).toThrow(/greedy \{proxy\+\} must be the last segment/);
  });
});

describe('the payload 2.0 event', () => {
  const facts = {
    routeKey: 'POST /admin/failover/{region}',
    pathParameters: { region: 'us-east-1' },
    accountId: '123456789012',
    apiId: 'abc123',
    stage: '$default',
    requestId: 'req-1',
    timeEpoch: Date.UTC(2020, 2, 12, 19, 3, 58),
  };

  it('has the fields API Gateway sends: lower-cased joined headers, cookies, query, request context', () => {
    const event = httpApiEvent(
      {
        method: 'post',
        rawPath: '/admin/failover/us-east-1',
        rawQueryString: 'a=1&a=2&b=x%20y',
        headers: [
          ['Host', 'localhost:8080'],
          ['X-Multi', 'one'],
          ['x-multi', 'two'],
          ['Cookie', 'c1=v1; c2=v2'],
          ['User-Agent', 'curl/8'],
          ['Content-Type', 'application/json'],
        ],
        body: Buffer.from('{"reason":"drill"}'),
        sourceIp: '127.0.0.1',
      },
      facts,
    );
    expect(event).toEqual({
      version: '2.0',
      routeKey: 'POST /admin/failover/{region}',
      rawPath: '/admin/failover/us-east-1',
      rawQueryString: 'a=1&a=2&b=x%20y',
      cookies: ['c1=v1', 'c2=v2'],
      headers: {
        host: 'localhost:8080',
        'x-multi': 'one,two',
        'user-agent': 'curl/8',
        'content-type': 'application/json',
      },
      queryStringParameters: { a: '1,2', b: 'x y' },
      requestContext: {
        accountId: '123456789012',
        apiId: 'abc123',
        domainName: 'localhost:8080',
        domainPrefix: 'localhost:8080',
        http: {
          method: 'POST',
          path: '/admin/failover/us-east-1',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'curl/8',
        },
        requestId: 'req-1',
        routeKey: 'POST /admin/failover/{region}',
        stage: '$default',
        time: '12/Mar/2020:19:03:58 +0000',
        timeEpoch: facts.timeEpoch,
      },
      pathParameters: { region: 'us-east-1' },
      body: '{"reason":"drill"}',
      isBase64Encoded: false,
    });
  });

  it('base64-encodes a binary or content-encoded body, and sends no body field without one', () => {
    const binary = httpApiEvent(
      {
        method: 'PUT',
        rawPath: '/cache/x',
        rawQueryString: '',
        headers: [['content-type', 'application/octet-stream']],
        body: Buffer.from([0, 1, 2, 255]),
        sourceIp: '::1',
      },
      facts,
    );
    expect(binary).toMatchObject({ body: 'AAEC/w==', isBase64Encoded: true });
    expect(binary.queryStringParameters).toBeUndefined();
    const empty = httpApiEvent(
      {
        method: 'GET',
        rawPath: '/',
        rawQueryString: '',
        headers: [],
        body: Buffer.alloc(0),
        sourceIp: '::1',
      },
      facts,
    );
    expect('body' in empty).toBe(false);
    expect(empty.isBase64Encoded).toBe(false);
    expect(isTextual('application/json; charset=utf-8', undefined)).toBe(true);
    expect(isTextual('application/problem+json', undefined)).toBe(true);
    expect(isTextual('text/plain', 'gzip')).toBe(false);
    expect(queryParameters('')).toBeUndefined();
  });
});

describe("mapping the function's answer", () => {
  it('uses statusCode, headers, cookies and a (base64) body', () => {
    const reply = httpReplyOf({
      statusCode: 201,
      headers: { 'Content-Type': 'text/plain', 'X-N': 3 },
      cookies: ['a=1', 'b=2'],
      body: Buffer.from('hi').toString('base64'),
      isBase64Encoded: true,
    });
    expect(reply.statusCode).toBe(201);
    expect(reply.headers).toEqual([
      ['content-type', 'text/plain'],
      ['x-n', '3'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
    expect(reply.body.toString()).toBe('hi');
  });

  it('makes any other answer a 200 JSON body (a string as it is)', () => {
    expect(httpReplyOf({ ok: true })).toMatchObject({ statusCode: 200, body: Buffer.from('{"ok":true}') });
    expect(httpReplyOf('hello').body.toString()).toBe('hello');
    expect(httpReplyOf(null).body.toString()).toBe('null');
  });

  it("answers API Gateway's 500 for a malformed response", () => {
    expect(httpReplyOf({ statusCode: 'ok' }).statusCode).toBe(500);
    expect(httpReplyOf({ statusCode: 200, headers: { a: { b: 1 } } }).statusCode).toBe(500);
    expect(httpReplyOf({ statusCode: 200, body: { not: 'a string' } }).statusCode).toBe(500);
    expect(JSON.parse(httpReplyOf({ statusCode: 42 }).body.toString())).toEqual({
      message: 'Internal Server Error',
    });
  });
});

/** A request signed by the AWS SDK's signer, as a client would send it. */
async function signed(
  request: {
    method: string;
    path: string;
    query?: Record<string, string>;
    body?: string;
    headers?: Record<string, string>;
  },
  options: { region?: string; service?: string; secret?: string; date?: Date } = {},
): Promise<SignedRequest> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: 'test', secretAccessKey: options.secret ?? 'test' },
    region: options.region ?? 'eu-west-1',
    service: options.service ?? 'execute-api',
    sha256: Sha256,
  });
  const result = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 8080,
      path: request.path,
      query: request.query ?? {},
      headers: { host: '127.0.0.1:8080', ...(request.headers ?? {}) },
      ...(request.body !== undefined ? { body: request.body } : {}),
    },
    { signingDate: options.date ?? new Date() },
  );
  const headers = Object.fromEntries(
    Object.entries(result.headers).map(([k, v]) => [k.toLowerCase(), String(v)]),
  );
  const rawQueryString = Object.entries(request.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return {
    method: request.method,
    rawPath: request.path,
    rawQueryString,
    headers,
    body: Buffer.from(request.body ?? ''),
  };
}

const secretOf = (key: string) => (key === 'test' ? 'test' : undefined);
const verify = (request: SignedRequest, region = 'eu-west-1') => verifySigV4(request, { region, secretOf });

describe('SigV4 verification (IAM-authorised routes)', () => {
  it('accepts what the AWS SDK signs: method, path, query, headers and body', async () => {
    const request = await signed({
      method: 'POST',
      path: '/admin/failover/us-east-1',
      query: { dry: 'true', note: 'a b' },
      body: '{"reason":"drill"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(await verify(request)).toEqual({ ok: true, accessKeyId: 'test' });
  });

  it('refuses a request changed after signing', async () => {
    const request = await signed({
      method: 'POST',
      path: '/admin/failover/us-east-1',
      body: '{"reason":"a"}',
    });
    const refused = (changed: SignedRequest) => verify(changed).then((verdict) => verdict.ok);
    expect(await refused({ ...request, body: Buffer.from('{"reason":"b"}') })).toBe(false);
    expect(await refused({ ...request, rawPath: '/admin/failover/eu-west-1' })).toBe(false);
    expect(await refused({ ...request, method: 'PUT' })).toBe(false);
    expect(await refused({ ...request, rawQueryString: 'x=1' })).toBe(false);
    expect(await refused({ ...request, headers: { ...request.headers, host: 'elsewhere' } })).toBe(false);
  });

  it('refuses no signature, another region or service, an unknown key, a wrong secret, an old date', async () => {
    const request = await signed({ method: 'GET', path: '/admin/regions' });
    const unsigned = Object.fromEntries(
      Object.entries(request.headers).filter(([name]) => name !== 'authorization'),
    );
    expect(await verify({ ...request, headers: unsigned })).toEqual({
      ok: false,
      reason: 'no Authorization header',
    });
    expect(await verify(request, 'us-east-1')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/region/),
    });
    expect(await verify(await signed({ method: 'GET', path: '/' }, { service: 'lambda' }))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/signed for lambda/),
    });
    expect(await verifySigV4(request, { region: 'eu-west-1', secretOf: () => undefined })).toMatchObject({
      ok: false,
      reason: 'the access key is not known',
    });
    expect(await verify(await signed({ method: 'GET', path: '/' }, { secret: 'wrong' }))).toMatchObject({
      ok: false,
      reason: 'the signature does not match the request',
    });
    const old = await signed({ method: 'GET', path: '/' }, { date: new Date(Date.now() - 20 * 60_000) });
    expect(await verify(old)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/more than 15 minutes/),
    });
  });
});

describe('serveHttpApi', () => {
  const route = (routeKey: string, authorizationType = 'NONE'): DiscoveredRoute => ({
    address: `aws_apigatewayv2_route.${routeKey}`,
    routeKey,
    authorizationType,
    integration: {
      address: 'aws_apigatewayv2_integration.i',
      function: { functionName: 'fn', qualifier: 'live' },
      payloadFormatVersion: '2.0',
      timeoutMs: 500,
    },
  });
  const api: DiscoveredApi = {
    address: 'aws_apigatewayv2_api.a',
    region: 'eu-west-1',
    name: 'api',
    id: 'abc123',
    stageName: '$default',
    routes: [
      route('GET /health'),
      route('POST /admin/{name}', 'AWS_IAM'),
      route('GET /slow'),
      route('GET /broken'),
    ],
  };
  const events: APIGatewayProxyEventV2[] = [];
  const access: AccessLogEntry[] = [];
  let server: Awaited<ReturnType<typeof serveHttpApi>>;

  beforeAll(async () => {
    server = await serveHttpApi({
      api,
      accountId: '123456789012',
      secretOf,
      callerOf: async (accessKey) => ({
        accessKey,
        accountId: '123456789012',
        callerId: 'AIDA1',
        cognitoIdentity: null,
        principalOrgId: null,
        userArn: 'arn:aws:iam::123456789012:user/dev',
        userId: 'AIDA1',
      }),
      onAccess: (entry) => access.push(entry),
      invoke: async (matched, event) => {
        const e = event as APIGatewayProxyEventV2 & {
          requestContext: { authorizer?: { iam?: { userArn: string } } };
        };
        events.push(e);
        if (matched.routeKey === 'GET /slow') await new Promise((r) => setTimeout(r, 1_000));
        if (matched.routeKey === 'GET /broken')
          return { ok: false, error: { errorType: 'TypeError', errorMessage: 'boom' }, durationMs: 1 };
        return {
          ok: true,
          durationMs: 1,
          payload: {
            statusCode: 200,
            body: JSON.stringify({
              route: e.routeKey,
              caller: e.requestContext.authorizer?.iam?.userArn ?? null,
              body: e.body ?? null,
            }),
          },
        };
      },
    });
  });
  afterAll(() => server.close());

  it('serves open routes, and answers 404, 500 and 503 as API Gateway does', async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ route: 'GET /health', caller: null, body: null });
    expect((await fetch(`${server.url}/nowhere`)).status).toBe(404);
    const broken = await fetch(`${server.url}/broken`);
    expect([broken.status, await broken.json()]).toEqual([500, { message: 'Internal Server Error' }]);
    expect((await fetch(`${server.url}/slow`)).status).toBe(503);
    expect(access.map((entry) => entry.status)).toEqual([200, 404, 500, 503]);
  });

  it('refuses an unsigned request to an IAM route with 403 Forbidden, never invoking the function', async () => {
    const before = events.length;
    const response = await fetch(`${server.url}/admin/x`, { method: 'POST', body: '{}' });
    expect([response.status, await response.json()]).toEqual([403, { message: 'Forbidden' }]);
    expect(events.length).toBe(before);
  });

  it('accepts `curl --aws-sigv4` with the emulator credentials and passes the IAM caller on', async () => {
    const curl = (user: string) =>
      run('curl', [
        '-s',
        '-w',
        '\\n%{http_code}',
        '--aws-sigv4',
        'aws:amz:eu-west-1:execute-api',
        '--user',
        user,
        '-H',
        'content-type: application/json',
        '-d',
        '{"reason":"drill"}',
        `${server.url}/admin/failover?dry=1`,
      ]).then(({ stdout }) => stdout.split('\n'));
    const [body, status] = await curl('test:test');
    expect(status).toBe('200');
    expect(JSON.parse(body as string)).toEqual({
      route: 'POST /admin/{name}',
      caller: 'arn:aws:iam::123456789012:user/dev',
      body: '{"reason":"drill"}',
    });
    expect((await curl('test:wrong'))[1]).toBe('403');
  });
});
