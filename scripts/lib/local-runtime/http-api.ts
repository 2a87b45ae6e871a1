/**
 * Serves a deployed HTTP API on a loopback port: routes as discovered, each request handed to the mapped
 * function as API Gateway's payload 2.0 event, the answer mapped back. IAM-authorised routes check the SigV4
 * signature as API Gateway would (service `execute-api`, the API's region) and pass the caller in
 * `requestContext.authorizer.iam`; JWT and custom authorisers are not served (403).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { DiscoveredApi, DiscoveredRoute } from './discover';
import type { InvocationOutcome } from './function-host';
import {
  GATEWAY_REPLIES,
  httpApiEvent,
  httpReplyOf,
  joinHeaders,
  type HttpReply,
  type IamCaller,
} from './http-event';
import { RouteTable } from './http-routes';
import { verifySigV4 } from './sigv4';
import { listenOnLoopback, readBody } from './loopback';

/** Lambda's limit on a synchronous request (API Gateway's own is 10 MB). */
export const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export interface AccessLogEntry {
  readonly apiId: string;
  readonly region: string;
  readonly requestId: string;
  readonly routeKey: string;
  readonly status: number;
  readonly latencyMs: number;
  /** Why API Gateway answered itself (no route, refused signature, function error), never a value. */
  readonly error?: string;
}

export interface HttpApiOptions {
  readonly api: DiscoveredApi;
  readonly accountId: string;
  /** Invokes a route's function with its event. */
  readonly invoke: (route: DiscoveredRoute, event: unknown) => Promise<InvocationOutcome>;
  /** The secret of an access key (the emulator's: `test` / `test`). */
  readonly secretOf: (accessKeyId: string) => string | undefined;
  /** The caller behind a verified access key, as API Gateway resolves it. */
  readonly callerOf: (accessKeyId: string, sessionToken?: string) => Promise<IamCaller>;
  readonly onAccess?: (entry: AccessLogEntry) => void;
  /** Default 0: a free port. */
  readonly port?: number;
}

export interface ServedApi {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function pairs(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

function write(response: ServerResponse, reply: HttpReply, requestId: string): void {
  const headers: Record<string, string | string[]> = { 'apigw-requestid': requestId };
  for (const [name, value] of reply.headers) {
    const existing = headers[name];
    headers[name] =
      existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  headers['content-length'] = String(reply.body.length);
  response.writeHead(reply.statusCode, headers);
  response.end(reply.body);
}

export async function serveHttpApi(options: HttpApiOptions): Promise<ServedApi> {
  const { api } = options;
  const table = new RouteTable(api.routes);
  const prefix = api.stageName === '$default' ? '' : `/${api.stageName}`;

  const handle = async (
    request: IncomingMessage,
  ): Promise<{ reply: HttpReply; routeKey: string; error?: string }> => {
    const url = request.url ?? '/';
    const at = url.indexOf('?');
    const rawPath = at < 0 ? url : url.slice(0, at);
    const rawQueryString = at < 0 ? '' : url.slice(at + 1);
    const body = await readBody(request, MAX_REQUEST_BYTES);
    if (!body) return { reply: GATEWAY_REPLIES.tooLarge(), routeKey: '-', error: 'request body over 6 MB' };
    if (prefix && rawPath !== prefix && !rawPath.startsWith(`${prefix}/`))
      return { reply: GATEWAY_REPLIES.notFound(), routeKey: '-', error: 'not under the stage' };
    const method = (request.method ?? 'GET').toUpperCase();
    const match = table.select(method, rawPath.slice(prefix.length) || '/');
    if (!match) return { reply: GATEWAY_REPLIES.notFound(), routeKey: '-', error: 'no route' };
    const route = match.route;
    const headerPairs = pairs(request.rawHeaders);
    let authorizer: { iam: IamCaller } | undefined;
    if (route.authorizationType === 'AWS_IAM') {
      const verdict = await verifySigV4(
        { method, rawPath, rawQueryString, headers: joinHeaders(headerPairs), body },
        { region: api.region, secretOf: options.secretOf },
      );
      if (!verdict.ok)
        return { reply: GATEWAY_REPLIES.forbidden(), routeKey: route.routeKey, error: verdict.reason };
      authorizer = { iam: await options.callerOf(verdict.accessKeyId, verdict.sessionToken) };
    } else if (route.authorizationType !== 'NONE') {
      return {
        reply: GATEWAY_REPLIES.forbidden(),
        routeKey: route.routeKey,
        error: `${route.authorizationType} authorisation is not served locally`,
      };
    }
    if (route.integration.payloadFormatVersion !== '2.0')
      return {
        reply: GATEWAY_REPLIES.internalError(),
        routeKey: route.routeKey,
        error: `payload format ${route.integration.payloadFormatVersion} is not served locally (2.0 is)`,
      };
    const requestId = (request as IncomingMessage & { requestId?: string }).requestId ?? randomUUID();
    const event = httpApiEvent(
      {
        method,
        rawPath,
        rawQueryString,
        headers: headerPairs,
        body,
        sourceIp: (request.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
      },
      {
        routeKey: route.routeKey,
        ...(match.pathParameters ? { pathParameters: match.pathParameters } : {}),
        accountId: options.accountId,
        apiId: api.id,
        stage: api.stageName,
        requestId,
        timeEpoch: Date.now(),
        ...(authorizer ? { authorizer } : {}),
      },
    );
    // API Gateway waits for the integration's timeout; the function runs on to its own.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolveTimeout) => {
      timer = setTimeout(() => resolveTimeout('timeout'), route.integration.timeoutMs);
    });
    const outcome = await Promise.race([options.invoke(route, event), timedOut]).finally(() =>
      clearTimeout(timer),
    );
    if (outcome === 'timeout')
      return { reply: GATEWAY_REPLIES.unavailable(), routeKey: route.routeKey, error: 'integration timeout' };
    if (!outcome.ok)
      return {
        reply: GATEWAY_REPLIES.internalError(),
        routeKey: route.routeKey,
        error: `function error (${outcome.error.errorType})`,
      };
    return { reply: httpReplyOf(outcome.payload), routeKey: route.routeKey };
  };

  const server: Server = createServer((request, response) => {
    const started = Date.now();
    const requestId = randomUUID();
    (request as IncomingMessage & { requestId?: string }).requestId = requestId;
    handle(request)
      .catch((error: Error) => ({
        reply: GATEWAY_REPLIES.internalError(),
        routeKey: '-',
        error: error.message,
      }))
      .then(({ reply, routeKey, error }) => {
        write(response, reply, requestId);
        options.onAccess?.({
          apiId: api.id,
          region: api.region,
          requestId,
          routeKey,
          status: reply.statusCode,
          latencyMs: Date.now() - started,
          ...(error ? { error } : {}),
        });
      });
  });
  const port = await listenOnLoopback(server, options.port);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
