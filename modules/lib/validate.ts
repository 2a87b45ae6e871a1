/** Constructor-time validation helpers: errors name the construct, the prop, the value and what is allowed. */

import { renderValue } from '../../runtime/lib/redact';

/** Throws the construct's validation error; the received value is shown bounded (`NaN` as `NaN`). */
export function fail(construct: string, prop: string, received: unknown, expected: string): never {
  throw new Error(`${construct}: invalid ${prop}: received ${renderValue(received)}; expected ${expected}`);
}

export function requireIntInRange(
  construct: string,
  prop: string,
  value: number,
  min: number,
  max: number,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(construct, prop, value, `an integer between ${min} and ${max}`);
  }
  return value;
}

export function requireMatch(
  construct: string,
  prop: string,
  value: string,
  pattern: RegExp,
  expected: string,
): string {
  if (!pattern.test(value)) fail(construct, prop, value, expected);
  return value;
}
