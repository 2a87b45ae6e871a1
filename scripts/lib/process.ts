import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export type OutputStream = 'stdout' | 'stderr';

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Stop the command after this long: SIGINT first, SIGKILL after `graceMs`. Default: 10 minutes. */
  readonly timeoutMs?: number;
  /**
   * How long a command stopped by the timeout gets to end on its own after SIGINT (Terraform stops cleanly
   * and releases its state lock) before SIGKILL. Default: 60 seconds.
   */
  readonly graceMs?: number;
  /** Exit codes that count as success. Default: [0]. */
  readonly okCodes?: readonly number[];
  /** Called with each line of output as it arrives (without its line break); output is captured all the same. */
  readonly onLine?: (line: string, stream: OutputStream) => void;
}

/** A command that exited with a code it should not have, was stopped by its timeout, or ended by a signal. */
export class CommandFailedError extends Error {
  constructor(
    message: string,
    /** What the command printed and how it ended (`code` -1 when a signal ended it). */
    readonly result: RunResult & { readonly signal: NodeJS.Signals | null },
    /** Whether the timeout stopped it. */
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'CommandFailedError';
  }
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_GRACE_MS = 60_000;
/** How much of a failed command's output its error message quotes: the end, where the error is. */
const MAX_OUTPUT_CHARS = 20_000;

const tail = (text: string, max: number): string =>
  text.length <= max ? text : `...${text.slice(text.length - max)}`;

/** 90 s, 2 min, 30 min: a duration as people read it. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1_000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** Splits a stream's chunks into lines, holding back an unfinished last line until more arrives or it ends. */
function lineSplitter(emit: (line: string) => void): { push(chunk: string): void; end(): void } {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      lines.forEach((line) => emit(line.replace(/\r$/, '')));
    },
    end() {
      if (pending) emit(pending.replace(/\r$/, ''));
      pending = '';
    },
  };
}

/**
 * An `onLine` that writes each line to the parent's stdout or stderr behind a prefix, e.g. `[dev-global] `.
 */
export function prefixLines(
  prefix: string,
  out: { write(text: string): unknown } = process.stdout,
  err: { write(text: string): unknown } = process.stderr,
): (line: string, stream: OutputStream) => void {
  return (line, stream) => (stream === 'stdout' ? out : err).write(`${prefix}${line}\n`);
}

/**
 * Runs a command to completion, capturing its output (and streaming it line by line to `onLine`); rejects
 * with a CommandFailedError holding that output on an unexpected exit code. At the timeout it sends SIGINT,
 * and SIGKILL only if the command has not ended `graceMs` later.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const okCodes = options.okCodes ?? [0];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const where = options.cwd ?? process.cwd();
  const described = `${command} ${args.join(' ')} (in ${where})`;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const lines = {
      stdout: lineSplitter((line) => options.onLine?.(line, 'stdout')),
      stderr: lineSplitter((line) => options.onLine?.(line, 'stderr')),
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      lines.stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      lines.stderr.push(chunk);
    });

    let timedOut = false;
    let killed = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGINT');
      killTimer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, graceMs);
    }, timeoutMs);
    const stopTimers = () => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
    };

    child.on('error', (error) => {
      stopTimers();
      reject(new Error(`could not run ${described}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      stopTimers();
      lines.stdout.end();
      lines.stderr.end();
      const result = { code: code ?? -1, stdout, stderr, signal };
      if (!timedOut && okCodes.includes(result.code)) {
        resolvePromise({ code: result.code, stdout, stderr });
        return;
      }
      const ending = signal ? `was ended by ${signal}` : `exited ${code}`;
      const how = !timedOut
        ? ending
        : killed
          ? `timed out after ${formatDuration(timeoutMs)}: SIGINT sent, still running ${formatDuration(graceMs)} later, ended by SIGKILL`
          : `timed out after ${formatDuration(timeoutMs)}: stopped by SIGINT (then ${ending})`;
      const output = tail(stderr.trim() || stdout.trim(), MAX_OUTPUT_CHARS);
      reject(new CommandFailedError(`${described} ${how}${output ? `:\n${output}` : ''}`, result, timedOut));
    });
  });
}
