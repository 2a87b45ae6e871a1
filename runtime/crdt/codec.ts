import {
  compact,
  compareDots,
  contains,
  dotFromKey,
  dotKey,
  type CausalContext,
  type Dot,
} from './causal-context';
import type { Crdt, CrdtMap } from './crdt';
import { orsetFromEntries } from './orset';
import type { GCounter } from './gcounter';
import type { JsonValue } from './lww-register';

/** Version of the wire format; a decoder refuses any other. */
export const PROTOCOL_VERSION = 1;

/** Input that is not a CRDT of this protocol: `path` says where, `reason` what is wrong. */
export class CrdtDecodeError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`invalid CRDT at ${path}: ${reason}`);
    this.name = 'CrdtDecodeError';
  }
}

/*
 * Wire forms (JSON). Dots are flattened as [replicaIndex, counter, replicaIndex, counter, ...] against one
 * replica table per set, so a set of 100,000 elements costs a few bytes per element of metadata.
 *   gcounter  {"t":"g","s":{"eu-central-1":3}}
 *   pncounter {"t":"pn","p":{...},"n":{...}}
 *   lww       {"t":"lww","x":<json>,"h":[wallMs,logical,"replica"]}   or {"t":"lww"} when unset
 *   orset     {"t":"or","r":["eu-central-1"],"e":[["x",[0,7]]],"vv":[0,7],"c":[]}
 *   document  {"v":1,"m":{"key":<wire>}}     single CRDT: {"v":1,...<wire>}
 */
type Wire = Record<string, unknown>;

/** Encodings are canonical: equal states encode to equal strings. */
const sortedKeys = (counter: GCounter): GCounter =>
  Object.fromEntries(
    Object.entries(counter)
      .filter(([, n]) => n > 0)
      .sort(([x], [y]) => (x < y ? -1 : 1)),
  );

export function toWire(crdt: Crdt): Wire {
  switch (crdt.type) {
    case 'gcounter':
      return { t: 'g', s: sortedKeys(crdt.state) };
    case 'pncounter':
      return { t: 'pn', p: sortedKeys(crdt.state.p), n: sortedKeys(crdt.state.n) };
    case 'lww':
      return crdt.state
        ? {
            t: 'lww',
            x: crdt.state.value,
            h: [crdt.state.stamp.wallMs, crdt.state.stamp.logical, crdt.state.stamp.replica],
          }
        : { t: 'lww' };
    case 'orset': {
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
      const entries = crdt.state.entries.map(([e, dots]) => [e, flat(dots)]);
      const vv = flat([...crdt.state.context.vv].sort(([x], [y]) => (x < y ? -1 : 1)));
      const cloud = flat([...crdt.state.context.cloud].map(dotFromKey));
      return { t: 'or', r: replicas, e: entries, vv, c: cloud };
    }
  }
}

export const encodeCrdt = (crdt: Crdt): string => JSON.stringify({ v: PROTOCOL_VERSION, ...toWire(crdt) });

export function encodeMap(map: CrdtMap): string {
  const keys = [...map.keys()].sort();
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    m: Object.fromEntries(keys.map((k) => [k, toWire(map.get(k) as Crdt)])),
  });
}

const isObject = (value: unknown): value is Wire =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const describe = (value: unknown) =>
  Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value;

function parse(text: unknown): Wire {
  if (typeof text !== 'string')
    throw new CrdtDecodeError('$', `expected a JSON string, got ${describe(text)}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CrdtDecodeError('$', 'not valid JSON');
  }
  if (!isObject(value)) throw new CrdtDecodeError('$', `expected an object, got ${describe(value)}`);
  if (value.v !== PROTOCOL_VERSION) {
    throw new CrdtDecodeError(
      '$.v',
      `unsupported protocol version ${JSON.stringify(value.v)}; expected ${PROTOCOL_VERSION}`,
    );
  }
  return value;
}

export function decodeCrdt(text: unknown): Crdt {
  return fromWire(parse(text), '$');
}

export function decodeMap(text: unknown): CrdtMap {
  const wire = parse(text);
  if (!isObject(wire.m))
    throw new CrdtDecodeError('$.m', `expected an object of CRDTs by key, got ${describe(wire.m)}`);
  return new Map(
    Object.entries(wire.m).map(([key, value]) => [key, fromWire(value, `$.m[${JSON.stringify(key)}]`)]),
  );
}

const isReplica = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && !value.includes('\u0000');
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function gcounter(value: unknown, path: string): GCounter {
  if (!isObject(value))
    throw new CrdtDecodeError(path, `expected an object of counts by replica, got ${describe(value)}`);
  for (const [replica, n] of Object.entries(value)) {
    if (!isReplica(replica)) throw new CrdtDecodeError(path, `invalid replica id ${JSON.stringify(replica)}`);
    if (!isCount(n))
      throw new CrdtDecodeError(
        `${path}.${replica}`,
        `expected a non-negative integer count, got ${JSON.stringify(n)}`,
      );
  }
  return value as GCounter;
}

export function fromWire(value: unknown, path: string): Crdt {
  if (!isObject(value)) throw new CrdtDecodeError(path, `expected a CRDT object, got ${describe(value)}`);
  switch (value.t) {
    case 'g':
      return { type: 'gcounter', state: gcounter(value.s, `${path}.s`) };
    case 'pn':
      return {
        type: 'pncounter',
        state: { p: gcounter(value.p, `${path}.p`), n: gcounter(value.n, `${path}.n`) },
      };
    case 'lww':
      return { type: 'lww', state: lww(value, path) };
    case 'or':
      return { type: 'orset', state: orset(value, path) };
    default:
      throw new CrdtDecodeError(
        `${path}.t`,
        `unknown CRDT type ${JSON.stringify(value.t)}; expected g, pn, lww or or`,
      );
  }
}

function lww(value: Wire, path: string) {
  if (!('h' in value)) {
    if ('x' in value) throw new CrdtDecodeError(`${path}.h`, 'a value without a stamp');
    return undefined;
  }
  const h = value.h;
  if (!Array.isArray(h) || h.length !== 3 || !isCount(h[0]) || !isCount(h[1]) || !isReplica(h[2])) {
    throw new CrdtDecodeError(`${path}.h`, 'expected [wallMs, logical, replica]');
  }
  if (!('x' in value)) throw new CrdtDecodeError(`${path}.x`, 'a stamp without a value');
  return {
    value: value.x as JsonValue,
    stamp: { wallMs: h[0] as number, logical: h[1] as number, replica: h[2] as string },
  };
}

function orset(value: Wire, path: string) {
  const replicas = value.r;
  if (!Array.isArray(replicas) || !replicas.every(isReplica) || new Set(replicas).size !== replicas.length) {
    throw new CrdtDecodeError(`${path}.r`, 'expected a list of distinct replica ids');
  }
  const dots = (flat: unknown, at: string): Dot[] => {
    if (!Array.isArray(flat) || flat.length % 2 !== 0)
      throw new CrdtDecodeError(at, 'expected [replicaIndex, counter, ...] pairs');
    const out: Dot[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const replica = replicas[flat[i] as number];
      const counter = flat[i + 1];
      if (!Number.isInteger(flat[i]) || replica === undefined)
        throw new CrdtDecodeError(at, `replica index ${JSON.stringify(flat[i])} is not in r`);
      if (!isCount(counter) || counter === 0)
        throw new CrdtDecodeError(at, `dot counter ${JSON.stringify(counter)} is not a positive integer`);
      out.push([replica, counter]);
    }
    return out;
  };
  if (!Array.isArray(value.e))
    throw new CrdtDecodeError(`${path}.e`, `expected a list of [element, dots], got ${describe(value.e)}`);
  const entries = new Map<string, Dot[]>();
  value.e.forEach((entry: unknown, i: number) => {
    const at = `${path}.e[${i}]`;
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string')
      throw new CrdtDecodeError(at, 'expected [element, dots]');
    if (entries.has(entry[0]))
      throw new CrdtDecodeError(at, `element ${JSON.stringify(entry[0])} appears twice`);
    const list = dots(entry[1], `${at}[1]`);
    if (list.length === 0) throw new CrdtDecodeError(`${at}[1]`, 'a present element needs at least one dot');
    entries.set(entry[0], list.sort(compareDots));
  });
  const vv = new Map<string, number>();
  for (const [replica, counter] of dots(value.vv, `${path}.vv`)) {
    if (vv.has(replica)) throw new CrdtDecodeError(`${path}.vv`, `replica ${replica} appears twice`);
    vv.set(replica, counter);
  }
  const context: CausalContext = compact(vv, new Set(dots(value.c, `${path}.c`).map(dotKey)));
  for (const [element, list] of entries) {
    const unseen = list.find((dot) => !contains(context, dot));
    if (unseen)
      throw new CrdtDecodeError(
        `${path}.e`,
        `dot ${unseen[1]}@${unseen[0]} of ${JSON.stringify(element)} is not in the causal context`,
      );
  }
  return orsetFromEntries(entries, context);
}
