import { gcounterFold, gcounterMerge, gcounterValue, type GCounter } from './gcounter';
import { MAX_COUNT } from './limits';
import { lwwMerge, type JsonValue, type LwwRegister } from './lww-register';
import { orsetFold, orsetMerge, orsetValues, type ORSet } from './orset';
import { pncounterFold, pncounterMerge, pncounterValue, type PNCounter } from './pncounter';

/** One CRDT, tagged with its type. */
export type Crdt =
  | { readonly type: 'gcounter'; readonly state: GCounter }
  | { readonly type: 'pncounter'; readonly state: PNCounter }
  | { readonly type: 'lww'; readonly state: LwwRegister }
  | { readonly type: 'orset'; readonly state: ORSet };

export type CrdtType = Crdt['type'];

/** Every type, in the order fields list their variants (and break the tie between equal creation stamps). */
export const CRDT_TYPES: readonly CrdtType[] = ['gcounter', 'pncounter', 'lww', 'orset'];

/** Merges two states of the same type (fields keep states of different types apart: see `mergeField`). */
export function mergeCrdt(a: Crdt, b: Crdt): Crdt {
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

/** What a CRDT reads as: a number for counters, the value for registers, sorted elements for sets. */
export function readCrdt(crdt: Crdt): number | JsonValue | string[] {
  switch (crdt.type) {
    case 'gcounter':
      return gcounterValue(crdt.state);
    case 'pncounter':
      return pncounterValue(crdt.state);
    case 'lww':
      return crdt.state.value;
    case 'orset':
      return orsetValues(crdt.state);
  }
}

/** Folds `group`'s replicas with epochs before `beforeMs` (the same object when nothing changes). */
export function foldCrdt(crdt: Crdt, group: string, beforeMs: number): Crdt {
  switch (crdt.type) {
    case 'gcounter': {
      const state = gcounterFold(crdt.state, group, beforeMs);
      return state === crdt.state ? crdt : { type: crdt.type, state };
    }
    case 'pncounter': {
      const state = pncounterFold(crdt.state, group, beforeMs);
      return state === crdt.state ? crdt : { type: crdt.type, state };
    }
    case 'orset': {
      const state = orsetFold(crdt.state, group, beforeMs);
      return state === crdt.state ? crdt : { type: crdt.type, state };
    }
    case 'lww':
      return crdt;
  }
}

const withFoldOf = (delta: GCounter, state: GCounter, group: string): GCounter => {
  const fold = state.folds.get(group);
  return fold ? { counts: delta.counts, folds: new Map([[group, fold]]) } : delta;
};

/**
 * A counter delta carrying `group`'s fold from the full state, so peers drop the counts it covers at once
 * (a fold stands on its own). Sets never carry horizons in deltas: a horizon claims every dot of the
 * folded replicas seen, true only of a full state.
 */
export function withCounterFold(delta: Crdt, state: Crdt, group: string): Crdt {
  if (delta.type === 'gcounter' && state.type === 'gcounter')
    return { type: delta.type, state: withFoldOf(delta.state, state.state, group) };
  if (delta.type === 'pncounter' && state.type === 'pncounter')
    return {
      type: delta.type,
      state: {
        p: withFoldOf(delta.state.p, state.state.p, group),
        n: withFoldOf(delta.state.n, state.state.n, group),
      },
    };
  return delta;
}

/**
 * Why a state (typically a merge of two valid ones) cannot be kept, or undefined: a counter whose total
 * passed `MAX_COUNT` (concurrent increments can sum past it) would no longer read exactly.
 */
export function crdtLimitProblem(crdt: Crdt): string | undefined {
  const counters =
    crdt.type === 'gcounter' ? [crdt.state] : crdt.type === 'pncounter' ? [crdt.state.p, crdt.state.n] : [];
  return counters.some((counter) => gcounterValue(counter) > MAX_COUNT)
    ? `a counter's total may not pass ${MAX_COUNT}`
    : undefined;
}
