import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import type { DiscoveredFunction } from '../../scripts/lib/local-runtime/discover';
import {
  FunctionHost,
  type FunctionContext,
  type InvocationOutcome,
} from '../../scripts/lib/local-runtime/function-host';
import {
  archiveSha256,
  lambdaEnvironment,
  unpackArchive,
} from '../../scripts/lib/local-runtime/function-pool';
import { node22Binary, nodeVersion } from '../../scripts/lib/node22.cjs';

/** Node 22 when installed (npm test's pre-script installs it), else this node. */
const NODE = node22Binary(REPO_ROOT) ?? process.execPath;

const HANDLERS = `
let warm = 0;
exports.handler = async (event, context) => {
  warm++;
  switch (event.kind) {
    case 'info':
      return {
        node: process.version,
        env: Object.keys(process.env).sort(),
        cwd: process.cwd(),
        warm,
        requestId: context.awsRequestId,
        functionName: context.functionName,
        arn: context.invokedFunctionArn,
        remaining: context.getRemainingTimeInMillis(),
      };
    case 'log':
      console.log(JSON.stringify({ level: 'INFO', message: 'hello' }));
      console.error('to stderr');
      return 'logged';
    case 'throw': {
      const error = new TypeError('bad input');
      throw error;
    }
    case 'hang':
      return new Promise(() => undefined);
    case 'exit':
      process.exit(3);
    case 'crash':
      setTimeout(() => { throw new Error('escaped'); }, 1);
      return new Promise(() => undefined);
    case 'sdk':
      return typeof require('@aws-sdk/client-sqs').SQSClient;
    default:
      return { warm };
  }
};
exports.callback = (event, context, callback) => setTimeout(() => callback(null, { viaCallback: event.n * 2 }), 5);
`;

let root: string;
const hosts: FunctionHost[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'local-runtime-host-'));
  writeFileSync(join(root, 'index.js'), HANDLERS);
  writeFileSync(join(root, 'broken.js'), "throw new Error('init failed');");
});
afterAll(async () => {
  await Promise.all(hosts.map((host) => host.stop()));
  rmSync(root, { recursive: true, force: true });
});

const ENV = {
  AWS_REGION: 'eu-west-1',
  AWS_LAMBDA_FUNCTION_NAME: 'fn',
  TABLE: 'orders',
  NODE_PATH: join(REPO_ROOT, 'node_modules'),
};

function host(handler = 'index.handler', onOutput?: (line: string, stream: string) => void): FunctionHost {
  const made = new FunctionHost({
    node: NODE,
    taskRoot: root,
    handler,
    env: ENV,
    ...(onOutput ? { onOutput } : {}),
  });
  hosts.push(made);
  return made;
}

let requests = 0;
const context = (): FunctionContext & { awsRequestId: string } => ({
  awsRequestId: `req-${++requests}`,
  functionName: 'fn',
  functionVersion: '1',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:fn:live',
  memoryLimitInMB: '256',
  logGroupName: '/aws/lambda/fn',
  logStreamName: 'local/1',
});
const payload = (outcome: InvocationOutcome) => {
  if (!outcome.ok) throw new Error(`${outcome.error.errorType}: ${outcome.error.errorMessage}`);
  return outcome.payload as Record<string, unknown>;
};

describe('FunctionHost (one Lambda container)', () => {
  it('runs the handler on the Node binary given, in the task root, with exactly the environment given', async () => {
    const info = payload(await host().invoke({ kind: 'info' }, context(), 5_000));
    expect(info.node).toBe(nodeVersion(NODE));
    expect(info.env).toEqual(Object.keys(ENV).sort());
    expect(info.cwd).toBe(root);
    expect(info).toMatchObject({
      functionName: 'fn',
      arn: 'arn:aws:lambda:eu-west-1:123456789012:function:fn:live',
    });
    expect(info.requestId).toMatch(/^req-\d+$/);
    expect(info.remaining).toBeGreaterThan(4_000);
    expect(info.remaining).toBeLessThanOrEqual(5_000);
  });

  it('keeps one process warm across invocations, one invocation at a time', async () => {
    const warm = host();
    expect(payload(await warm.invoke({}, context(), 5_000)).warm).toBe(1);
    expect(payload(await warm.invoke({}, context(), 5_000)).warm).toBe(2);
    const first = warm.invoke({}, context(), 5_000);
    await expect(warm.invoke({}, context(), 5_000)).rejects.toThrow(/one invocation at a time/);
    await first;
  });

  it('reports a handler error by type and message, and the container serves on', async () => {
    const erring = host();
    const outcome = await erring.invoke({ kind: 'throw' }, context(), 5_000);
    expect(outcome).toMatchObject({
      ok: false,
      error: { errorType: 'TypeError', errorMessage: 'bad input' },
    });
    expect(payload(await erring.invoke({}, context(), 5_000)).warm).toBe(2);
  });

  it('kills a timed-out invocation and starts a fresh container for the next one', async () => {
    const slow = host();
    await slow.invoke({}, context(), 5_000);
    const outcome = await slow.invoke({ kind: 'hang' }, context(), 300);
    expect(outcome).toMatchObject({
      ok: false,
      error: { errorType: 'Sandbox.Timedout', errorMessage: 'Task timed out after 0.30 seconds' },
    });
    expect(payload(await slow.invoke({}, context(), 5_000)).warm).toBe(1);
  });

  it('reports a process that exits or crashes, then starts afresh', async () => {
    const fragile = host();
    expect(await fragile.invoke({ kind: 'exit' }, context(), 5_000)).toMatchObject({
      ok: false,
      error: { errorType: 'Runtime.ExitError' },
    });
    expect(payload(await fragile.invoke({}, context(), 5_000)).warm).toBe(1);
    expect(await fragile.invoke({ kind: 'crash' }, context(), 5_000)).toMatchObject({
      ok: false,
      error: { errorMessage: 'escaped' },
    });
    expect(payload(await fragile.invoke({}, context(), 5_000)).warm).toBe(1);
  });

  it('reports an init error on every invocation until the module loads', async () => {
    const broken = host('broken.handler');
    for (let i = 0; i < 2; i++) {
      expect(await broken.invoke({}, context(), 5_000)).toMatchObject({
        ok: false,
        error: { errorType: 'Error', errorMessage: 'init failed' },
      });
    }
    expect(await host('index.missing').invoke({}, context(), 5_000)).toMatchObject({
      ok: false,
      error: { errorType: 'Runtime.HandlerNotFound' },
    });
  });

  it('serves callback-style handlers', async () => {
    expect(payload(await host('index.callback').invoke({ n: 21 }, context(), 5_000))).toEqual({
      viaCallback: 42,
    });
  });

  it("passes the handler's stdout and stderr lines on, and resolves the runtime's SDK", async () => {
    const lines: string[] = [];
    const logging = host('index.handler', (line, stream) => lines.push(`${stream}: ${line}`));
    expect(await logging.invoke({ kind: 'log' }, context(), 5_000)).toMatchObject({
      ok: true,
      payload: 'logged',
    });
    expect(payload(await logging.invoke({ kind: 'sdk' }, context(), 5_000))).toBe('function');
    await new Promise((r) => setTimeout(r, 50));
    expect(lines).toEqual(['stdout: {"level":"INFO","message":"hello"}', 'stderr: to stderr']);
  });
});

describe('deployment archives', () => {
  it('unpacks an archive and checks it by its base64 SHA-256, as Lambda reports CodeSha256', () => {
    const dir = mkdtempSync(join(tmpdir(), 'local-runtime-unpack-'));
    try {
      const archive = zipSync({ 'index.js': strToU8('exports.handler = 1'), 'lib/a.js': strToU8('a') });
      expect(unpackArchive(archive, dir).sort()).toEqual(['index.js', 'lib/a.js']);
      expect(readFileSync(join(dir, 'lib', 'a.js'), 'utf8')).toBe('a');
      expect(archiveSha256(Buffer.from(archive))).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an entry that would land outside the task root', () => {
    const dir = mkdtempSync(join(tmpdir(), 'local-runtime-unpack-'));
    try {
      expect(() => unpackArchive(zipSync({ '../escape.js': strToU8('x') }), dir)).toThrow(/outside its root/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a function's environment", () => {
  const fn: DiscoveredFunction = {
    address: 'aws_lambda_function.f',
    region: 'eu-west-1',
    functionName: 'orders',
    handler: 'index.handler',
    filename: 'orders.zip',
    runtime: 'nodejs22.x',
    timeoutSec: 10,
    memoryMiB: 512,
    arn: 'arn:aws:lambda:eu-west-1:123456789012:function:orders',
  };

  it("is the stored settings, then Lambda's own variables and the emulator's endpoint, then overrides", () => {
    const env = lambdaEnvironment({
      stored: { TABLE: 'orders', AWS_REGION: 'mars-1', MODE: 'stored' },
      fn,
      version: '4',
      endpoint: 'http://127.0.0.1:5000',
      taskRoot: '/tmp/task',
      nodePath: '/repo/node_modules',
      overrides: { MODE: 'override' },
    });
    expect(env).toMatchObject({
      TABLE: 'orders',
      MODE: 'override',
      AWS_REGION: 'eu-west-1',
      AWS_DEFAULT_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:5000',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_LAMBDA_FUNCTION_NAME: 'orders',
      AWS_LAMBDA_FUNCTION_VERSION: '4',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      LAMBDA_TASK_ROOT: '/tmp/task',
      NODE_PATH: '/repo/node_modules',
      TZ: ':UTC',
    });
  });
});
