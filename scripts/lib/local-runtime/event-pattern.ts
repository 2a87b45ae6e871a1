/**
 * EventBridge event patterns, as documented ("Creating event patterns", "Content filtering"): a pattern is an
 * object whose leaves are arrays of matchers; an event matches when every field of the pattern matches (an
 * array value in the event matches when any element does). Matchers: exact values (string, number, boolean,
 * null), `prefix`, `suffix` (each also `{equals-ignore-case}`), `equals-ignore-case`, `wildcard`,
 * `anything-but` (a value, a list, or a prefix / suffix / equals-ignore-case / wildcard), `numeric`,
 * `exists`, `cidr`, and `$or`. Pure.
 */
import type { Json, JsonObject } from './terraform-refs';

export class EventPatternError extends Error {
  constructor(path: string, problem: string) {
    super(`event pattern${path ? ` at ${path}` : ''}: ${problem}`);
    this.name = 'EventPatternError';
  }
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const own = (object: JsonObject, key: string): Json | undefined =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

/** Checks a pattern's shape once, so that matching never meets a malformed pattern. */
export function validatePattern(pattern: unknown, path = ''): asserts pattern is JsonObject {
  if (!isObject(pattern)) throw new EventPatternError(path, 'expected an object');
  for (const [key, value] of Object.entries(pattern)) {
    const at = path ? `${path}.${key}` : key;
    if (key === '$or') {
      if (!Array.isArray(value) || value.length < 2)
        throw new EventPatternError(at, 'expected an array of at least two patterns');
      (value as readonly Json[]).forEach((alternative, i) => validatePattern(alternative, `${at}[${i}]`));
    } else if (Array.isArray(value)) {
      if (value.length === 0) throw new EventPatternError(at, 'expected at least one matcher');
      for (const matcher of value as readonly Json[]) validateMatcher(matcher, at);
    } else if (isObject(value)) validatePattern(value, at);
    else throw new EventPatternError(at, 'expected an array of matchers or a nested pattern');
  }
}

const OPERATORS = new Set(['<', '<=', '=', '>', '>=']);

function validateMatcher(matcher: Json, at: string): void {
  if (!isObject(matcher)) return; // string, number, boolean, null: exact
  const keys = Object.keys(matcher);
  if (keys.length !== 1) throw new EventPatternError(at, 'a matcher object takes exactly one operator');
  const key = keys[0] as string;
  const value = matcher[key] as Json;
  switch (key) {
    case 'prefix':
    case 'suffix':
      if (typeof value === 'string') return;
      if (
        isObject(value) &&
        typeof own(value, 'equals-ignore-case') === 'string' &&
        Object.keys(value).length === 1
      )
        return;
      throw new EventPatternError(at, `${key}: expected a string or {"equals-ignore-case": string}`);
    case 'equals-ignore-case':
    case 'wildcard':
    case 'cidr':
      if (typeof value !== 'string') throw new EventPatternError(at, `${key}: expected a string`);
      if (key === 'cidr') parseCidr(value, at);
      return;
    case 'exists':
      if (typeof value !== 'boolean') throw new EventPatternError(at, 'exists: expected true or false');
      return;
    case 'numeric': {
      if (!Array.isArray(value) || value.length === 0 || value.length % 2 !== 0 || value.length > 4)
        throw new EventPatternError(
          at,
          'numeric: expected [operator, number] or [operator, number, operator, number]',
        );
      for (let i = 0; i < value.length; i += 2) {
        if (
          !OPERATORS.has(value[i] as string) ||
          typeof value[i + 1] !== 'number' ||
          !Number.isFinite(value[i + 1])
        )
          throw new EventPatternError(
            at,
            'numeric: expected operators <, <=, =, >, >= each followed by a finite number',
          );
      }
      return;
    }
    case 'anything-but': {
      if (typeof value === 'string' || typeof value === 'number') return;
      if (
        Array.isArray(value) &&
        value.length > 0 &&
        value.every((v) => typeof v === 'string' || typeof v === 'number')
      )
        return;
      if (isObject(value) && Object.keys(value).length === 1) {
        const [inner, operand] = Object.entries(value)[0] as [string, Json];
        if (['prefix', 'suffix', 'wildcard'].includes(inner) && typeof operand === 'string') return;
        if (
          inner === 'equals-ignore-case' &&
          (typeof operand === 'string' ||
            (Array.isArray(operand) && operand.every((v) => typeof v === 'string')))
        )
          return;
      }
      throw new EventPatternError(
        at,
        'anything-but: expected a value, a list of values, or one of prefix, suffix, wildcard, equals-ignore-case',
      );
    }
    default:
      throw new EventPatternError(at, `unknown operator ${JSON.stringify(key.slice(0, 40))}`);
  }
}

/** Whether `event` matches `pattern` (validated with validatePattern). */
export function matchesPattern(pattern: JsonObject, event: unknown): boolean {
  if (!isObject(event)) return false;
  return Object.entries(pattern).every(([key, expected]) => {
    if (key === '$or')
      return (expected as readonly JsonObject[]).some((alternative) => matchesPattern(alternative, event));
    const present = Object.prototype.hasOwnProperty.call(event, key);
    const actual = present ? event[key] : undefined;
    if (Array.isArray(expected)) return matchesLeaf(expected as readonly Json[], present, actual);
    // A nested pattern: the event's field must be an object (or an array of objects) matching it.
    const values = Array.isArray(actual) ? (actual as readonly Json[]) : [actual];
    if (!present) return matchesAbsent(expected as JsonObject);
    return values.some((value) => matchesPattern(expected as JsonObject, value));
  });
}

/** A nested pattern over an absent object matches only when every leaf below it asks for `exists: false`. */
function matchesAbsent(pattern: JsonObject): boolean {
  return Object.entries(pattern).every(([key, expected]) => {
    if (key === '$or') return (expected as readonly JsonObject[]).some(matchesAbsent);
    if (Array.isArray(expected)) return matchesLeaf(expected as readonly Json[], false, undefined);
    return matchesAbsent(expected as JsonObject);
  });
}

function matchesLeaf(matchers: readonly Json[], present: boolean, actual: Json | undefined): boolean {
  return matchers.some((matcher) => {
    if (isObject(matcher) && own(matcher, 'exists') !== undefined) {
      const wanted = own(matcher, 'exists') === true;
      // exists works on leaves: an object value is not a leaf; an empty array holds no value.
      const isLeaf =
        present && !isObject(actual) && !(Array.isArray(actual) && (actual as readonly Json[]).length === 0);
      return wanted ? isLeaf : !present;
    }
    if (!present) return false;
    const values = Array.isArray(actual) ? (actual as readonly Json[]) : [actual as Json];
    return values.some((value) => matchesValue(matcher, value));
  });
}

const lower = (text: string) => text.toLowerCase();

function matchesValue(matcher: Json, value: Json): boolean {
  if (!isObject(matcher)) {
    if (matcher === null) return value === null;
    if (typeof matcher === 'number') return typeof value === 'number' && value === matcher;
    return value === matcher;
  }
  const [operator, operand] = Object.entries(matcher)[0] as [string, Json];
  switch (operator) {
    case 'prefix':
    case 'suffix': {
      if (typeof value !== 'string') return false;
      const ignoreCase = isObject(operand);
      const wanted = ignoreCase ? (own(operand, 'equals-ignore-case') as string) : (operand as string);
      const subject = ignoreCase ? lower(value) : value;
      const target = ignoreCase ? lower(wanted) : wanted;
      return operator === 'prefix' ? subject.startsWith(target) : subject.endsWith(target);
    }
    case 'equals-ignore-case':
      return typeof value === 'string' && lower(value) === lower(operand as string);
    case 'wildcard':
      return typeof value === 'string' && wildcardMatches(operand as string, value);
    case 'cidr':
      return typeof value === 'string' && cidrContains(parseCidr(operand as string, ''), value);
    case 'numeric':
      return typeof value === 'number' && numericMatches(operand as readonly Json[], value);
    case 'anything-but':
      return anythingBut(operand, value);
    default:
      return false;
  }
}

function anythingBut(operand: Json, value: Json): boolean {
  if (Array.isArray(operand))
    return !(operand as readonly Json[]).some((excluded) => matchesValue(excluded, value));
  if (!isObject(operand)) return !matchesValue(operand, value);
  const [inner, wanted] = Object.entries(operand)[0] as [string, Json];
  if (typeof value !== 'string') return true;
  switch (inner) {
    case 'prefix':
      return !value.startsWith(wanted as string);
    case 'suffix':
      return !value.endsWith(wanted as string);
    case 'wildcard':
      return !wildcardMatches(wanted as string, value);
    default: {
      const list = Array.isArray(wanted) ? (wanted as readonly string[]) : [wanted as string];
      return !list.some((excluded) => lower(excluded) === lower(value));
    }
  }
}

function numericMatches(conditions: readonly Json[], value: number): boolean {
  for (let i = 0; i < conditions.length; i += 2) {
    const bound = conditions[i + 1] as number;
    const ok =
      conditions[i] === '<'
        ? value < bound
        : conditions[i] === '<='
          ? value <= bound
          : conditions[i] === '='
            ? value === bound
            : conditions[i] === '>'
              ? value > bound
              : value >= bound;
    if (!ok) return false;
  }
  return true;
}

/** `*` matches any run of characters (`\*` a literal star); everything else literally. */
function wildcardMatches(pattern: string, value: string): boolean {
  const source = pattern
    .split(/(\\\*|\*)/)
    .map((part) =>
      part === '*' ? '.*' : part === '\\*' ? '\\*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`, 's').test(value);
}

interface Cidr {
  readonly version: 4 | 6;
  readonly bits: bigint;
  readonly prefix: number;
}

function ipBits(address: string): { version: 4 | 6; bits: bigint } | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return { version: 4, bits: octets.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
  }
  if (!/^[0-9a-fA-F:]+$/.test(address) || !address.includes(':')) return undefined;
  const [head = '', tail, extra] = address.split('::');
  if (extra !== undefined) return undefined;
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return { version: 6, bits: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

function parseCidr(text: string, at: string): Cidr {
  const [address = '', prefixText] = text.split('/');
  const ip = ipBits(address);
  const width = ip?.version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!ip || !Number.isInteger(prefix) || prefix < 0 || prefix > width)
    throw new EventPatternError(at, 'cidr: expected an IPv4 or IPv6 block such as 10.0.0.0/24');
  return { version: ip.version, bits: ip.bits, prefix };
}

function cidrContains(cidr: Cidr, address: string): boolean {
  const ip = ipBits(address);
  if (!ip || ip.version !== cidr.version) return false;
  const width = BigInt(cidr.version === 4 ? 32 : 128);
  const shift = width - BigInt(cidr.prefix);
  return ip.bits >> shift === cidr.bits >> shift;
}
