import {
  compact,
  compareDots,
  contains,
  dotFromKey,
  dotKey,
  type CausalContext,
  type Dot,
} from './causal-context';
import { CRDT_TYPES, type Crdt, type CrdtType } from './crdt';
import type { CrdtDocument, Field, Variant } from './document';
import type { CounterFold, GCounter } from './gcounter';
import { compareHlc, type Hlc } from './hlc';
import {
  isCount,
  isElement,
  isFieldKey,
  isReplicaId,
  jsonValueProblem,
  MAX_COUNT,
  MAX_LOGICAL,
  MAX_WALL_MS,
  utf8Bytes,
} from './limits';
import { GROUP, isFolded } from './lineage';
import type { JsonValue, LwwRegister } from './lww-register';
import { orsetFromEntries, type ORSet, type ORSetEntry } from './orset';
import { PermanentError } from '../lib/failures';

/** Version of the wire format; a decoder refuses any other. */
export const PROTOCOL_VERSION = 2;

/**
 * Input that is not a CRDT state of this protocol: `path` says where (structurally: `$.m[2]` is the third
 * field), `reason` which rule it breaks. Neither quotes the input.
 */
export class CrdtDecodeError extends PermanentError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super('invalid-crdt', reason);
    this.name = 'CrdtDecodeError';
    this.message = `invalid CRDT at ${path}: ${reason}`;
  }
}

/** A protocol version this code does not speak; `newer` when a later release may (retry after upgrading). */
export class UnsupportedVersionError extends CrdtDecodeError {
  constructor(
    path: string,
    readonly newer: boolean,
  ) {
    super(path, `unsupported protocol version; expected ${PROTOCOL_VERSION}`);
    this.name = 'UnsupportedVersionError';
  }
}

/*
 * Wire forms (JSON). Stamps are [wallMs, logical, replica]; `a` is a field's creation stamp. Dots are
 * flattened as [replicaIndex, counter, ...] against one replica table per set.
 *   counts    {"r":{"<replica>":3},"f":{"<group>":[beforeMs,total]}}     (f: folded replicas, omitted if none)
 *   gcounter  {"t":"g","a":<stamp>,"r":{...},"f":{...}}
 *   pncounter {"t":"pn","a":<stamp>,"p":<counts>,"n":<counts>}
 *   lww       {"t":"lww","a":<stamp>,"x":<json>,"h":<stamp>}
 *   orset     {"t":"or","a":<stamp>,"r":["<replica>"],"e":[["x",[0,7]]],"vv":[0,7],"c":[],"z":{"<group>":beforeMs}}
 *   field     <variant> or [<variant>, <variant>, ...] (distinct types, in CRDT_TYPES order)
 *   document  {"v":2,"m":{"<field key>":<field>}}
 * Encodings are canonical: equal states encode to equal strings.
 */
type Wire = Record<string, unknown>;

const TAGS: Record<CrdtType, string> = { gcounter: 'g', pncounter: 'pn', lww: 'lww', orset: 'or' };
const TYPE_OF_TAG = new Map<unknown, CrdtType>(CRDT_TYPES.map((type) => [TAGS[type], type]));

const byKey = <T>([x]: readonly [string, T], [y]: readonly [string, T]) => (x < y ? -1 : x > y ? 1 : 0);
const sortedObject = <T, W>(map: ReadonlyMap<string, T>, wire: (value: T) => W) =>
  Object.fromEntries([...map].sort(byKey).map(([key, value]) => [key, wire(value)]));

const hlcWire = (stamp: Hlc) => [stamp.wallMs, stamp.logical, stamp.replica];

function countsWire(counter: GCounter): Wire {
  return {
    r: sortedObject(counter.counts, (n) => n),
    ...(counter.folds.size > 0 ? { f: sortedObject(counter.folds, (f) => [f.beforeMs, f.total]) } : {}),
  };
}

function orsetWire(set: ORSet): Wire {
  const replicas: string[] = [];
  const index = new Map<string, number>();
  const ref = (replica: string) => {
    let i = index.get(replica);
    if (i === undefined) {
      i = replicas.length;
      index.set(replica, i);
      replicas.push(replica);
    }
    return i;
  };
  const flat = (dots: Iterable<Dot>) => [...dots].sort(compareDots).flatMap((d) => [ref(d[0]), d[1]]);
  const entries = set.entries.map(([e, dots]) => [e, flat(dots)]);
  const vv = flat([...set.context.vv].sort(byKey));
  const cloud = flat([...set.context.cloud].map(dotFromKey));
  return {
    r: replicas,
    e: entries,
    vv,
    c: cloud,
    ...(set.context.horizons.size > 0 ? { z: sortedObject(set.context.horizons, (before) => before) } : {}),
  };
}

function stateWire(crdt: Crdt): Wire {
  switch (crdt.type) {
    case 'gcounter':
      return countsWire(crdt.state);
    case 'pncounter':
      return { p: countsWire(crdt.state.p), n: countsWire(crdt.state.n) };
    case 'lww':
      return { x: crdt.state.value, h: hlcWire(crdt.state.stamp) };
    case 'orset':
      return orsetWire(crdt.state);
  }
}

export const crdtWire = (crdt: Crdt): Wire => ({ t: TAGS[crdt.type], ...stateWire(crdt) });

const variantWire = (variant: Variant): Wire => ({
  t: TAGS[variant.crdt.type],
  a: hlcWire(variant.created),
  ...stateWire(variant.crdt),
});

const fieldWire = (field: Field) =>
  field.length === 1 ? variantWire(field[0] as Variant) : field.map(variantWire);

/** What one field adds to an encoded document: its quoted key, a colon, its encoding and a comma. */
export const encodedFieldBytes = (key: string, field: Field): number =>
  utf8Bytes(JSON.stringify(key)) + utf8Bytes(JSON.stringify(fieldWire(field))) + 2;

/** The encoded size of a document with no fields; each field adds `encodedFieldBytes` (less one comma). */
export const EMPTY_DOCUMENT_BYTES = utf8Bytes(JSON.stringify({ v: PROTOCOL_VERSION, m: {} }));

/** A document's wire form (`{"m":{...}}`), for embedding in a message. */
export const documentWire = (document: CrdtDocument): Wire => ({ m: sortedObject(document, fieldWire) });

export const encodeDocument = (document: CrdtDocument): string =>
  JSON.stringify({ v: PROTOCOL_VERSION, ...documentWire(document) });

export const encodeCrdt = (crdt: Crdt): string => JSON.stringify({ v: PROTOCOL_VERSION, ...crdtWire(crdt) });

// ---- decoding: every rule a state a replica produces satisfies ----

const isObject = (value: unknown): value is Wire =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const kind = (value: unknown) => (Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value);

function only(value: Wire, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value))
    if (!allowed.includes(key))
      throw new CrdtDecodeError(path, `unexpected property; expected only ${allowed.join(', ')}`);
}

function parse(text: unknown): Wire {
  if (typeof text !== 'string') throw new CrdtDecodeError('$', `expected a JSON string, got ${kind(text)}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CrdtDecodeError('$', 'not valid JSON');
  }
  if (!isObject(value)) throw new CrdtDecodeError('$', `expected an object, got ${kind(value)}`);
  checkVersion(value.v, '$.v');
  return value;
}

/** Throws unless `version` is this protocol's. */
export function checkVersion(version: unknown, path: string): void {
  if (version === PROTOCOL_VERSION) return;
  throw new UnsupportedVersionError(path, isCount(version) && version > PROTOCOL_VERSION);
}

export function hlcFromWire(value: unknown, path: string): Hlc {
  if (
    !Array.isArray(value) ||
    value.length !== 3 ||
    !isCount(value[0], MAX_WALL_MS) ||
    !isCount(value[1], MAX_LOGICAL) ||
    !isReplicaId(value[2])
  ) {
    throw new CrdtDecodeError(
      path,
      `expected [wallMs 0-${MAX_WALL_MS}, logical 0-${MAX_LOGICAL}, replica id (1-64 of A-Z a-z 0-9 _ . : @ -)]`,
    );
  }
  return { wallMs: value[0], logical: value[1], replica: value[2] };
}

const positive = (value: unknown, max = MAX_COUNT): value is number => isCount(value, max) && value > 0;

function countsFromWire(value: unknown, path: string): GCounter {
  if (!isObject(value) || !isObject(value.r))
    throw new CrdtDecodeError(path, 'expected {"r": counts by replica, "f": folds by group}');
  only(value, ['r', 'f'], path);
  const folds = new Map<string, CounterFold>();
  if (value.f !== undefined) {
    if (!isObject(value.f) || Object.keys(value.f).length === 0)
      throw new CrdtDecodeError(`${path}.f`, 'expected a non-empty object of folds by group');
    Object.entries(value.f).forEach(([group, fold], i) => {
      if (!GROUP.test(group)) throw new CrdtDecodeError(`${path}.f[${i}]`, 'invalid group name');
      if (!Array.isArray(fold) || fold.length !== 2 || !isCount(fold[0], MAX_WALL_MS) || !positive(fold[1]))
        throw new CrdtDecodeError(`${path}.f[${i}]`, 'expected [beforeMs, total >= 1]');
      folds.set(group, { beforeMs: fold[0], total: fold[1] });
    });
  }
  const horizons = new Map([...folds].map(([group, fold]) => [group, fold.beforeMs]));
  const counts = new Map<string, number>();
  let total = [...folds.values()].reduce((sum, fold) => sum + fold.total, 0);
  Object.entries(value.r).forEach(([replica, n], i) => {
    const at = `${path}.r[${i}]`;
    if (!isReplicaId(replica)) throw new CrdtDecodeError(at, 'invalid replica id');
    if (!positive(n)) throw new CrdtDecodeError(at, `expected a count from 1 to ${MAX_COUNT}`);
    if (isFolded(replica, horizons)) throw new CrdtDecodeError(at, "a count its group's fold already covers");
    counts.set(replica, n);
    total += n;
  });
  if (total > MAX_COUNT) throw new CrdtDecodeError(path, `the counter's total passes ${MAX_COUNT}`);
  return { counts, folds };
}

function lwwFromWire(value: Wire, path: string): LwwRegister {
  if (!('x' in value)) throw new CrdtDecodeError(`${path}.x`, 'a register needs a value');
  const problem = jsonValueProblem(value.x);
  if (problem) throw new CrdtDecodeError(`${path}.x`, problem);
  return { value: normalize(value.x) as JsonValue, stamp: hlcFromWire(value.h, `${path}.h`) };
}

/** -0 reads back as 0: the same value, one encoding. */
const normalize = (value: unknown): unknown => (Object.is(value, -0) ? 0 : value);

function orsetFromWire(value: Wire, path: string): ORSet {
  const replicas = value.r;
  if (!Array.isArray(replicas) || !replicas.every(isReplicaId) || new Set(replicas).size !== replicas.length)
    throw new CrdtDecodeError(`${path}.r`, 'expected a list of distinct replica ids');
  const dots = (flat: unknown, at: string): Dot[] => {
    if (!Array.isArray(flat) || flat.length % 2 !== 0)
      throw new CrdtDecodeError(at, 'expected [replicaIndex, counter, ...] pairs');
    const out: Dot[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const replica = Number.isInteger(flat[i])
        ? (replicas[flat[i] as number] as string | undefined)
        : undefined;
      if (replica === undefined) throw new CrdtDecodeError(at, `pair ${i / 2}: replica index not in r`);
      if (!positive(flat[i + 1]))
        throw new CrdtDecodeError(at, `pair ${i / 2}: counter must be 1 to ${MAX_COUNT}`);
      out.push([replica, flat[i + 1] as number]);
    }
    return out;
  };
  const horizons = new Map<string, number>();
  if (value.z !== undefined) {
    if (!isObject(value.z) || Object.keys(value.z).length === 0)
      throw new CrdtDecodeError(`${path}.z`, 'expected a non-empty object of horizons by group');
    Object.entries(value.z).forEach(([group, before], i) => {
      if (!GROUP.test(group) || !isCount(before, MAX_WALL_MS))
        throw new CrdtDecodeError(`${path}.z[${i}]`, 'expected a group name and a horizon in milliseconds');
      horizons.set(group, before);
    });
  }
  const vv = new Map<string, number>();
  for (const [replica, counter] of dots(value.vv, `${path}.vv`)) {
    if (vv.has(replica)) throw new CrdtDecodeError(`${path}.vv`, 'a replica appears twice');
    if (isFolded(replica, horizons)) throw new CrdtDecodeError(`${path}.vv`, 'a replica its horizon covers');
    vv.set(replica, counter);
  }
  const cloud = new Set<string>();
  for (const dot of dots(value.c, `${path}.c`)) {
    const key = dotKey(dot);
    if (cloud.has(key)) throw new CrdtDecodeError(`${path}.c`, 'a dot appears twice');
    if (dot[1] <= (vv.get(dot[0]) ?? 0) + 1 || isFolded(dot[0], horizons))
      throw new CrdtDecodeError(`${path}.c`, 'a dot the version vector or a horizon covers');
    cloud.add(key);
  }
  const context: CausalContext = compact(vv, cloud, horizons);
  if (!Array.isArray(value.e))
    throw new CrdtDecodeError(`${path}.e`, `expected a list of [element, dots], got ${kind(value.e)}`);
  const entries: ORSetEntry[] = [];
  const elements = new Set<string>();
  const held = new Set<string>();
  value.e.forEach((entry: unknown, i: number) => {
    const at = `${path}.e[${i}]`;
    if (!Array.isArray(entry) || entry.length !== 2 || !isElement(entry[0]))
      throw new CrdtDecodeError(at, 'expected [element (0-1024 UTF-8 bytes, well-formed), dots]');
    if (elements.has(entry[0])) throw new CrdtDecodeError(at, 'an element appears twice');
    elements.add(entry[0]);
    const list = dots(entry[1], `${at}[1]`);
    if (list.length === 0) throw new CrdtDecodeError(`${at}[1]`, 'a present element needs at least one dot');
    for (const dot of list) {
      const key = dotKey(dot);
      if (held.has(key))
        throw new CrdtDecodeError(`${at}[1]`, 'a dot held twice (by this or another element)');
      held.add(key);
      if (!contains(context, dot)) throw new CrdtDecodeError(`${at}[1]`, 'a dot outside the causal context');
    }
    entries.push([entry[0], list.sort(compareDots)]);
  });
  return orsetFromEntries(entries, context);
}

const STATE_KEYS: Record<CrdtType, readonly string[]> = {
  gcounter: ['r', 'f'],
  pncounter: ['p', 'n'],
  lww: ['x', 'h'],
  orset: ['r', 'e', 'vv', 'c', 'z'],
};

function crdtFromWireAs(value: unknown, path: string, extraKeys: readonly string[]): Crdt {
  if (!isObject(value)) throw new CrdtDecodeError(path, `expected a CRDT object, got ${kind(value)}`);
  const type = TYPE_OF_TAG.get(value.t);
  if (!type) throw new CrdtDecodeError(`${path}.t`, 'unknown CRDT type; expected g, pn, lww or or');
  only(value, ['t', ...extraKeys, ...STATE_KEYS[type]], path);
  switch (type) {
    case 'gcounter':
      return {
        type,
        state: countsFromWire({ r: value.r, ...(value.f === undefined ? {} : { f: value.f }) }, path),
      };
    case 'pncounter':
      return {
        type,
        state: { p: countsFromWire(value.p, `${path}.p`), n: countsFromWire(value.n, `${path}.n`) },
      };
    case 'lww':
      return { type, state: lwwFromWire(value, path) };
    case 'orset':
      return { type, state: orsetFromWire(value, path) };
  }
}

export const crdtFromWire = (value: unknown, path: string): Crdt => crdtFromWireAs(value, path, []);

function variantFromWire(value: unknown, path: string): Variant {
  const crdt = crdtFromWireAs(value, path, ['a']);
  const created = hlcFromWire((value as Wire).a, `${path}.a`);
  if (crdt.type === 'lww' && compareHlc(created, crdt.state.stamp) > 0)
    throw new CrdtDecodeError(`${path}.a`, "a register's creation stamp cannot follow its value's stamp");
  return { created, crdt };
}

function fieldFromWire(value: unknown, path: string): Field {
  if (!Array.isArray(value)) return [variantFromWire(value, path)];
  if (value.length < 2 || value.length > CRDT_TYPES.length)
    throw new CrdtDecodeError(
      path,
      `expected one variant, or a list of 2-${CRDT_TYPES.length} of distinct types`,
    );
  const field = value.map((variant, i) => variantFromWire(variant, `${path}[${i}]`));
  field.forEach((variant, i) => {
    const previous = field[i - 1];
    if (previous && CRDT_TYPES.indexOf(previous.crdt.type) >= CRDT_TYPES.indexOf(variant.crdt.type))
      throw new CrdtDecodeError(
        `${path}[${i}]`,
        'variants must have distinct types, in g, pn, lww, or order',
      );
  });
  return field;
}

/** A document from its wire form (`{"m":{...}}`, as `documentWire` makes it). */
export function documentFromWire(value: unknown, path: string): CrdtDocument {
  if (!isObject(value) || !isObject(value.m))
    throw new CrdtDecodeError(`${path}.m`, 'expected an object of fields by key');
  const document = new Map<string, Field>();
  Object.entries(value.m).forEach(([key, field], i) => {
    const at = `${path}.m[${i}]`;
    if (!isFieldKey(key))
      throw new CrdtDecodeError(
        at,
        'invalid field key (1-256 UTF-8 bytes, well-formed, no control characters)',
      );
    document.set(key, fieldFromWire(field, at));
  });
  return document;
}

export function decodeDocument(text: unknown): CrdtDocument {
  const wire = parse(text);
  only(wire, ['v', 'm'], '$');
  return documentFromWire(wire, '$');
}

export function decodeCrdt(text: unknown): Crdt {
  return crdtFromWireAs(parse(text), '$', ['v']);
}
