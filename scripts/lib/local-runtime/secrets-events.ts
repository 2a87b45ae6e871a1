/**
 * A forwarding proxy for the Secrets Manager API in front of the emulator, which records no CloudTrail: every
 * request goes to the emulator unchanged (signature included) and its answer comes back unchanged; after a
 * successful write call (CreateSecret, PutSecretValue, UpdateSecret, TagResource, DeleteSecret, ... anything
 * but Get/List/Describe) the CloudTrail-shaped event goes on the local EventBridge of the call's region, where
 * the replicator's rule picks it up. Point a client at it with `endpoint` or AWS_ENDPOINT_URL_SECRETS_MANAGER.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as forward, type IncomingMessage, type Server } from 'node:http';
import { cloudTrailEvent, isReadOnlyCall, type CallerIdentity } from './cloudtrail';
import type { BusEvent } from './event-rules';
import { MAX_REQUEST_BYTES } from './http-api';
import { listenOnLoopback, readBody } from './loopback';

export interface SecretsProxyOptions {
  /** The emulator's endpoint (`http://127.0.0.1:<port>`). */
  readonly endpoint: string;
  /** Puts an event on the local bus of its region. */
  readonly emit: (event: BusEvent) => Promise<void>;
  /** The identity behind an access key (STS GetCallerIdentity). */
  readonly callerOf: (accessKeyId: string) => Promise<CallerIdentity>;
  /** The region of an unsigned request. */
  readonly defaultRegion: string;
  readonly onError?: (error: Error) => void;
  /** Default 0: a free port. */
  readonly port?: number;
}

export interface SecretsProxy {
  readonly url: string;
  /** Events emitted so far. */
  readonly emitted: () => number;
  close(): Promise<void>;
}

/** Region and access key from a SigV4 Authorization header's credential scope. */
export function credentialScope(
  authorization: string | undefined,
): { accessKeyId: string; region: string } | undefined {
  const match = /Credential=([^/,\s]+)\/\d{8}\/([a-z0-9-]+)\/[^/,\s]+\/aws4_request/.exec(
    authorization ?? '',
  );
  return match ? { accessKeyId: match[1] as string, region: match[2] as string } : undefined;
}

const parseJson = (body: Buffer): unknown => {
  try {
    return body.length > 0 ? (JSON.parse(body.toString('utf8')) as unknown) : {};
  } catch {
    return undefined;
  }
};

export async function startSecretsProxy(options: SecretsProxyOptions): Promise<SecretsProxy> {
  const target = new URL(options.endpoint);
  const pending = new Set<Promise<void>>();
  let emitted = 0;

  const record = async (
    request: IncomingMessage,
    requestBody: Buffer,
    status: number,
    responseBody: Buffer,
    requestId: string,
  ) => {
    const targetHeader = String(request.headers['x-amz-target'] ?? '');
    const call = /^secretsmanager\.([A-Za-z]+)$/.exec(targetHeader)?.[1];
    if (!call || isReadOnlyCall(call) || status < 200 || status >= 300) return;
    const scope = credentialScope(request.headers.authorization);
    const caller = await options.callerOf(scope?.accessKeyId ?? 'anonymous');
    const event = cloudTrailEvent({
      eventName: call,
      region: scope?.region ?? options.defaultRegion,
      request: parseJson(requestBody),
      response: parseJson(responseBody),
      caller,
      sourceIp: (request.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
      userAgent: String(request.headers['user-agent'] ?? ''),
      requestId,
      at: new Date(),
    });
    await options.emit(event);
    emitted++;
  };

  const server: Server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request, MAX_REQUEST_BYTES);
      if (!body) {
        response.writeHead(413, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ message: 'request body over 6 MB' }));
        return;
      }
      const upstream = forward(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          method: request.method,
          path: request.url,
          // Unchanged, Host included: the signature covers it.
          headers: request.headers,
        },
        (answer) => {
          void readBody(answer, Number.MAX_SAFE_INTEGER).then((answerBody = Buffer.alloc(0)) => {
            response.writeHead(answer.statusCode ?? 502, answer.headers);
            response.end(answerBody);
            const requestId = String(
              answer.headers['x-amzn-requestid'] ?? answer.headers['x-amz-request-id'] ?? '',
            );
            const work = record(request, body, answer.statusCode ?? 0, answerBody, requestId || randomUUID())
              .catch((error: Error) => options.onError?.(error))
              .finally(() => pending.delete(work));
            pending.add(work);
          });
        },
      );
      upstream.on('error', (error) => {
        options.onError?.(error);
        if (!response.headersSent) response.writeHead(502, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ message: 'the emulator did not answer' }));
      });
      upstream.end(body);
    })().catch((error: Error) => {
      options.onError?.(error);
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  const port = await listenOnLoopback(server, options.port);
  return {
    url: `http://127.0.0.1:${port}`,
    emitted: () => emitted,
    close: async () => {
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
      await Promise.all([...pending]);
    },
  };
}
