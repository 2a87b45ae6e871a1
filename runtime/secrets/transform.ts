import { JSONPath } from 'jsonpath-plus';
import { PermanentError } from '../lib/failures';
import { describeError } from '../lib/redact';
import { SedBudgetError, withSedBudget } from './sed';

export const MAX_TRANSFORM_STEPS = 20;
export const MAX_JSON_PATH_CHARS = 1024;
/** A secret value's maximum size, in UTF-8 bytes: no step may produce more. */
export const MAX_VALUE_BYTES = 65_536;

/**
 * One step of a transformation chain:
 * - `sed`: the script applied to the whole value;
 * - `path-sed`: the script applied to each string the JSON path selects in the value (a JSON document);
 * - `path-value`: each value the path selects replaced by `valueJson` (parsed afresh for each one).
 */
export type TransformStep =
  | { readonly kind: 'sed'; readonly script: string; readonly sed: (text: string) => string }
  | {
      readonly kind: 'path-sed';
      readonly path: string;
      readonly script: string;
      readonly sed: (text: string) => string;
    }
  | { readonly kind: 'path-value'; readonly path: string; readonly valueJson: string };

/**
 * A transformation step that failed on a value. The message names the step (its index in the chain, as in
 * the configuration's `transform[N]`) and its path, never the value.
 */
export class TransformError extends PermanentError {
  constructor(
    readonly step: number,
    readonly path: string | undefined,
    readonly rule: string,
  ) {
    const message = `transform step ${step}${path === undefined ? '' : ` (path ${path})`}: ${rule}`;
    super('secret-transform', message);
    this.name = 'TransformError';
    this.message = message;
  }
}

const DOTTED_NAME = /[A-Za-z0-9_-]+/y;
const QUOTED_NAME = /'([A-Za-z0-9_ ./+=-]+)'|"([A-Za-z0-9_ ./+=-]+)"/y;
const INDEXES = /\d+(?:,\d+)*/y;
const SLICE = /-?\d*:-?\d*(?::-?\d*)?/y;

/** The tokens jsonpath-plus should read a path as, or why the path is refused. */
type Scan = { readonly tokens: readonly string[] } | { readonly problem: string };

function sticky(re: RegExp, text: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(text);
}

function unsupported(path: string, at: number): string {
  const rest = path.slice(at);
  if (/^\[\s*\??\(/.test(rest))
    return 'expected no filter or script expression ([?(...)], [(...)]): they are not supported';
  if (/^[\^~]/.test(rest))
    return 'expected no parent (^) or property name (~) operator: they are not supported';
  if (rest.includes('@')) return 'expected no type selector (@string() ...): they are not supported';
  return `expected .name, ..name, .*, [index], [start:end], ['name'] or [*] at character ${at + 1}`;
}

function scanBracket(path: string, at: number, tokens: string[]): number | string {
  const body = at + 1;
  const quoted: string[] = [];
  let end = body;
  for (let m = sticky(QUOTED_NAME, path, end); m; m = sticky(QUOTED_NAME, path, end)) {
    const name = m[1] ?? m[2] ?? '';
    if (/^\.+$/.test(name)) return 'expected a quoted name that is not made of dots only';
    quoted.push(m[0]);
    end += m[0].length;
    if (path[end] !== ',') break;
    end += 1;
  }
  if (quoted.length > 0) {
    if (path[end] !== ']') return unsupported(path, at);
    const only = quoted[0] ?? '';
    tokens.push(quoted.length === 1 ? only.slice(1, -1) : quoted.join(','));
    return end + 1;
  }
  for (const re of [SLICE, INDEXES]) {
    const m = sticky(re, path, body);
    if (m && m[0].length > 0 && path[body + m[0].length] === ']' && (re !== SLICE || m[0].includes(':'))) {
      tokens.push(m[0]);
      return body + m[0].length + 1;
    }
  }
  if (path.startsWith('*]', body)) {
    tokens.push('*');
    return body + 2;
  }
  return unsupported(path, at);
}

function scanPath(path: string): Scan {
  if (!path.startsWith('$'))
    return { problem: 'expected a JSON path starting with $ (for example $.db.host)' };
  if (path.length > MAX_JSON_PATH_CHARS)
    return { problem: `expected at most ${MAX_JSON_PATH_CHARS} characters` };
  const tokens = ['$'];
  let at = 1;
  while (at < path.length) {
    if (path.startsWith('..', at)) {
      tokens.push('..');
      at += 2;
      if (path[at] === '[') continue;
      if (at >= path.length) return { problem: 'expected a name, * or [...] after ..' };
    } else if (path[at] === '.') {
      at += 1;
    } else if (path[at] === '[') {
      const next = scanBracket(path, at, tokens);
      if (typeof next === 'string') return { problem: next };
      at = next;
      continue;
    } else {
      return { problem: unsupported(path, at) };
    }
    if (path[at] === '*') {
      tokens.push('*');
      at += 1;
      continue;
    }
    const name = sticky(DOTTED_NAME, path, at);
    if (!name) return { problem: unsupported(path, at) };
    tokens.push(name[0]);
    at += name[0].length;
  }
  return { tokens };
}

/**
 * Why `path` is refused as a path step's JSON path, or undefined when it is fine. Accepted: `$` followed by
 * `.name`, `..name`, `.*`, `..*`, `[N]`, `[N,M]`, `[start:end:step]`, `['name']`, `['a','b']` and `[*]`.
 * Filter and script expressions are refused (and jsonpath-plus runs with `eval: false` besides), as is any
 * path jsonpath-plus would read differently.
 */
export function jsonPathProblem(path: string): string | undefined {
  const scan = scanPath(path);
  if ('problem' in scan) return scan.problem;
  let read: readonly string[];
  try {
    read = JSONPath.toPathArray(path);
  } catch {
    return 'expected a JSON path jsonpath-plus can read';
  }
  if (read.length !== scan.tokens.length || read.some((token, i) => token !== scan.tokens[i]))
    return 'expected a JSON path jsonpath-plus reads as written (quote unusual property names)';
  try {
    evaluate(path, {});
  } catch {
    return 'expected a JSON path jsonpath-plus can evaluate';
  }
  return undefined;
}

interface Selected {
  readonly parent: Record<string, unknown> | unknown[] | null;
  readonly key: string | number;
  readonly value: unknown;
}

interface PathResult {
  readonly parent: unknown;
  readonly parentProperty: string | number | null;
  readonly value: unknown;
}

function evaluate(path: string, json: unknown): readonly PathResult[] {
  const found = JSONPath({ path, json, eval: false, wrap: true, resultType: 'all' }) as unknown;
  return Array.isArray(found) ? (found as PathResult[]) : [];
}

const isContainer = (value: unknown): value is Record<string, unknown> | unknown[] =>
  typeof value === 'object' && value !== null;

/** The locations the path selects in `document`: own members only (never `length` or a prototype's), each once. */
function select(path: string, document: unknown): Selected[] {
  if (!isContainer(document)) return path === '$' ? [{ parent: null, key: '$', value: document }] : [];
  const seen = new Map<object, Set<string | number>>();
  const out: Selected[] = [];
  let root = false;
  for (const result of evaluate(path, document)) {
    const { parent, parentProperty: key } = result;
    if (parent === null || key === null) {
      if (!root) out.push({ parent: null, key: '$', value: document });
      root = true;
      continue;
    }
    if (!isContainer(parent)) continue;
    const own = Array.isArray(parent)
      ? typeof key === 'number' || /^(?:0|[1-9]\d*)$/.test(key)
        ? Number(key) < parent.length
        : false
      : Object.prototype.hasOwnProperty.call(parent, key);
    if (!own) continue;
    const keys = seen.get(parent) ?? new Set();
    const canonicalKey = Array.isArray(parent) ? Number(key) : String(key);
    if (keys.has(canonicalKey)) continue;
    keys.add(canonicalKey);
    seen.set(parent, keys);
    out.push({ parent, key: canonicalKey, value: result.value });
  }
  return out;
}

function write(at: Selected, value: unknown): void {
  if (Array.isArray(at.parent)) at.parent[at.key as number] = value;
  else if (at.parent)
    Object.defineProperty(at.parent, at.key, { value, writable: true, enumerable: true, configurable: true });
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function applyPathStep(step: Extract<TransformStep, { path: string }>, index: number, value: string): string {
  let document: unknown;
  try {
    document = JSON.parse(value);
  } catch {
    throw new TransformError(index, step.path, 'the value is not a JSON document');
  }
  let selected: Selected[];
  try {
    selected = select(step.path, document);
  } catch (error) {
    throw new TransformError(index, step.path, `the path could not be evaluated (${describeError(error)})`);
  }
  if (selected.length === 0) return value;
  for (const at of selected) {
    let replacement: unknown;
    if (step.kind === 'path-value') replacement = JSON.parse(step.valueJson);
    else if (typeof at.value !== 'string')
      throw new TransformError(
        index,
        step.path,
        `expected the path to select strings only; it selects ${kindOf(at.value)}`,
      );
    else replacement = runSed(step.sed, at.value, index, step.path);
    if (at.parent === null) document = replacement;
    else write(at, replacement);
  }
  try {
    return JSON.stringify(document);
  } catch (error) {
    throw new TransformError(
      index,
      step.path,
      `the document could not be written back (${describeError(error)})`,
    );
  }
}

function runSed(
  sed: (text: string) => string,
  text: string,
  index: number,
  path: string | undefined,
): string {
  try {
    return sed(text);
  } catch (error) {
    if (error instanceof SedBudgetError) throw new TransformError(index, path, error.reason);
    throw new TransformError(index, path, `the sed script failed (${describeError(error)})`);
  }
}

/**
 * The function that applies `steps` in order (the identity when there are none). A path step parses the
 * value as JSON and writes it back with `JSON.stringify`: the formatting of a JSON value is normalised
 * (whitespace dropped, numbers and escapes rewritten) whenever a path step selects something in it; a
 * path that selects nothing leaves the value as it was. Throws a `TransformError`, which never holds the
 * value.
 */
export function transformChain(steps: readonly TransformStep[]): (value: string) => string {
  if (steps.length === 0) return (value) => value;
  return (value) =>
    withSedBudget(() => {
      let current = value;
      steps.forEach((step, index) => {
        current =
          step.kind === 'sed'
            ? runSed(step.sed, current, index, undefined)
            : applyPathStep(step, index, current);
        if (current.length > MAX_VALUE_BYTES / 3 && Buffer.byteLength(current, 'utf8') > MAX_VALUE_BYTES)
          throw new TransformError(
            index,
            step.kind === 'sed' ? undefined : step.path,
            `the result is larger than ${MAX_VALUE_BYTES} bytes (a secret's maximum)`,
          );
      });
      return current;
    });
}

/** The steps as canonical JSON-ready data (what rule hashes are taken of). */
export function canonicalSteps(steps: readonly TransformStep[]): unknown[] {
  return steps.map((step) => {
    switch (step.kind) {
      case 'sed':
        return { sed: step.script };
      case 'path-sed':
        return { path: step.path, sed: step.script };
      case 'path-value':
        return { path: step.path, value: canonicalJson(JSON.parse(step.valueJson)) };
    }
  });
}

/** JSON text with object keys sorted, at every level (own keys only). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isContainer(value))
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}
