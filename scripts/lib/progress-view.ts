// The deployment's progress in the terminal: one line per stack, redrawn in place on a terminal; on a log
// (CI, a pipe), a line when a stack changes phase and every few seconds while stacks apply.
import type { StackProgress } from './local-estate';

const secondsSince = (from: number | undefined, now: number) =>
  from === undefined ? 0 : Math.round((now - from) / 1000);

/** One line of a stack's progress: name, phase, resources done of total, elapsed, what it waits for. */
export function progressLine(stack: StackProgress, now: number, nameWidth: number): string {
  const name = stack.name.padEnd(nameWidth);
  const { planned, completed } = stack.tally;
  const count = `${completed.size}/${planned ?? '?'}`.padStart(7);
  switch (stack.phase) {
    case 'init':
      return `${name}  init`;
    case 'waiting':
      return stack.waitingFor.length > 0
        ? `${name}  waiting for ${stack.waitingFor.join(', ')}`
        : `${name}  starting`;
    case 'applying': {
      const inFlight = stack.tally.inFlight.size;
      return `${name}  applying ${count}  ${String(secondsSince(stack.startedAt, now)).padStart(4)} s${
        inFlight ? `  (${inFlight} in flight)` : ''
      }`;
    }
    case 'applied':
      return `${name}  applied  ${count}  ${String(secondsSince(stack.startedAt, stack.endedAt ?? now)).padStart(4)} s`;
    case 'failed':
      return `${name}  FAILED   ${count}`;
  }
}

export interface ProgressView {
  update(stacks: readonly StackProgress[]): void;
  /** Draws the last state once more and stops redrawing. */
  close(): void;
}

/** A view writing to `out`: redrawn in place when it is a terminal, else printed line by line. */
export function progressView(
  out: NodeJS.WriteStream = process.stdout,
  options: { indent?: string; intervalMs?: number } = {},
): ProgressView {
  const indent = options.indent ?? '  ';
  const interactive = out.isTTY === true;
  let latest: readonly StackProgress[] = [];
  let drawn = 0;
  const phases = new Map<string, string>();
  const width = () => Math.max(0, ...latest.map((stack) => stack.name.length));
  // A line wider than the terminal would wrap onto two rows and throw the redraw's count off.
  const fit = (line: string) =>
    interactive && out.columns ? line.slice(0, Math.max(1, out.columns - 1)) : line;
  const lines = () => latest.map((stack) => fit(`${indent}${progressLine(stack, Date.now(), width())}`));
  const redraw = () => {
    if (interactive) {
      const text = lines();
      out.write(`${drawn > 0 ? `\x1b[${drawn}A` : ''}${text.map((line) => `\x1b[2K${line}\n`).join('')}`);
      drawn = text.length;
    } else {
      const applying = latest.filter((stack) => stack.phase === 'applying');
      if (applying.length > 0) {
        out.write(
          `${indent}${applying.map((s) => `${s.name} ${s.tally.completed.size}/${s.tally.planned ?? '?'}`).join(', ')}\n`,
        );
      }
    }
  };
  const timer = setInterval(redraw, options.intervalMs ?? (interactive ? 500 : 10_000));
  timer.unref();
  return {
    update(stacks) {
      latest = stacks;
      if (interactive) return;
      for (const stack of stacks) {
        if (phases.get(stack.name) === stack.phase) continue;
        phases.set(stack.name, stack.phase);
        out.write(`${indent}${progressLine(stack, Date.now(), width())}\n`);
      }
    },
    close() {
      clearInterval(timer);
      if (interactive) redraw();
    },
  };
}
