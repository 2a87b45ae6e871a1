import { PermanentError } from '../lib/failures';

/**
 * What a CRDT state may hold. The decoder refuses anything outside these limits, and local changes that
 * would leave them are refused with a `CrdtLimitError`, so no input and no change can produce a state that
 * cannot be encoded, stored and decoded again.
 */

/** Largest count, counter total and dot counter: every integer stays exact in a JavaScript number. */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER;

/** Clock stamps: milliseconds up to the year 3000, and a logical counter below 2^31 per millisecond. */
export const MAX_WALL_MS = Date.UTC(3000, 0, 1);
export const MAX_LOGICAL = 2 ** 31 - 1;

/**
 * Replica ids: 1-64 of letters, digits and `_ . : @ -`. Names of object members (`constructor`,
 * `__proto__`) are valid ids: every map keyed by a replica id is a `Map`, never an object.
 */
export const REPLICA_ID = /^[A-Za-z0-9_.:@-]{1,64}$/;

/** Field keys: 1-256 UTF-8 bytes of well-formed Unicode without control characters. */
export const MAX_FIELD_KEY_BYTES = 256;

/** OR-Set elements: 0-1,024 UTF-8 bytes of well-formed Unicode. */
export const MAX_ELEMENT_BYTES = 1024;

/** Register values: JSON nested at most this deep (a scalar is depth 0), numbers finite. */
export const MAX_VALUE_DEPTH = 32;

/** A change or input that would leave the limits above: permanent, retrying cannot fix it. */
export class CrdtLimitError extends PermanentError {
  constructor(rule: string) {
    super('crdt-limit', rule);
    this.name = 'CrdtLimitError';
    this.message = rule;
  }
}

const LONE_SURROGATE = /\p{Surrogate}/u;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** Well-formed Unicode (no lone surrogate, which would not survive UTF-8 storage). */
export const isWellFormed = (text: string): boolean => !LONE_SURROGATE.test(text);

/** A key: 1 to `maxBytes` UTF-8 bytes, well-formed, no control characters. */
export function isValidKey(value: unknown, maxBytes: number): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= maxBytes &&
    utf8Bytes(value) <= maxBytes &&
    isWellFormed(value) &&
    !CONTROL.test(value)
  );
}

export const isFieldKey = (value: unknown): value is string => isValidKey(value, MAX_FIELD_KEY_BYTES);

export const isElement = (value: unknown): value is string =>
  typeof value === 'string' &&
  value.length <= MAX_ELEMENT_BYTES &&
  utf8Bytes(value) <= MAX_ELEMENT_BYTES &&
  isWellFormed(value);

export const isReplicaId = (value: unknown): value is string =>
  typeof value === 'string' && REPLICA_ID.test(value);

/** A non-negative integer no larger than `max`. */
export const isCount = (value: unknown, max = MAX_COUNT): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;

/**
 * Why `value` is not a register value (undefined when it is): JSON only (no undefined, functions, NaN or
 * Infinity), nested at most `MAX_VALUE_DEPTH` deep, strings and keys well-formed. Iterative, so no input
 * can exhaust the stack.
 */
export function jsonValueProblem(value: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (item === null || typeof item === 'boolean') continue;
    if (typeof item === 'number') {
      if (!Number.isFinite(item)) return 'numbers must be finite';
      continue;
    }
    if (typeof item === 'string') {
      if (!isWellFormed(item)) return 'strings must be well-formed Unicode';
      continue;
    }
    if (typeof item !== 'object') return 'expected JSON (null, boolean, number, string, array, object)';
    if (depth >= MAX_VALUE_DEPTH) return `nesting deeper than ${MAX_VALUE_DEPTH} levels`;
    if (Array.isArray(item)) {
      for (const child of item) stack.push([child, depth + 1]);
      continue;
    }
    if (Object.getPrototypeOf(item) !== Object.prototype && Object.getPrototypeOf(item) !== null)
      return 'expected plain JSON objects';
    for (const key of Object.keys(item)) {
      if (!isWellFormed(key)) return 'object keys must be well-formed Unicode';
      if (key === '__proto__')
        return 'object keys may not be __proto__ (it would set a prototype where copied)';
      stack.push([(item as Record<string, unknown>)[key], depth + 1]);
    }
  }
  return undefined;
}
