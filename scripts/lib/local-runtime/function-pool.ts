/**
 * A deployed function run as Lambda runs it: its archive (checked against the emulator's CodeSha256) unpacked
 * once, the environment the emulator stores for it, and up to `concurrency` hosts (containers) each serving
 * one invocation at a time; further invocations wait their turn.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { unzipSync } from 'fflate';
import { REPO_ROOT } from '../../../modules/bundled-function/bundle';
import { emulatorEnv } from '../load-bundle';
import type { DiscoveredFunction } from './discover';
import { FunctionHost, type FunctionError, type InvocationOutcome } from './function-host';

/** Lambda's limit on a synchronous response. */
export const MAX_RESPONSE_BYTES = 6 * 1024 * 1024;

/** The deployment archive's SHA-256 as Lambda reports it (base64). */
export const archiveSha256 = (archive: Buffer): string =>
  createHash('sha256').update(archive).digest('base64');

/**
 * Unpacks a zip into `dir`, refusing entries that would land outside it (absolute paths, `..`): a deployment
 * archive is input like any other.
 */
export function unpackArchive(archive: Uint8Array, dir: string): string[] {
  const entries = unzipSync(archive);
  const written: string[] = [];
  for (const [name, data] of Object.entries(entries)) {
    const path = normalize(name);
    if (isAbsolute(path) || path === '..' || path.startsWith(`..${sep}`))
      throw new Error(`the archive holds an entry outside its root: ${JSON.stringify(name.slice(0, 100))}`);
    if (name.endsWith('/')) continue;
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, data);
    written.push(path);
  }
  return written;
}

/**
 * The environment Lambda gives a function's process: what the emulator stores for it, then the variables the
 * runtime defines (which a function cannot override), the emulator's endpoint and credentials, and
 * `overrides` (stand-ins for what the emulator cannot be).
 */
export function lambdaEnvironment(input: {
  readonly stored: Readonly<Record<string, string>>;
  readonly fn: DiscoveredFunction;
  readonly version: string;
  readonly endpoint: string;
  readonly taskRoot: string;
  readonly nodePath: string;
  readonly overrides?: Readonly<Record<string, string>>;
}): Record<string, string> {
  const { fn } = input;
  return {
    ...input.stored,
    AWS_LAMBDA_FUNCTION_NAME: fn.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: input.version,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMiB),
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.functionName}`,
    AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
    LAMBDA_TASK_ROOT: input.taskRoot,
    // The modules the runtime provides (the AWS SDK v3, left out of the bundles): the repository's pinned copy.
    NODE_PATH: input.nodePath,
    TZ: ':UTC',
    LANG: 'en_US.UTF-8',
    PATH: '/usr/local/bin:/usr/bin:/bin',
    ...emulatorEnv(input.endpoint, fn.region),
    ...(input.overrides ?? {}),
  };
}

export interface PoolOptions {
  readonly fn: DiscoveredFunction;
  /** The stack's directory (the archive's `filename` is relative to it). */
  readonly stackDir: string;
  readonly endpoint: string;
  /** The Node binary the hosts run. */
  readonly node: string;
  /** Hosts at most (a host per concurrent invocation). */
  readonly concurrency: number;
  /** Settings over the stored ones. */
  readonly overrides?: Readonly<Record<string, string>>;
  /** Where runtime-provided modules resolve from. Default: the repository's node_modules. */
  readonly nodePath?: string;
  readonly onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** The Lambda client reading the stored configuration. Default: one for the endpoint. */
  readonly lambda?: LambdaClient;
}

/** A function's invocations so far, for a status view. */
export interface FunctionStats {
  readonly functionName: string;
  readonly region: string;
  invocations: number;
  errors: number;
  inFlight: number;
  waiting: number;
  hosts: number;
  lastError?: FunctionError & { readonly at: number };
  lastDurationMs?: number;
}

export class FunctionPool {
  private readonly hosts: FunctionHost[] = [];
  private readonly idle: FunctionHost[] = [];
  private readonly queue: Array<(host: FunctionHost) => void> = [];
  private stopped = false;
  readonly stats: FunctionStats;

  private constructor(
    private readonly options: PoolOptions,
    private readonly taskRoot: string,
    private readonly env: Readonly<Record<string, string>>,
    /** The version the emulator stores for the function (the alias's, when one is invoked). */
    readonly version: string,
    readonly stored: Readonly<Record<string, string>>,
  ) {
    this.stats = {
      functionName: options.fn.functionName,
      region: options.fn.region,
      invocations: 0,
      errors: 0,
      inFlight: 0,
      waiting: 0,
      hosts: 0,
    };
  }

  /**
   * Reads the function's stored configuration, checks its code is the archive beside the stack, and unpacks
   * that archive. Throws when the function is missing or runs other code.
   */
  static async start(options: PoolOptions, qualifier?: string): Promise<FunctionPool> {
    const { fn } = options;
    const lambda =
      options.lambda ??
      new LambdaClient({
        region: fn.region,
        endpoint: options.endpoint,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
    const stored = await lambda.send(
      new GetFunctionConfigurationCommand({
        FunctionName: fn.functionName,
        ...(qualifier ? { Qualifier: qualifier } : {}),
      }),
    );
    const archivePath = join(options.stackDir, fn.filename);
    const archive = readFileSync(archivePath);
    const sha = archiveSha256(archive);
    if (stored.CodeSha256 !== sha)
      throw new Error(
        `${archivePath} (sha ${sha}) is not what ${fn.functionName} runs (${stored.CodeSha256 ?? 'no code'})`,
      );
    const taskRoot = mkdtempSync(
      join(tmpdir(), `estate-lambda-${fn.functionName.replace(/[^A-Za-z0-9_-]/g, '_')}-`),
    );
    try {
      unpackArchive(archive, taskRoot);
    } catch (error) {
      rmSync(taskRoot, { recursive: true, force: true });
      throw error;
    }
    const version = stored.Version ?? '$LATEST';
    const storedEnv = stored.Environment?.Variables ?? {};
    const env = lambdaEnvironment({
      stored: storedEnv,
      fn,
      version,
      endpoint: options.endpoint,
      taskRoot,
      nodePath: options.nodePath ?? join(REPO_ROOT, 'node_modules'),
      overrides: options.overrides,
    });
    return new FunctionPool(options, taskRoot, env, version, storedEnv);
  }

  get functionName(): string {
    return this.options.fn.functionName;
  }

  /** Invokes the function once (waiting for a free host), as `qualifier` when given. */
  async invoke(event: unknown, qualifier?: string): Promise<InvocationOutcome> {
    if (this.stopped) throw new Error(`${this.functionName} is stopped`);
    const host = await this.acquire();
    const { fn } = this.options;
    this.stats.inFlight++;
    try {
      const outcome = await host.invoke(
        event,
        {
          awsRequestId: randomUUID(),
          functionName: fn.functionName,
          functionVersion: this.version,
          invokedFunctionArn: qualifier ? `${fn.arn}:${qualifier}` : fn.arn,
          memoryLimitInMB: String(fn.memoryMiB),
          logGroupName: `/aws/lambda/${fn.functionName}`,
          logStreamName: `local/${this.hosts.indexOf(host) + 1}`,
        },
        fn.timeoutSec * 1000,
      );
      const checked = outcome.ok ? sizeChecked(outcome) : outcome;
      this.stats.invocations++;
      this.stats.lastDurationMs = checked.durationMs;
      if (!checked.ok) {
        this.stats.errors++;
        this.stats.lastError = { ...checked.error, at: Date.now() };
      }
      return checked;
    } finally {
      this.stats.inFlight--;
      this.release(host);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.hosts.map((host) => host.stop()));
    rmSync(this.taskRoot, { recursive: true, force: true });
  }

  private acquire(): Promise<FunctionHost> {
    const free = this.idle.pop();
    if (free) return Promise.resolve(free);
    if (this.hosts.length < Math.max(1, this.options.concurrency)) {
      const host = new FunctionHost({
        node: this.options.node,
        taskRoot: this.taskRoot,
        handler: this.options.fn.handler,
        env: this.env,
        onOutput: this.options.onOutput,
      });
      this.hosts.push(host);
      this.stats.hosts = this.hosts.length;
      return Promise.resolve(host);
    }
    this.stats.waiting++;
    return new Promise((resolveHost) =>
      this.queue.push((host) => {
        this.stats.waiting--;
        resolveHost(host);
      }),
    );
  }

  private release(host: FunctionHost): void {
    const next = this.queue.shift();
    if (next) next(host);
    else this.idle.push(host);
  }
}

function sizeChecked(outcome: Extract<InvocationOutcome, { ok: true }>): InvocationOutcome {
  const bytes = Buffer.byteLength(JSON.stringify(outcome.payload ?? null));
  if (bytes <= MAX_RESPONSE_BYTES) return outcome;
  return {
    ok: false,
    error: {
      errorType: 'Function.ResponseSizeTooLarge',
      errorMessage: `Response payload size (${bytes} bytes) exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
    },
    durationMs: outcome.durationMs,
  };
}
