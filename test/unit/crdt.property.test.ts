import fc from 'fast-check';
import {
  CrdtDecodeError,
  decodeCrdt,
  decodeMap,
  emptyORSet,
  encodeCrdt,
  encodeMap,
  gcounterIncrement,
  gcounterMerge,
  lwwMerge,
  mergeCrdt,
  mergeMap,
  orsetAdd,
  orsetHas,
  orsetMerge,
  orsetRemove,
  orsetValues,
  pncounterAdd,
  pncounterMerge,
  type Crdt,
  type CrdtMap,
  type GCounter,
  type JsonValue,
  type LwwRegister,
  type ORSet,
  type PNCounter,
} from '../../runtime/crdt';

const RUNS = { numRuns: 1000 };
const replica = fc.constantFrom('eu-central-1', 'us-east-1', 'ap-southeast-1');
const element = fc.constantFrom('a', 'b', 'c', 'd');

const gcounter: fc.Arbitrary<GCounter> = fc.dictionary(replica, fc.nat({ max: 1000 }));
const pncounter: fc.Arbitrary<PNCounter> = fc.record({ p: gcounter, n: gcounter });
const stamp = fc.record({ wallMs: fc.nat({ max: 5 }), logical: fc.nat({ max: 3 }), replica });
const lww: fc.Arbitrary<LwwRegister | undefined> = fc.option(
  fc.record({ value: fc.jsonValue({ maxDepth: 2 }).map((v) => v as JsonValue), stamp }),
  { nil: undefined },
);

type SetOp =
  { kind: 'add' | 'remove'; at: number; element: string } | { kind: 'sync'; from: number; to: number };
const setOp: fc.Arbitrary<SetOp> = fc.oneof(
  fc.record({ kind: fc.constantFrom('add' as const, 'remove' as const), at: fc.nat({ max: 2 }), element }),
  fc.record({ kind: fc.constant('sync' as const), from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }) }),
);
const REPLICAS = ['eu-central-1', 'us-east-1', 'ap-southeast-1'];

/** Runs operations over three replicas; returns their states and every delta each produced. */
function runSet(ops: readonly SetOp[]): { states: ORSet[]; deltas: ORSet[][] } {
  const states = REPLICAS.map(() => emptyORSet());
  const deltas: ORSet[][] = REPLICAS.map(() => []);
  for (const op of ops) {
    if (op.kind === 'sync') {
      states[op.to] = orsetMerge(states[op.to] as ORSet, states[op.from] as ORSet);
      continue;
    }
    const state = states[op.at] as ORSet;
    const delta =
      op.kind === 'add'
        ? orsetAdd(state, REPLICAS[op.at] as string, op.element)
        : orsetRemove(state, op.element);
    deltas[op.at]?.push(delta);
    states[op.at] = orsetMerge(state, delta);
  }
  return { states, deltas };
}
const orset: fc.Arbitrary<ORSet> = fc
  .tuple(fc.array(setOp, { maxLength: 25 }), fc.nat({ max: 2 }))
  .map(([ops, pick]) => runSet(ops).states[pick] as ORSet);

const crdt: fc.Arbitrary<Crdt> = fc.oneof(
  gcounter.map((state): Crdt => ({ type: 'gcounter', state })),
  pncounter.map((state): Crdt => ({ type: 'pncounter', state })),
  lww.map((state): Crdt => ({ type: 'lww', state })),
  orset.map((state): Crdt => ({ type: 'orset', state })),
);
/** Documents whose keys always hold the same type (k-gcounter, k-orset, ...), as the sync service keeps them. */
const document: fc.Arbitrary<CrdtMap> = fc
  .array(crdt, { maxLength: 4 })
  .map((values) => new Map(values.map((value) => [`k-${value.type}`, value])));

const same = (a: Crdt, b: Crdt) => expect(encodeCrdt(a)).toBe(encodeCrdt(b));

const laws = <T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  merge: (a: T, b: T) => T,
  encode: (x: T) => string,
) => {
  describe(`${name} merge`, () => {
    it('is commutative', () =>
      fc.assert(
        fc.property(arbitrary, arbitrary, (a, b) => encode(merge(a, b)) === encode(merge(b, a))),
        RUNS,
      ));
    it('is associative', () =>
      fc.assert(
        fc.property(
          arbitrary,
          arbitrary,
          arbitrary,
          (a, b, c) => encode(merge(merge(a, b), c)) === encode(merge(a, merge(b, c))),
        ),
        RUNS,
      ));
    it('is idempotent', () =>
      fc.assert(
        fc.property(arbitrary, (a) => encode(merge(a, a)) === encode(a)),
        RUNS,
      ));
  });
};

laws('GCounter', gcounter, gcounterMerge, (s) => encodeCrdt({ type: 'gcounter', state: s }));
laws('PNCounter', pncounter, pncounterMerge, (s) => encodeCrdt({ type: 'pncounter', state: s }));
laws('LWWRegister', lww, lwwMerge, (s) => encodeCrdt({ type: 'lww', state: s }));
laws('ORSet', orset, orsetMerge, (s) => encodeCrdt({ type: 'orset', state: s }));
laws('CrdtMap', document, mergeMap, encodeMap);

describe('deltas', () => {
  it('GCounter and PNCounter: merging the deltas of a run equals merging its final state', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(replica, fc.integer({ min: -50, max: 50 })), { maxLength: 30 }),
        (ops) => {
          let full: PNCounter = { p: {}, n: {} };
          let fromDeltas: PNCounter = { p: {}, n: {} };
          let g: GCounter = {};
          let gFromDeltas: GCounter = {};
          for (const [r, by] of ops) {
            const delta = pncounterAdd(full, r, by);
            full = pncounterMerge(full, delta);
            fromDeltas = pncounterMerge(delta, fromDeltas);
            const gDelta = gcounterIncrement(g, r, Math.abs(by));
            g = gcounterMerge(g, gDelta);
            gFromDeltas = gcounterMerge(gDelta, gFromDeltas);
          }
          same({ type: 'pncounter', state: full }, { type: 'pncounter', state: fromDeltas });
          same({ type: 'gcounter', state: g }, { type: 'gcounter', state: gFromDeltas });
        },
      ),
      RUNS,
    );
  });

  it('ORSet: a replica that receives every delta, shuffled and duplicated, equals one that merges the full states', () => {
    fc.assert(
      fc.property(fc.array(setOp, { maxLength: 30 }), fc.nat(), (ops, seed) => {
        const { states, deltas } = runSet(ops.filter((op) => op.kind !== 'sync'));
        const all = deltas.flat();
        const shuffled = [...all, ...all.slice(0, seed % (all.length + 1))].sort(
          (x, y) =>
            ((encodeCrdt({ type: 'orset', state: x }).length * 31 + seed) % 7) -
            ((encodeCrdt({ type: 'orset', state: y }).length * 31 + seed) % 7),
        );
        const viaDeltas = shuffled.reduce(orsetMerge, emptyORSet());
        const viaStates = states.reduce(orsetMerge, emptyORSet());
        same({ type: 'orset', state: viaDeltas }, { type: 'orset', state: viaStates });
      }),
      RUNS,
    );
  });
});

describe('ORSet semantics', () => {
  it('lets an add win over a concurrent remove, whatever the replicas are called', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 2, maxLength: 2 }),
        element,
        ([adder, remover], e) => {
          const b0 = orsetMerge(emptyORSet(), orsetAdd(emptyORSet(), remover as string, e)); // the remover added it
          const a0 = orsetMerge(emptyORSet(), b0); // the adder observed that add
          const a1 = orsetMerge(a0, orsetAdd(a0, adder as string, e)); // concurrent re-add
          const b1 = orsetMerge(b0, orsetRemove(b0, e)); // concurrent remove
          return orsetHas(orsetMerge(a1, b1), e) && orsetHas(orsetMerge(b1, a1), e);
        },
      ),
      RUNS,
    );
  });

  it('keeps a remove of an observed add, and leaves no trace of the element', () => {
    fc.assert(
      fc.property(replica, element, (adder, e) => {
        const a = orsetMerge(emptyORSet(), orsetAdd(emptyORSet(), adder, e));
        const b = orsetMerge(orsetMerge(emptyORSet(), a), orsetRemove(a, e));
        const merged = orsetMerge(a, b);
        return !orsetHas(merged, e) && merged.entries.length === 0 && !orsetHas(orsetMerge(b, a), e);
      }),
      RUNS,
    );
  });
});

describe('encoding', () => {
  it('round-trips every CRDT', () =>
    fc.assert(
      fc.property(crdt, (c) => encodeCrdt(decodeCrdt(encodeCrdt(c))) === encodeCrdt(c)),
      RUNS,
    ));
  it('round-trips documents', () =>
    fc.assert(
      fc.property(document, (d) => encodeMap(decodeMap(encodeMap(d))) === encodeMap(d)),
      RUNS,
    ));

  const onlyTypedErrors = (decode: (input: unknown) => unknown) => (input: unknown) => {
    try {
      decode(input);
    } catch (error) {
      if (!(error instanceof CrdtDecodeError)) throw error;
    }
  };

  it('throws only CrdtDecodeError on arbitrary input', () => {
    fc.assert(fc.property(fc.anything(), onlyTypedErrors(decodeCrdt)), RUNS);
    fc.assert(
      fc.property(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        onlyTypedErrors(decodeCrdt),
      ),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.jsonValue().map((v) => JSON.stringify({ v: 1, m: v })),
        onlyTypedErrors(decodeMap),
      ),
      RUNS,
    );
  });

  it('throws only CrdtDecodeError on valid encodings with one field replaced', () => {
    fc.assert(
      fc.property(crdt, fc.jsonValue({ maxDepth: 2 }), fc.nat(), (c, junk, pick) => {
        const wire = JSON.parse(encodeCrdt(c)) as Record<string, unknown>;
        const keys = Object.keys(wire);
        wire[keys[pick % keys.length] as string] = junk;
        onlyTypedErrors(decodeCrdt)(JSON.stringify(wire));
      }),
      RUNS,
    );
  });

  it.each([
    ['another protocol version', '{"v":2,"t":"g","s":{}}', '$.v: unsupported protocol version 2; expected 1'],
    ['an unknown type', '{"v":1,"t":"zz"}', '$.t: unknown CRDT type "zz"'],
    [
      'a negative count',
      '{"v":1,"t":"g","s":{"r":-1}}',
      '$.s.r: expected a non-negative integer count, got -1',
    ],
    [
      'a dot outside the context',
      '{"v":1,"t":"or","r":["r"],"e":[["x",[0,3]]],"vv":[0,2],"c":[]}',
      'dot 3@r of "x" is not in the causal context',
    ],
    [
      'a replica index out of range',
      '{"v":1,"t":"or","r":["r"],"e":[["x",[1,1]]],"vv":[0,1],"c":[]}',
      'replica index 1 is not in r',
    ],
    ['not JSON', '{v:1', '$: not valid JSON'],
  ])('names what is wrong with %s', (_what, input, message) => {
    expect(() => decodeCrdt(input)).toThrow(CrdtDecodeError);
    expect(() => decodeCrdt(input)).toThrow(message);
  });

  it('refuses to merge a key that is a counter on one side and a set on the other', () => {
    expect(() =>
      mergeCrdt({ type: 'gcounter', state: {} }, { type: 'orset', state: emptyORSet() }, 'sessions'),
    ).toThrow('cannot merge sessions: it is a gcounter on one side and a orset on the other');
  });
});

describe('ORSet metadata', () => {
  it('stays bounded through add/remove churn between two replicas: no tombstones, a compact context', () => {
    let a = emptyORSet();
    let b = emptyORSet();
    const size = (set: ORSet) => encodeCrdt({ type: 'orset', state: set }).length;
    a = orsetMerge(a, orsetAdd(a, 'eu-central-1', 'x'));
    b = orsetMerge(b, a);
    const initial = size(orsetMerge(a, b));
    for (let i = 0; i < 2_000; i++) {
      const [writer, other] = i % 2 === 0 ? [a, b] : [b, a];
      const removal = orsetRemove(writer, 'x');
      const afterRemoval = orsetMerge(writer, removal);
      const addition = orsetAdd(afterRemoval, i % 2 === 0 ? 'eu-central-1' : 'us-east-1', 'x');
      const updated = orsetMerge(afterRemoval, addition);
      const synced = orsetMerge(orsetMerge(other, removal), addition);
      [a, b] = i % 2 === 0 ? [updated, synced] : [synced, updated];
    }
    const merged = orsetMerge(a, b);
    expect(orsetValues(merged)).toEqual(['x']);
    expect(merged.entries[0]?.[1]).toHaveLength(1);
    expect(merged.context.cloud.size).toBe(0);
    expect(size(merged)).toBeLessThan(initial * 2);
  });
});
