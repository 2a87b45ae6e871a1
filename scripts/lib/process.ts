import { spawn, type ChildProcess } from 'node:child_process';

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
  /** Added to the error of a command SIGKILL ended: what it may have left behind, e.g. a lock. */
  readonly afterKillHint?: string;
  /**
   * After SIGKILL, how long to wait for the command to be seen ending before giving up on it (a process stuck
   * in the kernel, say). Default: 10 s.
   */
  readonly killWaitMs?: number;
  /**
   * After the command exits, how long its output may take to close before the processes it left behind,
   * which hold it open, are killed. Default: 5 s.
   */
  readonly drainMs?: number;
}

/** A command that exited with a code it should not have, was stopped by its timeout, or ended by a signal. */
export class CommandFailedError extends Error {
  constructor(
    message: string,
    /** What the command printed and how it ended (`code` -1 when a signal ended it). */
    readonly result: RunResult & { readonly signal: NodeJS.Signals | null },
    /** Whether the timeout stopped it. */
    readonly timedOut: boolean,
    /** Whether SIGKILL ended it (its grace period over): what it held, such as a state lock, may still be held. */
    readonly killed: boolean = false,
  ) {
    super(message);
    this.name = 'CommandFailedError';
  }
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_GRACE_MS = 60_000;
const DEFAULT_KILL_WAIT_MS = 10_000;
const DEFAULT_DRAIN_MS = 5_000;
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

// ---------------------------------------------------------------------------------------------------------
// Process groups: every command runs in a group of its own, and signals go to the whole group, so a wrapper
// (a shim, an ESTATE_TERRAFORM script) cannot keep them from Terraform and its provider plugins.
// ---------------------------------------------------------------------------------------------------------

/** Whether commands get a process group of their own (POSIX; Windows has no process groups to signal). */
const GROUPS = process.platform !== 'win32';

/** Groups of commands now running, by their leader's pid. */
const liveGroups = new Map<number, ChildProcess>();
/** The signal the parent got and passed on to its commands; later commands are then refused. */
let interruptedBy: NodeJS.Signals | undefined;
let interrupts = 0;

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    if (GROUPS) process.kill(-pid, signal);
    else child.kill(signal);
  } catch {
    // The group is gone already (ESRCH).
  }
}

/**
 * Ctrl-C (or SIGTERM) of the parent, passed on to every running command's group: the commands run in their
 * own groups, so the terminal's signal no longer reaches them. A third one kills them.
 */
function passOn(signal: NodeJS.Signals): void {
  interruptedBy ??= signal;
  interrupts++;
  for (const child of liveGroups.values()) signalGroup(child, interrupts >= 3 ? 'SIGKILL' : signal);
}
const onSigint = () => passOn('SIGINT');
const onSigterm = () => passOn('SIGTERM');
/** A parent exiting (an uncaught error, say) leaves no command running: each gets SIGINT. */
const onExit = () => liveGroups.forEach((child) => signalGroup(child, 'SIGINT'));

function track(child: ChildProcess): void {
  if (!GROUPS || child.pid === undefined) return;
  if (liveGroups.size === 0) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.on('exit', onExit);
  }
  liveGroups.set(child.pid, child);
}

function untrack(child: ChildProcess): void {
  if (child.pid === undefined || !liveGroups.delete(child.pid) || liveGroups.size > 0) return;
  // With no command running, the parent's signals do what they do by default again.
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigterm);
  process.off('exit', onExit);
}

/**
 * Runs a command to completion in a process group of its own, capturing its output (and streaming it line by
 * line to `onLine`); rejects with a CommandFailedError holding that output on an unexpected exit code. At the
 * timeout it sends SIGINT to the group, and SIGKILL only if the command has not ended `graceMs` later; it
 * settles at most `killWaitMs` after SIGKILL whatever happens. SIGINT or SIGTERM of the parent is passed on
 * to the group; the command then fails, whatever its exit code, and no later command starts.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const okCodes = options.okCodes ?? [0];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const killWaitMs = options.killWaitMs ?? DEFAULT_KILL_WAIT_MS;
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const where = options.cwd ?? process.cwd();
  const described = `${command} ${args.join(' ')} (in ${where})`;
  if (interruptedBy) {
    return Promise.reject(new Error(`${described} not started: this process got ${interruptedBy}`));
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: GROUPS,
    });
    track(child);
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
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const interruptsBefore = interrupts;
    const timers = new Set<NodeJS.Timeout>();
    const after = (ms: number, fn: () => void): NodeJS.Timeout => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, ms);
      timers.add(timer);
      return timer;
    };
    const cancel = (timer: NodeJS.Timeout | undefined) => {
      if (timer) clearTimeout(timer);
      if (timer) timers.delete(timer);
    };
    const finish = () => {
      settled = true;
      timers.forEach(clearTimeout);
      untrack(child);
    };

    const settle = (abandoned: boolean) => {
      if (settled) return;
      finish();
      if (abandoned) {
        child.stdout.destroy();
        child.stderr.destroy();
      }
      lines.stdout.end();
      lines.stderr.end();
      const code = exited?.code ?? null;
      const signal = exited?.signal ?? (killed ? 'SIGKILL' : null);
      const result = { code: code ?? -1, stdout, stderr, signal };
      const interrupted = interrupts > interruptsBefore ? interruptedBy : undefined;
      if (!timedOut && !interrupted && okCodes.includes(result.code)) {
        resolvePromise({ code: result.code, stdout, stderr });
        return;
      }
      const ending = signal ? `was ended by ${signal}` : `exited ${code}`;
      const unseen = exited ? '' : ` (not seen to end ${formatDuration(killWaitMs)} later)`;
      const stopped = `timed out after ${formatDuration(timeoutMs)}`;
      let how = ending;
      if (timedOut && killed) {
        how = `${stopped}: SIGINT sent, still running ${formatDuration(graceMs)} later, ended by SIGKILL${unseen}`;
      } else if (timedOut) how = `${stopped}: stopped by SIGINT (then ${ending})`;
      else if (interrupted)
        how = `was interrupted: this process got ${interrupted} and passed it on (then ${ending})`;
      if (killed && options.afterKillHint) how += `; ${options.afterKillHint}`;
      const output = tail(stderr.trim() || stdout.trim(), MAX_OUTPUT_CHARS);
      const message = `${described} ${how}${output ? `:\n${output}` : ''}`;
      reject(new CommandFailedError(message, result, timedOut, killed));
    };

    let killTimer: NodeJS.Timeout | undefined;
    const timeoutTimer = after(timeoutMs, () => {
      timedOut = true;
      signalGroup(child, 'SIGINT');
      killTimer = after(graceMs, () => {
        killed = true;
        signalGroup(child, 'SIGKILL');
        after(killWaitMs, () => settle(true));
      });
    });

    child.on('error', (error) => {
      if (settled) return;
      finish();
      reject(new Error(`could not run ${described}: ${error.message}`));
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      exited = { code, signal };
      cancel(timeoutTimer);
      cancel(killTimer);
      // Output still open after this long is held by processes the command left behind: they end with it.
      after(drainMs, () => {
        signalGroup(child, 'SIGKILL');
        settle(true);
      });
    });
    child.on('close', () => settle(false));
  });
}
