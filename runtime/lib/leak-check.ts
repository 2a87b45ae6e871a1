/**
 * A test helper every capability reuses to prove that input never reaches logs or responses (DESIGN §7):
 * put `LEAK_MARKER` into every input field a failure path sees, run the path while `captureOutput` records
 * what the process wrote, then assert that `findLeaks` finds the marker nowhere.
 */

/** A value no code would print on its own. */
export const LEAK_MARKER = 'leak-marker-7f3a9c';

export interface CapturedOutput {
  /** Everything written to stdout and stderr, and every console call, in order. */
  readonly lines: string[];
  restore(): void;
}

/**
 * Records what the process writes (stdout, stderr, console) until `restore()`. Powertools' logger writes
 * to stdout through its own console, so its lines are caught too.
 */
export function captureOutput(): CapturedOutput {
  const lines: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write);
  for (const stream of streams) {
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      lines.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
  }
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const originals = methods.map((method) => console[method]);
  for (const method of methods) {
    console[method] = (...args: unknown[]) =>
      void lines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
  }
  return {
    lines,
    restore: () => {
      streams.forEach((stream, i) => (stream.write = writes[i] as typeof stream.write));
      methods.forEach((method, i) => (console[method] = originals[i] as (typeof console)[typeof method]));
    },
  };
}

/** The texts in which the marker appears (in any case): empty when nothing leaked. */
export function findLeaks(texts: readonly string[], marker: string = LEAK_MARKER): string[] {
  const needle = marker.toLowerCase();
  return texts.filter((text) => text.toLowerCase().includes(needle));
}
