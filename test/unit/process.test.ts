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
