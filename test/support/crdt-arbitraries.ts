import fc from 'fast-check';
import {
  emptyORSet,
  epochReplicaId,
  gcounterIncrement,
  gcounterMerge,
  lwwSet,
  orsetAdd,
  orsetFold,
  orsetMerge,
  orsetRemove,
  type Crdt,
  type CrdtDocument,
  type CrdtType,
  type Field,
  type GCounter,
  type Hlc,
  type JsonValue,
  type LwwRegister,
  type ORSet,
  type PNCounter,
  type Variant,
  CRDT_TYPES,
  compareHlc,
  emptyGCounter,
  gcounterFold,
} from '../../runtime/crdt';
import { jsonValueProblem } from '../../runtime/crdt/limits';

/** Names of `Object.prototype` members: valid replica ids and keys that must never be read through it. */
export const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty'] as const;

/** Epoch start times (ms) the arbitraries draw from, so folds cover some replicas and not others. */
export const EPOCHS = [1_000, 2_000, 3_000, 4_000];
export const GROUPS = ['eu-central-1', 'us-east-1'] as const;

/** Replicas with lineages (two groups, several epochs each) and replicas named like prototype members. */
export const REPLICAS: readonly string[] = [
  ...GROUPS.flatMap((group) => EPOCHS.map((ms, i) => epochReplicaId(group, ms, `000${i}`))),
  ...PROTOTYPE_NAMES,
];

export const replica = fc.constantFrom(...REPLICAS);
export const group = fc.constantFrom(...GROUPS);
export const horizon = fc.constantFrom(1_500, 2_500, 3_500, 4_500);
export const element = fc.constantFrom('a', 'b', 'c', 'd', '__proto__', 'constructor');
export const fieldKey = fc.constantFrom('count', 'members', 'owner', ...PROTOTYPE_NAMES);

export const stamp: fc.Arbitrary<Hlc> = fc.record({
  wallMs: fc.nat({ max: 5 }),
  logical: fc.nat({ max: 3 }),
  replica,
});

/** A counter as increments and owner folds would leave it (counts its folds cover are dropped). */
export const gcounter: fc.Arbitrary<GCounter> = fc
  .tuple(
    fc.array(fc.tuple(replica, fc.integer({ min: 1, max: 1000 })), { maxLength: 8 }),
    fc.array(fc.tuple(group, horizon), { maxLength: 2 }),
  )
  .map(([increments, folds]) => {
    let counter = emptyGCounter();
    for (const [r, by] of increments) counter = gcounterMerge(counter, gcounterIncrement(counter, r, by));
    for (const [g, before] of folds) counter = gcounterFold(counter, g, before);
    return counter;
  });

export const pncounter: fc.Arbitrary<PNCounter> = fc.record({ p: gcounter, n: gcounter });

/** Register values the operations accept: fast-check's JSON may hold a `__proto__` key, which they refuse. */
const registerValue = fc.jsonValue({ maxDepth: 2 }).filter((value) => jsonValueProblem(value) === undefined);

export const lww: fc.Arbitrary<LwwRegister> = fc
  .tuple(registerValue, stamp)
  .map(([value, at]) => lwwSet(value as JsonValue, at));

export type SetOp =
  | { kind: 'add' | 'remove'; at: number; element: string }
  | { kind: 'sync'; from: number; to: number }
  | { kind: 'deliver'; from: number; to: number; pick: number }
  | { kind: 'fold'; at: number };
/** Three replicas of the set: two epochs of one group and a prototype-named replica. */
export const SET_REPLICAS = [REPLICAS[0], REPLICAS[1], 'constructor'] as readonly string[];

/**
 * Adds and removes, deliveries of one delta of another replica picked at random (deltas skipped that way
 * leave gaps, so contexts carry clouds of ranges) and, less often, full-state syncs.
 */
export const setOp: fc.Arbitrary<SetOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constantFrom('add' as const, 'remove' as const),
      at: fc.nat({ max: 2 }),
      element,
    }),
  },
  fc.record({ kind: fc.constant('sync' as const), from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }) }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('deliver' as const),
      from: fc.nat({ max: 2 }),
      to: fc.nat({ max: 2 }),
      pick: fc.nat(),
    }),
  },
);

/** Runs operations over the three replicas; returns their states and every delta each produced. */
export function runSet(ops: readonly SetOp[]): { states: ORSet[]; deltas: ORSet[][] } {
  const states = SET_REPLICAS.map(() => emptyORSet());
  const deltas: ORSet[][] = SET_REPLICAS.map(() => []);
  for (const op of ops) {
    if (op.kind === 'sync') {
      states[op.to] = orsetMerge(states[op.to] as ORSet, states[op.from] as ORSet);
      continue;
    }
    if (op.kind === 'deliver') {
      const sent = deltas[op.from] as ORSet[];
      const delta = sent[op.pick % Math.max(1, sent.length)];
      if (delta) states[op.to] = orsetMerge(states[op.to] as ORSet, delta);
      continue;
    }
    if (op.kind === 'fold') continue;
    const state = states[op.at] as ORSet;
    const delta =
      op.kind === 'add'
        ? orsetAdd(state, SET_REPLICAS[op.at] as string, op.element)
        : orsetRemove(state, op.element);
    deltas[op.at]?.push(delta);
    states[op.at] = orsetMerge(state, delta);
  }
  return { states, deltas };
}

/** A set from a run, possibly folded by its group (any valid state: the laws hold for all of them). */
export const orsetState: fc.Arbitrary<ORSet> = fc
  .tuple(
    fc.array(setOp, { maxLength: 40, size: 'medium' }),
    fc.nat({ max: 2 }),
    fc.option(horizon, { nil: undefined }),
  )
  .map(([ops, pick, before]) => {
    const state = runSet(ops).states[pick] as ORSet;
    return before === undefined ? state : orsetFold(state, GROUPS[0], before);
  });

/** Some deltas of a run merged (each skipped one leaves a gap): a state with a scope, and often a cloud. */
export const orsetDelta: fc.Arbitrary<ORSet> = fc
  .tuple(
    fc.array(setOp, { minLength: 1, maxLength: 40, size: 'medium' }),
    fc.array(fc.boolean(), { maxLength: 40 }),
  )
  .map(([ops, taken]) => {
    const sent = runSet(ops).deltas.flat();
    const chosen = sent.filter((_, i) => taken[i] ?? i % 2 === 0);
    return chosen.slice(1).reduce(orsetMerge, chosen[0] ?? orsetRemove(emptyORSet(), 'a'));
  });

/** The state of a replica that received only some deltas of a run: a full state whose cloud has gaps. */
export const orsetWithGaps: fc.Arbitrary<ORSet> = orsetDelta.map((delta) => orsetMerge(emptyORSet(), delta));

/** A state of a run, a state that missed deltas, or a merge of deltas (with a scope). */
export const orset: fc.Arbitrary<ORSet> = fc.oneof(
  { weight: 2, arbitrary: orsetState },
  orsetWithGaps,
  orsetDelta,
);

export const crdtOf = (type: CrdtType): fc.Arbitrary<Crdt> => {
  switch (type) {
    case 'gcounter':
      return gcounter.map((state): Crdt => ({ type, state }));
    case 'pncounter':
      return pncounter.map((state): Crdt => ({ type, state }));
    case 'lww':
      return lww.map((state): Crdt => ({ type, state }));
    case 'orset':
      return orset.map((state): Crdt => ({ type, state }));
  }
};

export const crdt: fc.Arbitrary<Crdt> = fc.constantFrom(...CRDT_TYPES).chain(crdtOf);

/** A field: one to four variants of distinct types, each with a creation stamp. */
export const field: fc.Arbitrary<Field> = fc.subarray([...CRDT_TYPES], { minLength: 1 }).chain((types) =>
  fc.tuple(...types.map((type) => fc.tuple(stamp, crdtOf(type)))).map((variants) =>
    variants.map(([created, c]): Variant => {
      // a register's creation stamp never follows its value's stamp
      if (c.type === 'lww' && compareHlc(created, c.state.stamp) > 0)
        return { created: c.state.stamp, crdt: c };
      return { created, crdt: c };
    }),
  ),
);

export const document: fc.Arbitrary<CrdtDocument> = fc
  .array(fc.tuple(fieldKey, field), { maxLength: 4 })
  .map((fields) => new Map(fields));
