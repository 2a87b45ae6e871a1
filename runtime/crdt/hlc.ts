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

/** The stamp of a local event at physical time `nowMs`, after the replica's last stamp. */
export function tick(last: Hlc | undefined, replica: string, nowMs: number): Hlc {
  if (!last || nowMs > last.wallMs) return { wallMs: nowMs, logical: 0, replica };
  return { wallMs: last.wallMs, logical: last.logical + 1, replica };
}

/** The replica's clock after receiving `remote` at physical time `nowMs`: after both. */
export function observe(last: Hlc | undefined, remote: Hlc, replica: string, nowMs: number): Hlc {
  const wallMs = Math.max(nowMs, remote.wallMs, last?.wallMs ?? 0);
  const fromLast = last && last.wallMs === wallMs ? last.logical + 1 : 0;
  const fromRemote = remote.wallMs === wallMs ? remote.logical + 1 : 0;
  return { wallMs, logical: Math.max(fromLast, fromRemote), replica };
}
