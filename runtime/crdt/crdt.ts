import { gcounterMerge, gcounterValue, type GCounter } from './gcounter';
import { lwwMerge, type JsonValue, type LwwRegister } from './lww-register';
import { orsetMerge, orsetValues, type ORSet } from './orset';
import { pncounterMerge, pncounterValue, type PNCounter } from './pncounter';

/** One CRDT of a document, tagged with its type. */
export type Crdt =
  | { readonly type: 'gcounter'; readonly state: GCounter }
  | { readonly type: 'pncounter'; readonly state: PNCounter }
  | { readonly type: 'lww'; readonly state: LwwRegister | undefined }
  | { readonly type: 'orset'; readonly state: ORSet };

export type CrdtType = Crdt['type'];

/** A document: many CRDTs under string keys. Merging merges key by key. */
export type CrdtMap = ReadonlyMap<string, Crdt>;

/** Two replicas disagree on a key's type: a programming error, never resolved by picking one. */
export class CrdtTypeMismatchError extends Error {
  constructor(
    readonly key: string,
    readonly left: CrdtType,
    readonly right: CrdtType,
  ) {
    super(`cannot merge ${key}: it is a ${left} on one side and a ${right} on the other`);
    this.name = 'CrdtTypeMismatchError';
  }
}

export function mergeCrdt(a: Crdt, b: Crdt, key = '(value)'): Crdt {
  if (a.type !== b.type) throw new CrdtTypeMismatchError(key, a.type, b.type);
  switch (a.type) {
    case 'gcounter':
      return { type: a.type, state: gcounterMerge(a.state, (b as typeof a).state) };
    case 'pncounter':
      return { type: a.type, state: pncounterMerge(a.state, (b as typeof a).state) };
    case 'lww':
      return { type: a.type, state: lwwMerge(a.state, (b as typeof a).state) };
    case 'orset':
      return { type: a.type, state: orsetMerge(a.state, (b as typeof a).state) };
  }
}

export function mergeMap(a: CrdtMap, b: CrdtMap): CrdtMap {
  const merged = new Map(a);
  for (const [key, crdt] of b) {
    const mine = merged.get(key);
    merged.set(key, mine ? mergeCrdt(mine, crdt, key) : crdt);
  }
  return merged;
}

/** What a CRDT reads as: a number for counters, the value for registers, sorted elements for sets. */
export function readCrdt(crdt: Crdt): number | JsonValue | string[] | undefined {
  switch (crdt.type) {
    case 'gcounter':
      return gcounterValue(crdt.state);
    case 'pncounter':
      return pncounterValue(crdt.state);
    case 'lww':
      return crdt.state?.value;
    case 'orset':
      return orsetValues(crdt.state);
  }
}

export const emptyCrdtMap = (): CrdtMap => new Map();
