import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A moto_server (the AWS emulator) on a loopback port. */
export interface MotoServer {
  readonly endpoint: string;
  readonly port: number;
  /** Forgets every resource (moto's reset API). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'moto_server (the AWS emulator) is not installed: install it with pip install "moto[server]"';

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitUntilServing(endpoint: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode} before serving`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`moto_server did not serve ${endpoint} within ${timeoutMs} ms`);
}

/**
 * Serves moto's app with one thread per connection, but one request at a time per group of services. moto's
 * own `moto_server` does not lock around a conditional write, so two concurrent conditional PutItems can both
 * succeed, and two concurrent ReceiveMessages can take the same message; DynamoDB and SQS guarantee they
 * cannot, and the estate relies on it. Services whose moto backends read or write each other's state share a
 * group: SQS, SNS, EventBridge and Scheduler deliver into each other and into Lambda; Lambda's event-source
 * mappings and functions read SQS queues and IAM roles; S3 notifications send to SQS, SNS and Lambda; Lambda
 * and EventBridge write logs. Requests of other services (DynamoDB, Route 53, KMS, EC2, ECS, API Gateway,
 * Secrets Manager...) run side by side, so no request waits unaccepted in the listen backlog (a client that
 * gives up on one there and retries has it served twice: "409 Alias already exists").
 * The service is the SigV4 credential scope's (header or presigned query); unsigned requests share one lock,
 * and moto's own API (reset) takes every lock. An SQS long poll waits between short receives, outside the
 * lock, so it holds up no other request of its group.
 */
const SERVER = String.raw`
import io, json, os, re, sys, threading, time
from urllib.parse import unquote
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
os.environ["MOTO_PORT"] = sys.argv[2]
app = DomainDispatcherApplication(create_backend_app)
SHARED = {"sqs", "sns", "events", "scheduler", "lambda", "iam", "sts", "s3", "logs"}
GROUPS = {**{service: "shared" for service in SHARED}, "dynamodbstreams": "dynamodb"}
SCOPE = re.compile(r"Credential=[^/,]*/[^/,]*/[^/,]*/([^/,]*)/")
guard = threading.Lock()
locks = {}

def group_of(environ):
    found = SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")) or SCOPE.search(unquote(environ.get("QUERY_STRING", "")))
    service = found.group(1) if found else ""
    return GROUPS.get(service, service)

def lock_of(group):
    with guard:
        return locks.setdefault(group, threading.Lock())

def locked(environ, start_response, lock):
    with lock:
        return list(app(environ, start_response))

def every_lock(environ, start_response):
    with guard:
        held = [locks[name] for name in sorted(locks)]
    for lock in held:
        lock.acquire()
    try:
        return list(app(environ, start_response))
    finally:
        for lock in reversed(held):
            lock.release()

def long_poll(environ, start_response, lock):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    request = json.loads(body or b"{}")
    deadline = time.monotonic() + float(request.get("WaitTimeSeconds") or 0)
    request["WaitTimeSeconds"] = 0
    body = json.dumps(request).encode()
    while True:
        answer = {}
        def capture(status, headers, exc_info=None):
            answer["start"] = (status, headers)
            return lambda data: None
        attempt = dict(environ, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        chunks = locked(attempt, capture, lock)
        status, headers = answer["start"]
        payload = b"".join(chunks)
        done = not status.startswith("200") or time.monotonic() >= deadline
        if not done:
            try:
                done = bool(json.loads(payload or b"{}").get("Messages"))
            except ValueError:
                done = True
        if done:
            start_response(status, headers)
            return [payload]
        time.sleep(0.1)

def serve(environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return every_lock(environ, start_response)
    lock = lock_of(group_of(environ))
    if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
        return long_poll(environ, start_response, lock)
    return locked(environ, start_response, lock)

run_simple(sys.argv[1], int(sys.argv[2]), serve, threaded=True)
`;

/**
 * Starts the AWS emulator on a free 127.0.0.1 port: moto's app served with a lock per group of services
 * (see SERVER) by the machine's Python (ESTATE_PYTHON, default python3), or the `moto_server` executable named by
 * ESTATE_MOTO_SERVER (or `command`).
 */
export async function startMoto(command = process.env.ESTATE_MOTO_SERVER): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = command
    ? spawn(command, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.env.ESTATE_PYTHON ?? 'python3', ['-c', SERVER, '127.0.0.1', String(port)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
  let stderr = '';
  // ESTATE_MOTO_LOG names a file that gets moto's request log (one line per request, with its status).
  const requestLog = process.env.ESTATE_MOTO_LOG;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
    if (requestLog) appendFileSync(requestLog, chunk);
  });
  const spawned = new Promise<void>((resolveSpawn, reject) => {
    child.once('spawn', resolveSpawn);
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error(INSTALL_HINT) : error),
    );
  });
  await spawned;
  try {
    await waitUntilServing(endpoint, child, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    if (/No module named '(moto|werkzeug)/.test(stderr)) throw new Error(INSTALL_HINT);
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return {
    endpoint,
    port,
    async reset() {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    stop: () =>
      new Promise<void>((resolveStop) => {
        if (child.exitCode !== null) return resolveStop();
        child.once('exit', () => resolveStop());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}
