import { compareHlc, type Hlc } from './hlc';

/** JSON values a register can hold. */
export type JsonValue =
  null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** A last-writer-wins register ordered by hybrid logical clock stamps. */
export interface LwwRegister {
  readonly value: JsonValue;
  readonly stamp: Hlc;
}

/** The delta of setting `value` at `stamp` (take it from `tick`): the register itself. */
export const lwwSet = (value: JsonValue, stamp: Hlc): LwwRegister => ({ value, stamp });

/**
 * The later write wins. Equal stamps (the same replica and clock reading, which a correct clock never
 * repeats) fall back to comparing the values' JSON, so merge stays commutative even then.
 */
export function lwwMerge(a: LwwRegister, b: LwwRegister): LwwRegister {
  const order = compareHlc(a.stamp, b.stamp);
  if (order !== 0) return order > 0 ? a : b;
  if (a.value === b.value) return a;
  return JSON.stringify(a.value) >= JSON.stringify(b.value) ? a : b;
}
