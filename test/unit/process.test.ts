import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandFailedError, prefixLines, run, type OutputStream } from '../../scripts/lib/process';

/** `node -e <script>`: the child scripts below install their SIGINT handler before anything else. */
const node = (script: string) => [process.execPath, ['-e', script]] as const;

// Long enough for a child to start and trap SIGINT even on a busy machine; the grace period stays short.
const TIMEOUT_MS = 3_000;
const GRACE_MS = 500;

async function failure(promise: Promise<unknown>): Promise<CommandFailedError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CommandFailedError) return error;
    throw error;
  }
  throw new Error('expected the command to fail');
}

describe('run', () => {
  it('passes each line to onLine as it arrives and still captures the whole output', async () => {
    const seen: Array<[OutputStream, string]> = [];
    const [command, args] = node(`
      process.stdout.write('one\\ntw');
      setTimeout(() => {
        process.stdout.write('o\\r\\nthree');
        process.stderr.write('oops\\n');
      }, 50);
    `);
    const result = await run(command, args, { onLine: (line, stream) => seen.push([stream, line]) });
    expect(seen.filter(([s]) => s === 'stdout').map(([, line]) => line)).toEqual(['one', 'two', 'three']);
    expect(seen.filter(([s]) => s === 'stderr').map(([, line]) => line)).toEqual(['oops']);
    expect(result).toEqual({ code: 0, stdout: 'one\ntwo\r\nthree', stderr: 'oops\n' });
  });

  it('accepts the exit codes it is told to and refuses others with the output', async () => {
    const [command, args] = node('process.exitCode = 2');
    await expect(run(command, args, { okCodes: [0, 2] })).resolves.toMatchObject({ code: 2 });
    const [failing, failingArgs] = node("console.error('it broke'); process.exit(3)");
    const error = await failure(run(failing, failingArgs));
    expect(error.message).toMatch(/exited 3:\nit broke$/);
    expect(error.timedOut).toBe(false);
    expect(error.result).toMatchObject({ code: 3, signal: null, stderr: 'it broke\n' });
  });

  it('says a command could not be started', async () => {
    await expect(run('/nonexistent/estate-command', [])).rejects.toThrow(
      'could not run /nonexistent/estate-command',
    );
  });

  it('at the timeout sends SIGINT and lets a command that stops cleanly end on its own', async () => {
    const [command, args] = node(`
      process.on('SIGINT', () => { console.log('released the lock'); process.exit(0); });
      setInterval(() => undefined, 1000);
    `);
    const error = await failure(run(command, args, { timeoutMs: TIMEOUT_MS, graceMs: 60_000 }));
    expect(error.timedOut).toBe(true);
    expect(error.result).toMatchObject({ code: 0, signal: null, stdout: 'released the lock\n' });
    expect(error.message).toContain('timed out after 3 s: stopped by SIGINT (then exited 0)');
    expect(error.message).not.toContain('SIGKILL');
  });

  it('ends a command that ignores SIGINT with SIGKILL once the grace period is over', async () => {
    const [command, args] = node(`
      process.on('SIGINT', () => console.log('ignoring SIGINT'));
      setInterval(() => undefined, 1000);
    `);
    const error = await failure(run(command, args, { timeoutMs: TIMEOUT_MS, graceMs: GRACE_MS }));
    expect(error.timedOut).toBe(true);
    expect(error.result).toMatchObject({ signal: 'SIGKILL', stdout: 'ignoring SIGINT\n' });
    expect(error.message).toContain(
      'timed out after 3 s: SIGINT sent, still running 500 ms later, ended by SIGKILL',
    );
  });
});

/**
 * A wrapper as a shim or an ESTATE_TERRAFORM script is: bash running the real command as its child, without
 * exec, trapping SIGINT (so it waits for its child before acting on it). The child, Terraform's stand-in,
 * writes its pid to READY once it handles SIGINT, and on SIGINT writes GOT and exits, unless IGNORE is set.
 */
function wrapper(): { script: string; ready: string; got: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'estate-wrapper-'));
  const child = `
    const fs = require('fs');
    process.on('SIGINT', () => {
      fs.writeFileSync(process.env.GOT, 'SIGINT');
      if (!process.env.IGNORE) process.exit(130);
    });
    fs.writeFileSync(process.env.READY, String(process.pid));
    setInterval(() => undefined, 1000);
  `;
  writeFileSync(join(dir, 'child.js'), child);
  const script = join(dir, 'wrapper.sh');
  writeFileSync(
    script,
    `#!/bin/bash\ntrap 'echo "wrapper: got SIGINT"' INT\n"${process.execPath}" "${join(dir, 'child.js')}"\necho "wrapper: child ended $?"\n`,
  );
  chmodSync(script, 0o755);
  const ready = join(dir, 'ready');
  const got = join(dir, 'got');
  return { script, ready, got, env: { ...process.env, READY: ready, GOT: got } };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a process is gone (a zombie not yet reaped counts as alive, hence the wait). */
async function gone(pid: number, withinMs = 5_000): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await sleep(50);
  }
  return false;
}

async function waitFor(path: string, withinMs = 10_000): Promise<string> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (existsSync(path) && readFileSync(path, 'utf8')) return readFileSync(path, 'utf8');
    await sleep(50);
  }
  throw new Error(`${path} did not appear`);
}

describe('run, through a wrapper that does not exec its command', () => {
  it('sends SIGINT at the timeout to the whole group, so the command behind the wrapper stops cleanly', async () => {
    const { script, got, env } = wrapper();
    const error = await failure(run('bash', [script], { env, timeoutMs: TIMEOUT_MS, graceMs: 60_000 }));
    expect(readFileSync(got, 'utf8')).toBe('SIGINT');
    expect(error.timedOut).toBe(true);
    expect(error.killed).toBe(false);
    expect(error.message).toContain('timed out after 3 s: stopped by SIGINT (then exited 0)');
    expect(error.result.stdout).toBe('wrapper: got SIGINT\nwrapper: child ended 130\n');
  }, 20_000);

  it('kills the whole group with SIGKILL after the grace period: nothing is left running', async () => {
    const { script, ready, env } = wrapper();
    const error = await failure(
      run('bash', [script], { env: { ...env, IGNORE: '1' }, timeoutMs: TIMEOUT_MS, graceMs: GRACE_MS }),
    );
    expect(error.killed).toBe(true);
    expect(error.result.signal).toBe('SIGKILL');
    expect(error.message).toContain('SIGINT sent, still running 500 ms later, ended by SIGKILL');
    expect(await gone(Number(readFileSync(ready, 'utf8')))).toBe(true);
  }, 20_000);

  it('settles when the command exits, ending what it left behind holding its output', async () => {
    const started = Date.now();
    const result = await run('bash', ['-c', 'sleep 60 & echo $!'], { drainMs: 300 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.code).toBe(0);
    expect(await gone(Number(result.stdout.trim()))).toBe(true);
  }, 20_000);

  it('does not wait forever on output held by a process that left the group', async () => {
    const started = Date.now();
    const result = await run('bash', ['-c', 'setsid sleep 60 & echo $!'], { drainMs: 300 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.code).toBe(0);
    process.kill(Number(result.stdout.trim()), 'SIGKILL'); // out of the group's reach: this test's to end
  }, 20_000);

  it('passes Ctrl-C of the parent on to the group, fails the command and starts no other', async () => {
    const { script, ready, got, env } = wrapper();
    const processTs = join(__dirname, '..', '..', 'scripts', 'lib', 'process.ts');
    const parentScript = `
      const { run } = require(${JSON.stringify(processTs)});
      run('bash', [${JSON.stringify(script)}], { timeoutMs: 60_000 }).then(
        () => console.log('resolved'),
        (error) => {
          console.log('failed: ' + error.message.split('\\n')[0]);
          return run('true', []).catch((next) => console.log('next: ' + next.message));
        },
      );
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '-e', parentScript], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    parent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    parent.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => parent.on('exit', (code) => resolve(code)));
    await waitFor(ready, 15_000);
    parent.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running'), 15_000))),
    ]);
    clearTimeout(timer);
    if (code === 'still running') parent.kill('SIGKILL');
    expect(readFileSync(got, 'utf8')).toBe('SIGINT');
    expect(output).toContain('was interrupted: this process got SIGINT and passed it on (then exited 0)');
    expect(output).toMatch(/next: true {2}\(in .*\) not started: this process got SIGINT/);
    expect(code).toBe(0);
  }, 40_000);
});

describe('prefixLines', () => {
  it("writes stdout lines to stdout and stderr lines to stderr, behind the stack's name", () => {
    const out: string[] = [];
    const err: string[] = [];
    const onLine = prefixLines(
      '[dev-global] ',
      { write: (text: string) => out.push(text) },
      { write: (text: string) => err.push(text) },
    );
    onLine('Plan: 1 to add', 'stdout');
    onLine('Error: boom', 'stderr');
    expect(out).toEqual(['[dev-global] Plan: 1 to add\n']);
    expect(err).toEqual(['[dev-global] Error: boom\n']);
  });
});
