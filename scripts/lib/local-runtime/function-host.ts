/**
 * One Lambda "container" of a deployed function: a long-lived child process on the Node binary given (Node 22,
 * the `nodejs22.x` runtime's version) that loaded the function's handler from its unpacked archive and serves
 * one invocation at a time over IPC. A timeout kills the process (as Lambda ends a timed-out runtime); the
 * next invocation starts a fresh one, and so does one after a crash or a failed init.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Where the worker script is (plain CommonJS, so that any Node runs it). */
export const WORKER_SCRIPT = join(__dirname, 'function-worker.cjs');

/** Lambda's init phase limit. */
export const INIT_TIMEOUT_MS = 10_000;

export interface FunctionError {
  /** `Error`, `TypeError`, `Sandbox.Timedout`, `Runtime.ImportModuleError`, `Runtime.ExitError`... */
  readonly errorType: string;
  readonly errorMessage: string;
  /** Stack lines of a handler error (for the local log only). */
  readonly trace?: readonly string[];
}

export type InvocationOutcome =
  | { readonly ok: true; readonly payload: unknown; readonly durationMs: number }
  | { readonly ok: false; readonly error: FunctionError; readonly durationMs: number };

/** What an invocation's `context` says about the function (the rest is per invocation). */
export interface FunctionContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly logGroupName: string;
  readonly logStreamName: string;
}

export interface HostOptions {
  /** The Node binary (Node 22 for `nodejs22.x`). */
  readonly node: string;
  /** The unpacked deployment archive: the process's cwd (Lambda's /var/task). */
  readonly taskRoot: string;
  /** `<module path>.<export>`. */
  readonly handler: string;
  /** The process's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Each line the handler writes to stdout or stderr (its JSON logs). */
  readonly onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
}

type WorkerMessage =
  | { type: 'ready'; node: string }
  | { type: 'init-error'; error: FunctionError }
  | { type: 'result'; id: number; ok: true; payload?: string }
  | { type: 'result'; id: number; ok: false; init?: boolean; fatal?: boolean; error: FunctionError };

interface Pending {
  readonly id: number;
  readonly started: number;
  readonly settle: (outcome: InvocationOutcome) => void;
}

let nextInvocation = 0;

export class FunctionHost {
  private child?: ChildProcess;
  private ready?: Promise<FunctionError | undefined>;
  private pending?: Pending;
  private stopped = false;
  /** Set from the moment an invocation is accepted until it settles. */
  private reserved = false;
  /** The Node version the current process reported. */
  nodeVersion?: string;

  constructor(private readonly options: HostOptions) {}

  /** Whether an invocation is in flight (a host serves one at a time). */
  get busy(): boolean {
    return this.reserved;
  }

  /** Runs one invocation; `timeoutMs` counts from the moment the event is handed to a ready process. */
  async invoke(
    event: unknown,
    context: FunctionContext & { awsRequestId: string },
    timeoutMs: number,
  ): Promise<InvocationOutcome> {
    if (this.reserved) throw new Error('a function host serves one invocation at a time');
    if (this.stopped) throw new Error('the function host is stopped');
    this.reserved = true;
    try {
      return await this.run(event, context, timeoutMs);
    } finally {
      this.reserved = false;
    }
  }

  private async run(
    event: unknown,
    context: FunctionContext & { awsRequestId: string },
    timeoutMs: number,
  ): Promise<InvocationOutcome> {
    const started = Date.now();
    const initError = await this.start();
    if (initError) return { ok: false, error: initError, durationMs: Date.now() - started };
    const child = this.child as ChildProcess;
    const id = ++nextInvocation;
    return new Promise<InvocationOutcome>((resolveOutcome) => {
      const timer = setTimeout(() => {
        const seconds = (timeoutMs / 1000).toFixed(2);
        this.kill();
        settle({
          ok: false,
          error: { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${seconds} seconds` },
          durationMs: Date.now() - invokedAt,
        });
      }, timeoutMs);
      const settle = (outcome: InvocationOutcome) => {
        clearTimeout(timer);
        if (this.pending?.id === id) this.pending = undefined;
        resolveOutcome(outcome);
      };
      const invokedAt = Date.now();
      this.pending = { id, started: invokedAt, settle };
      child.send({
        type: 'invoke',
        id,
        event,
        context: { ...context, deadlineMs: invokedAt + timeoutMs },
      });
    });
  }

  /** Ends the process (an invocation in flight fails). */
  async stop(): Promise<void> {
    this.stopped = true;
    const pending = this.pending;
    this.kill();
    pending?.settle({
      ok: false,
      error: { errorType: 'Runtime.Stopped', errorMessage: 'the function host was stopped' },
      durationMs: Date.now() - pending.started,
    });
  }

  private kill(): void {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  /** Starts the process when none runs; answers its init error, if any. */
  private start(): Promise<FunctionError | undefined> {
    if (this.ready) return this.ready;
    const child = fork(WORKER_SCRIPT, [], {
      execPath: this.options.node,
      // Not the parent's flags (tsx's or jest's loaders mean nothing to another Node).
      execArgv: [],
      cwd: this.options.taskRoot,
      env: { ...this.options.env, LOCAL_LAMBDA_HANDLER: this.options.handler },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    for (const stream of ['stdout', 'stderr'] as const) {
      const readable = child[stream];
      if (!readable) continue;
      createInterface({ input: readable, crlfDelay: Infinity }).on('line', (line) =>
        this.options.onOutput?.(line, stream),
      );
    }
    const ready = new Promise<FunctionError | undefined>((resolveReady) => {
      const timer = setTimeout(() => {
        this.kill();
        resolveReady({
          errorType: 'Runtime.InitTimeout',
          errorMessage: `init took longer than ${INIT_TIMEOUT_MS / 1000} s`,
        });
      }, INIT_TIMEOUT_MS);
      child.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          this.nodeVersion = message.node;
          resolveReady(undefined);
        } else if (message.type === 'init-error') {
          clearTimeout(timer);
          // Lambda retries the init with the next invocation: so does a fresh process.
          if (this.child === child) this.kill();
          resolveReady(message.error);
        } else if (message.type === 'result') {
          const pending = this.pending;
          if (!pending || pending.id !== message.id) return;
          const durationMs = Date.now() - pending.started;
          if (message.ok) pending.settle({ ok: true, payload: parsePayload(message.payload), durationMs });
          else {
            // The process is ending (an error nothing caught, a failed init): the next invocation gets a new one.
            if ((message.fatal || message.init) && this.child === child) this.kill();
            pending.settle({ ok: false, error: message.error, durationMs });
          }
        }
      });
      child.on('error', (error) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        this.ready = undefined;
        resolveReady({
          errorType: 'Runtime.StartError',
          errorMessage: `could not start ${this.options.node}: ${error.message}`,
        });
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolveReady({
          errorType: 'Runtime.ExitError',
          errorMessage: `the runtime exited (${signal ?? `code ${code}`}) during init`,
        });
        // A process this host killed (a timeout) has already settled its invocation.
        if (this.child !== child) return;
        this.child = undefined;
        this.ready = undefined;
        const pending = this.pending;
        if (pending)
          pending.settle({
            ok: false,
            error: {
              errorType: 'Runtime.ExitError',
              errorMessage: `the runtime exited (${signal ?? `code ${code}`})`,
            },
            durationMs: Date.now() - pending.started,
          });
      });
    });
    this.ready = ready;
    return ready;
  }
}

function parsePayload(payload: string | undefined): unknown {
  if (payload === undefined) return null;
  return JSON.parse(payload) as unknown;
}
