import { CrdtLimitError, MAX_LOGICAL, MAX_WALL_MS } from './limits';

/**
 * A hybrid logical clock stamp: physical milliseconds, a logical counter for events within the same
 * millisecond (or while the wall clock lags a remote stamp), and the replica as the final tie-break. Stamps
 * are totally ordered and never run backwards, whatever the wall clocks do.
 */
export interface Hlc {
  readonly wallMs: number;
  readonly logical: number;
  readonly replica: string;
}

export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wallMs !== b.wallMs) return a.wallMs - b.wallMs;
  if (a.logical !== b.logical) return a.logical - b.logical;
  return a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0;
}

export const laterHlc = (a: Hlc | undefined, b: Hlc | undefined): Hlc | undefined =>
  !a ? b : !b ? a : compareHlc(a, b) >= 0 ? a : b;

/** The stamp one logical step after (wallMs, logical): the next millisecond once the counter is full. */
function after(wallMs: number, logical: number, replica: string): Hlc {
  if (logical < MAX_LOGICAL) return { wallMs, logical: logical + 1, replica };
  if (wallMs >= MAX_WALL_MS) throw new CrdtLimitError('clock exhausted: wallMs reached its maximum');
  return { wallMs: wallMs + 1, logical: 0, replica };
}

/** The stamp of a local event at physical time `nowMs`, after the replica's last stamp. */
export function tick(last: Hlc | undefined, replica: string, nowMs: number): Hlc {
  if (!last || nowMs > last.wallMs) return { wallMs: nowMs, logical: 0, replica };
  return after(last.wallMs, last.logical, replica);
}

/**
 * The replica's clock after receiving `remote` at physical time `nowMs`: after both. The caller bounds
 * `remote` first (the sync service refuses stamps too far ahead of its own clock).
 */
export function observe(last: Hlc | undefined, remote: Hlc, replica: string, nowMs: number): Hlc {
  const wallMs = Math.max(nowMs, remote.wallMs, last?.wallMs ?? 0);
  const fromLast = last && last.wallMs === wallMs ? last.logical : -1;
  const fromRemote = remote.wallMs === wallMs ? remote.logical : -1;
  const logical = Math.max(fromLast, fromRemote);
  return logical < 0 ? { wallMs, logical: 0, replica } : after(wallMs, logical, replica);
}
