import { gcounterIncrement, gcounterMerge, gcounterValue, type GCounter } from './gcounter';

/** A counter that goes both ways: increments and decrements kept as two grow-only counters. */
export interface PNCounter {
  readonly p: GCounter;
  readonly n: GCounter;
}

export const emptyPNCounter = (): PNCounter => ({ p: {}, n: {} });

export const pncounterValue = (counter: PNCounter): number =>
  gcounterValue(counter.p) - gcounterValue(counter.n);

/** The delta of adding `by` (any integer) at `replica`. */
export function pncounterAdd(counter: PNCounter, replica: string, by: number): PNCounter {
  if (!Number.isSafeInteger(by)) throw new RangeError(`increment must be an integer, got ${by}`);
  return by >= 0
    ? { p: gcounterIncrement(counter.p, replica, by), n: {} }
    : { p: {}, n: gcounterIncrement(counter.n, replica, -by) };
}

export function pncounterMerge(a: PNCounter, b: PNCounter): PNCounter {
  return { p: gcounterMerge(a.p, b.p), n: gcounterMerge(a.n, b.n) };
}
