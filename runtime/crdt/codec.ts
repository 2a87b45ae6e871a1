import {
  compact,
  compareDots,
  contains,
  type CausalContext,
  type Dot,
  type DotRange,
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
  MAX_ELEMENT_BYTES,
  MAX_LOGICAL,
  MAX_WALL_MS,
  utf8Bytes,
} from './limits';
import { GROUP, isFolded } from './lineage';
import type { JsonValue, LwwRegister } from './lww-register';
import { orsetFromEntries, type ORSet, type ORSetEntry } from './orset';
import { PermanentError } from '../lib/failures';

/** Version of the wire format every encoder writes. */
export const PROTOCOL_VERSION = 3;

/**
 * The oldest version a decoder still reads: documents stored and messages sent before an upgrade. Version 2
 * differs only in OR-Sets: the cloud as dots (`"c": [replicaIndex, counter, ...]`) and no scope.
 */
export const OLDEST_PROTOCOL_VERSION = 2;

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
    super(path, `unsupported protocol version; expected ${OLDEST_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`);
    this.name = 'UnsupportedVersionError';
  }
}

/*
 * Wire forms (JSON). Stamps are [wallMs, logical, replica]; `a` is a field's creation stamp. Dots are
 * flattened as [replicaIndex, counter, ...] against one replica table per set, the cloud's ranges as
 * [replicaIndex, from, to, ...] (sorted by replica id, then counter).
 *   counts    {"r":{"<replica>":3},"f":{"<group>":[beforeMs,total]}}     (f: folded replicas, omitted if none)
 *   gcounter  {"t":"g","a":<stamp>,"r":{...},"f":{...}}
 *   pncounter {"t":"pn","a":<stamp>,"p":<counts>,"n":<counts>}
 *   lww       {"t":"lww","a":<stamp>,"x":<json>,"h":<stamp>}
 *   orset     {"t":"or","a":<stamp>,"r":["<replica>"],"e":[["x",[0,7]]],"vv":[0,7],"c":[0,9,12],"s":["x"],
 *              "z":{"<group>":beforeMs}}                (s: the scope, z: the horizons; each omitted when none)
 *   field     <variant> or [<variant>, <variant>, ...] (distinct types, in CRDT_TYPES order)
 *   document  {"v":3,"m":{"<field key>":<field>}}
 * Encodings are canonical: equal states encode to equal strings. Version 2 (still decoded) wrote the cloud
 * as dots, [replicaIndex, counter, ...], and no scope.
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
  const cloud = [...set.context.cloud]
    .sort(byKey)
    .flatMap(([replica, ranges]) => ranges.flatMap(([from, to]) => [ref(replica), from, to]));
  return {
    r: replicas,
    e: entries,
    vv,
    c: cloud,
    ...(set.scope !== undefined ? { s: set.scope } : {}),
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

/** A field variant's wire form (its creation stamp `a`, type `t` and state), as a document holds it. */
export const variantWire = (variant: Variant): Wire => ({
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

/** The decoded JSON object of `text`, and the protocol version it says it is in. */
function parse(text: unknown): { wire: Wire; version: number } {
  if (typeof text !== 'string') throw new CrdtDecodeError('$', `expected a JSON string, got ${kind(text)}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CrdtDecodeError('$', 'not valid JSON');
  }
  if (!isObject(value)) throw new CrdtDecodeError('$', `expected an object, got ${kind(value)}`);
  checkVersion(value.v, '$.v');
  return { wire: value, version: value.v };
}

/** Throws unless this code decodes `version` (`OLDEST_PROTOCOL_VERSION` to `PROTOCOL_VERSION`). */
export function checkVersion(version: unknown, path: string): asserts version is number {
  if (isCount(version) && version >= OLDEST_PROTOCOL_VERSION && version <= PROTOCOL_VERSION) return;
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

function orsetFromWire(value: Wire, path: string, version: number): ORSet {
  const replicas = value.r;
  if (!Array.isArray(replicas) || !replicas.every(isReplicaId) || new Set(replicas).size !== replicas.length)
    throw new CrdtDecodeError(`${path}.r`, 'expected a list of distinct replica ids');
  const replicaAt = (index: unknown): string | undefined =>
    Number.isInteger(index) ? (replicas[index as number] as string | undefined) : undefined;
  const dots = (flat: unknown, at: string): Dot[] => {
    if (!Array.isArray(flat) || flat.length % 2 !== 0)
      throw new CrdtDecodeError(at, 'expected [replicaIndex, counter, ...] pairs');
    const out: Dot[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const replica = replicaAt(flat[i]);
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
  const cloud =
    version < 3
      ? cloudFromDots(dots(value.c, `${path}.c`), vv, horizons, `${path}.c`)
      : cloudFromRanges(value.c, replicaAt, vv, horizons, `${path}.c`);
  const context: CausalContext = compact(vv, cloud, horizons);
  const scope = value.s === undefined ? undefined : scopeFromWire(value.s, `${path}.s`);
  const inScope = scope && new Set(scope);
  if (!Array.isArray(value.e))
    throw new CrdtDecodeError(`${path}.e`, `expected a list of [element, dots], got ${kind(value.e)}`);
  const entries: ORSetEntry[] = [];
  const elements = new Set<string>();
  const held = new Map<string, Set<number>>();
  value.e.forEach((entry: unknown, i: number) => {
    const at = `${path}.e[${i}]`;
    if (!Array.isArray(entry) || entry.length !== 2 || !isElement(entry[0]))
      throw new CrdtDecodeError(
        at,
        `expected [element (0-${MAX_ELEMENT_BYTES} UTF-8 bytes, well-formed), dots]`,
      );
    if (elements.has(entry[0])) throw new CrdtDecodeError(at, 'an element appears twice');
    if (inScope && !inScope.has(entry[0])) throw new CrdtDecodeError(at, 'an element outside the scope s');
    elements.add(entry[0]);
    const list = dots(entry[1], `${at}[1]`);
    if (list.length === 0) throw new CrdtDecodeError(`${at}[1]`, 'a present element needs at least one dot');
    for (const dot of list) {
      let counters = held.get(dot[0]);
      if (!counters) held.set(dot[0], (counters = new Set()));
      if (counters.has(dot[1]))
        throw new CrdtDecodeError(`${at}[1]`, 'a dot held twice (by this or another element)');
      counters.add(dot[1]);
      if (!contains(context, dot)) throw new CrdtDecodeError(`${at}[1]`, 'a dot outside the causal context');
    }
    entries.push([entry[0], list.sort(compareDots)]);
  });
  return orsetFromEntries(entries, context, scope);
}

/** A version 2 cloud: distinct dots, each beyond its gap (above vv + 1) and outside every horizon. */
function cloudFromDots(
  dots: readonly Dot[],
  vv: ReadonlyMap<string, number>,
  horizons: ReadonlyMap<string, number>,
  at: string,
): Map<string, DotRange[]> {
  const counters = new Map<string, number[]>();
  for (const [replica, counter] of dots) {
    if (counter <= (vv.get(replica) ?? 0) + 1 || isFolded(replica, horizons))
      throw new CrdtDecodeError(at, 'a dot the version vector or a horizon covers');
    const list = counters.get(replica);
    if (list) list.push(counter);
    else counters.set(replica, [counter]);
  }
  const cloud = new Map<string, DotRange[]>();
  for (const [replica, list] of counters) {
    list.sort((x, y) => x - y);
    const ranges: DotRange[] = [];
    let previous = 0;
    for (const counter of list) {
      if (counter === previous) throw new CrdtDecodeError(at, 'a dot appears twice');
      const last = ranges[ranges.length - 1];
      if (last !== undefined && counter === last[1] + 1) ranges[ranges.length - 1] = [last[0], counter];
      else ranges.push([counter, counter]);
      previous = counter;
    }
    cloud.set(replica, ranges);
  }
  return cloud;
}

/**
 * A version 3 cloud: [replicaIndex, from, to, ...] triples; per replica sorted, disjoint and non-adjacent
 * ranges (a range touching another would be one), each starting above vv + 1 (one that meets the vector
 * would be folded into it) and outside every horizon.
 */
function cloudFromRanges(
  flat: unknown,
  replicaAt: (index: unknown) => string | undefined,
  vv: ReadonlyMap<string, number>,
  horizons: ReadonlyMap<string, number>,
  at: string,
): Map<string, DotRange[]> {
  if (!Array.isArray(flat) || flat.length % 3 !== 0)
    throw new CrdtDecodeError(at, 'expected [replicaIndex, from, to, ...] triples');
  const cloud = new Map<string, DotRange[]>();
  for (let i = 0; i < flat.length; i += 3) {
    const range = `range ${i / 3}`;
    const replica = replicaAt(flat[i]);
    if (replica === undefined) throw new CrdtDecodeError(at, `${range}: replica index not in r`);
    const from: unknown = flat[i + 1];
    const to: unknown = flat[i + 2];
    if (!positive(from) || !positive(to))
      throw new CrdtDecodeError(at, `${range}: counters must be 1 to ${MAX_COUNT}`);
    if (from > to) throw new CrdtDecodeError(at, `${range}: from must not be above to`);
    if (isFolded(replica, horizons)) throw new CrdtDecodeError(at, `${range}: a replica its horizon covers`);
    if (from <= (vv.get(replica) ?? 0) + 1)
      throw new CrdtDecodeError(
        at,
        `${range}: must start above the version vector's counter + 1 (else it belongs in vv)`,
      );
    const ranges = cloud.get(replica);
    const last = ranges?.[ranges.length - 1];
    if (last !== undefined && from <= last[1] + 1)
      throw new CrdtDecodeError(
        at,
        `${range}: must start above the end + 1 of the replica's previous range (ranges sorted, disjoint, non-adjacent)`,
      );
    if (ranges) ranges.push([from, to]);
    else cloud.set(replica, [[from, to]]);
  }
  return cloud;
}

/** A scope: a non-empty list of distinct elements in sorted order. */
function scopeFromWire(value: unknown, at: string): string[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new CrdtDecodeError(at, 'expected a non-empty list of elements');
  value.forEach((element: unknown, i: number) => {
    if (!isElement(element))
      throw new CrdtDecodeError(
        `${at}[${i}]`,
        `expected an element (0-${MAX_ELEMENT_BYTES} UTF-8 bytes, well-formed)`,
      );
    const previous: unknown = value[i - 1];
    if (i > 0 && !((previous as string) < element))
      throw new CrdtDecodeError(`${at}[${i}]`, 'elements must be distinct and sorted');
  });
  return value as string[];
}

const STATE_KEYS: Record<CrdtType, readonly string[]> = {
  gcounter: ['r', 'f'],
  pncounter: ['p', 'n'],
  lww: ['x', 'h'],
  orset: ['r', 'e', 'vv', 'c', 's', 'z'],
};
/** Version 2 sets carry no scope. */
const V2_ORSET_KEYS: readonly string[] = ['r', 'e', 'vv', 'c', 'z'];

function crdtFromWireAs(value: unknown, path: string, extraKeys: readonly string[], version: number): Crdt {
  if (!isObject(value)) throw new CrdtDecodeError(path, `expected a CRDT object, got ${kind(value)}`);
  const type = TYPE_OF_TAG.get(value.t);
  if (!type) throw new CrdtDecodeError(`${path}.t`, 'unknown CRDT type; expected g, pn, lww or or');
  const keys = type === 'orset' && version < 3 ? V2_ORSET_KEYS : STATE_KEYS[type];
  only(value, ['t', ...extraKeys, ...keys], path);
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
      return { type, state: orsetFromWire(value, path, version) };
  }
}

/** A CRDT from its wire form (`{"t":...}`), in protocol `version` (2 or 3). */
export function crdtFromWire(value: unknown, path: string, version: number = PROTOCOL_VERSION): Crdt {
  checkVersion(version, `${path}.v`);
  return crdtFromWireAs(value, path, [], version);
}

function variantAt(value: unknown, path: string, version: number): Variant {
  const crdt = crdtFromWireAs(value, path, ['a'], version);
  const created = hlcFromWire((value as Wire).a, `${path}.a`);
  if (crdt.type === 'lww' && compareHlc(created, crdt.state.stamp) > 0)
    throw new CrdtDecodeError(`${path}.a`, "a register's creation stamp cannot follow its value's stamp");
  return { created, crdt };
}

/** A field variant from its wire form (as `variantWire` makes it), in protocol `version` (2 or 3). */
export function variantFromWire(value: unknown, path: string, version: number = PROTOCOL_VERSION): Variant {
  checkVersion(version, `${path}.v`);
  return variantAt(value, path, version);
}

function fieldFromWire(value: unknown, path: string, version: number): Field {
  if (!Array.isArray(value)) return [variantAt(value, path, version)];
  if (value.length < 2 || value.length > CRDT_TYPES.length)
    throw new CrdtDecodeError(
      path,
      `expected one variant, or a list of 2-${CRDT_TYPES.length} of distinct types`,
    );
  const field = value.map((variant, i) => variantAt(variant, `${path}[${i}]`, version));
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

/**
 * A document from its wire form (`{"m":{...}}`, as `documentWire` makes it) in protocol `version` (2 or 3:
 * the version of the message or stored document that carries it).
 */
export function documentFromWire(
  value: unknown,
  path: string,
  version: number = PROTOCOL_VERSION,
): CrdtDocument {
  checkVersion(version, `${path}.v`);
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
    document.set(key, fieldFromWire(field, at, version));
  });
  return document;
}

/** A document from its encoding, in every version this code reads (see `checkVersion`). */
export function decodeDocument(text: unknown): CrdtDocument {
  const { wire, version } = parse(text);
  only(wire, ['v', 'm'], '$');
  return documentFromWire(wire, '$', version);
}

/** A CRDT from its encoding, in every version this code reads (see `checkVersion`). */
export function decodeCrdt(text: unknown): Crdt {
  const { wire, version } = parse(text);
  return crdtFromWireAs(wire, '$', ['v'], version);
}
