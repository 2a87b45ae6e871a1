import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Kill the command after this long. Default: 10 minutes. */
  readonly timeoutMs?: number;
  /** Exit codes that count as success. Default: [0]. */
  readonly okCodes?: readonly number[];
}

/** Runs a command to completion, capturing its output; rejects with that output on an unexpected exit code. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const okCodes = options.okCodes ?? [0];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? -1, stdout, stderr };
      if (okCodes.includes(result.code)) resolvePromise(result);
      else
        reject(
          new Error(
            `${command} ${args.join(' ')} (in ${options.cwd ?? process.cwd()}) exited ${code ?? signal}:\n${stderr || stdout}`.slice(
              0,
              20_000,
            ),
          ),
        );
    });
  });
}
