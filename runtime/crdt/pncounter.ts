import {
  emptyGCounter,
  gcounterFold,
  gcounterIncrement,
  gcounterMerge,
  gcounterValue,
  type GCounter,
} from './gcounter';
import { CrdtLimitError } from './limits';

/** A counter that goes both ways: increments and decrements kept as two grow-only counters. */
export interface PNCounter {
  readonly p: GCounter;
  readonly n: GCounter;
}

export const emptyPNCounter = (): PNCounter => ({ p: emptyGCounter(), n: emptyGCounter() });

export const pncounterValue = (counter: PNCounter): number =>
  gcounterValue(counter.p) - gcounterValue(counter.n);

/** The delta of adding `by` (any safe integer) at `replica`. */
export function pncounterAdd(counter: PNCounter, replica: string, by: number): PNCounter {
  if (!Number.isSafeInteger(by)) throw new CrdtLimitError('an increment must be a safe integer');
  return by >= 0
    ? { p: gcounterIncrement(counter.p, replica, by), n: emptyGCounter() }
    : { p: emptyGCounter(), n: gcounterIncrement(counter.n, replica, -by) };
}

export function pncounterMerge(a: PNCounter, b: PNCounter): PNCounter {
  return { p: gcounterMerge(a.p, b.p), n: gcounterMerge(a.n, b.n) };
}

export function pncounterFold(counter: PNCounter, group: string, beforeMs: number): PNCounter {
  const p = gcounterFold(counter.p, group, beforeMs);
  const n = gcounterFold(counter.n, group, beforeMs);
  return p === counter.p && n === counter.n ? counter : { p, n };
}
