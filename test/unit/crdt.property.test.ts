import fc from 'fast-check';
import {
  CrdtDecodeError,
  decodeCrdt,
  decodeDocument,
  emptyGCounter,
  emptyORSet,
  encodeCrdt,
  encodeDocument,
  gcounterFold,
  gcounterIncrement,
  gcounterMerge,
  gcounterValue,
  lineageOf,
  lwwMerge,
  ReplicaRetiredError,
  mergeDocument,
  mergeField,
  orsetAdd,
  orsetFold,
  orsetHas,
  orsetMerge,
  orsetRemove,
  orsetValues,
  pncounterAdd,
  pncounterMerge,
  pncounterValue,
  emptyPNCounter,
  readField,
  visibleVariant,
  type Crdt,
  type CrdtDocument,
  type Field,
  type GCounter,
  type ORSet,
  type PNCounter,
} from '../../runtime/crdt';
import {
  crdt,
  document,
  element,
  field,
  gcounter,
  GROUPS,
  lww,
  orset,
  pncounter,
  PROTOTYPE_NAMES,
  REPLICAS,
  replica,
  runSet,
  setOp,
  SET_REPLICAS,
} from '../support/crdt-arbitraries';

const RUNS = { numRuns: 1000 };

const encodeAs =
  <T>(type: Crdt['type']) =>
  (state: T) =>
    encodeCrdt({ type, state } as Crdt);
const encodeField = (f: Field) => encodeDocument(new Map([['f', f]]));

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

laws('GCounter', gcounter, gcounterMerge, encodeAs<GCounter>('gcounter'));
laws('PNCounter', pncounter, pncounterMerge, encodeAs<PNCounter>('pncounter'));
laws('LWWRegister', lww, lwwMerge, encodeAs('lww'));
laws('ORSet', orset, orsetMerge, encodeAs<ORSet>('orset'));
laws('Field (variants of different types)', field, (a, b) => mergeField(a, b), encodeField);
laws('Document', document, mergeDocument, encodeDocument);

describe('deltas', () => {
  it('GCounter and PNCounter: merging the deltas of a run equals merging its final state', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(replica, fc.integer({ min: -50, max: 50 })), { maxLength: 30 }),
        (ops) => {
          let full = emptyPNCounter();
          let fromDeltas = emptyPNCounter();
          let g = emptyGCounter();
          let gFromDeltas = emptyGCounter();
          for (const [r, by] of ops) {
            const delta = pncounterAdd(full, r, by);
            full = pncounterMerge(full, delta);
            fromDeltas = pncounterMerge(delta, fromDeltas);
            const gDelta = gcounterIncrement(g, r, Math.abs(by));
            g = gcounterMerge(g, gDelta);
            gFromDeltas = gcounterMerge(gDelta, gFromDeltas);
          }
          expect(encodeAs('pncounter')(fromDeltas)).toBe(encodeAs('pncounter')(full));
          expect(encodeAs('gcounter')(gFromDeltas)).toBe(encodeAs('gcounter')(g));
          expect(pncounterValue(full)).toBe(ops.reduce((sum, [, by]) => sum + by, 0));
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
        expect(encodeAs('orset')(viaDeltas)).toBe(encodeAs('orset')(viaStates));
      }),
      RUNS,
    );
  });
});

describe('replica ids named like Object.prototype members', () => {
  it.each(PROTOTYPE_NAMES)('counts %s as a replica like any other', (name) => {
    const counter = gcounterMerge(emptyGCounter(), gcounterIncrement(emptyGCounter(), name, 1));
    expect(gcounterValue(counter)).toBe(1);
    const other = gcounterIncrement(emptyGCounter(), 'eu-central-1', 16);
    expect(gcounterValue(gcounterMerge(counter, other))).toBe(17);
    expect(gcounterValue(gcounterMerge(other, counter))).toBe(17);
  });

  it('merges commutatively whatever the replicas are called', () =>
    fc.assert(
      fc.property(fc.constantFrom(...PROTOTYPE_NAMES), fc.constantFrom(...PROTOTYPE_NAMES), (x, y) => {
        const a = gcounterIncrement(emptyGCounter(), x, 7);
        const b = gcounterIncrement(emptyGCounter(), y, 10);
        return gcounterValue(gcounterMerge(a, b)) === gcounterValue(gcounterMerge(b, a));
      }),
    ));
});

describe('fields whose variants clash', () => {
  it('read as the earliest-created variant in every order of merging', () =>
    fc.assert(
      fc.property(field, field, field, (a, b, c) => {
        const one = mergeField(mergeField(a, b), c);
        const other = mergeField(c, mergeField(b, a));
        expect(visibleVariant(one).crdt.type).toBe(visibleVariant(other).crdt.type);
        expect(JSON.stringify(readField(one))).toBe(JSON.stringify(readField(other)));
      }),
      RUNS,
    ));

  it('keep every variant, so nothing written as the losing type is lost', () =>
    fc.assert(
      fc.property(field, field, (a, b) => {
        const merged = mergeField(a, b);
        for (const variant of [...a, ...b])
          expect(merged.map((v) => v.crdt.type)).toContain(variant.crdt.type);
      }),
      RUNS,
    ));
});

describe('folding old epochs', () => {
  const GROUP = GROUPS[0];

  it('keeps every counter value once the folding region holds all its epochs issued', () =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(replica, fc.integer({ min: 1, max: 100 })), { maxLength: 20 }),
        fc.array(fc.boolean(), { maxLength: 20 }),
        fc.constantFrom(1_500, 2_500, 3_500, 4_500),
        (increments, seen, before) => {
          let full = emptyGCounter();
          const deltas: GCounter[] = [];
          for (const [r, by] of increments) {
            const delta = gcounterIncrement(full, r, by);
            deltas.push(delta);
            full = gcounterMerge(full, delta);
          }
          // a peer that saw some of the deltas; the group's region holds all of its own
          const peer = deltas.filter((_, i) => seen[i]).reduce(gcounterMerge, emptyGCounter());
          const folded = gcounterFold(full, GROUP, before);
          const total = increments.reduce((sum, [, by]) => sum + by, 0);
          expect(gcounterValue(folded)).toBe(total);
          expect(gcounterValue(gcounterMerge(peer, folded))).toBe(total);
          expect(gcounterValue(gcounterMerge(folded, peer))).toBe(total);
          // no count the fold covers is left: one total for them instead
          const covered = [...folded.counts.keys()].filter((r) => {
            const lineage = lineageOf(r);
            return lineage?.group === GROUP && lineage.epochMs < before;
          });
          expect(covered).toEqual([]);
        },
      ),
      RUNS,
    ));

  it('leaves a set reading the same as the unfolded one, merged with any state of the run', () =>
    fc.assert(
      fc.property(
        fc.array(setOp, { maxLength: 30 }),
        fc.nat({ max: 2 }),
        fc.constantFrom(1_500, 2_500, 4_500),
        (ops, pick, before) => {
          const { states } = runSet(ops);
          // replicas 0 and 1 are the folding group's: a state holding all they issued is their merge
          const own = orsetMerge(states[0] as ORSet, states[1] as ORSet);
          const folded = orsetFold(own, GROUP, before);
          const other = states[pick] as ORSet;
          expect(orsetValues(orsetMerge(folded, other))).toEqual(orsetValues(orsetMerge(own, other)));
          expect(orsetValues(orsetMerge(other, folded))).toEqual(orsetValues(orsetMerge(other, own)));
          const replicasListed = [...folded.context.vv.keys()];
          if (before > 4_000) expect(replicasListed.filter((r) => r.startsWith(`${GROUP}@`))).toEqual([]);
        },
      ),
      RUNS,
    ));

  it('refuses a change issued by a replica its group already folded', () => {
    const replicaId = SET_REPLICAS[0] as string;
    const set = orsetFold(orsetMerge(emptyORSet(), orsetAdd(emptyORSet(), replicaId, 'x')), GROUP, 10_000);
    expect(() => orsetAdd(set, replicaId, 'y')).toThrow(ReplicaRetiredError);
    const counter = gcounterFold(gcounterIncrement(emptyGCounter(), replicaId, 1), GROUP, 10_000);
    expect(() => gcounterIncrement(counter, replicaId, 1)).toThrow(ReplicaRetiredError);
  });
});

describe('ORSet semantics', () => {
  it('lets an add win over a concurrent remove, whatever the replicas are called', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.constantFrom(...REPLICAS), { minLength: 2, maxLength: 2 }),
        element,
        ([adder, remover], e) => {
          const b0 = orsetMerge(emptyORSet(), orsetAdd(emptyORSet(), remover as string, e));
          const a0 = orsetMerge(emptyORSet(), b0);
          const a1 = orsetMerge(a0, orsetAdd(a0, adder as string, e));
          const b1 = orsetMerge(b0, orsetRemove(b0, e));
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

  it('stays bounded through add/remove churn between two replicas: no tombstones, a compact context', () => {
    let a = emptyORSet();
    let b = emptyORSet();
    const [first, second] = SET_REPLICAS as [string, string];
    const size = (set: ORSet) => encodeCrdt({ type: 'orset', state: set }).length;
    a = orsetMerge(a, orsetAdd(a, first, 'x'));
    b = orsetMerge(b, a);
    const initial = size(orsetMerge(a, b));
    for (let i = 0; i < 2_000; i++) {
      const [writer, other] = i % 2 === 0 ? [a, b] : [b, a];
      const removal = orsetRemove(writer, 'x');
      const afterRemoval = orsetMerge(writer, removal);
      const addition = orsetAdd(afterRemoval, i % 2 === 0 ? first : second, 'x');
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

describe('encoding', () => {
  it('round-trips every CRDT', () =>
    fc.assert(
      fc.property(crdt, (c) => encodeCrdt(decodeCrdt(encodeCrdt(c))) === encodeCrdt(c)),
      RUNS,
    ));

  it('round-trips documents, prototype-named keys included', () =>
    fc.assert(
      fc.property(document, (d) => encodeDocument(decodeDocument(encodeDocument(d))) === encodeDocument(d)),
      RUNS,
    ));

  /** A document's version 3 wire as version 2 wrote it: each cloud range as dots, no scope (dropped from `wire`). */
  const asVersion2 = (wire: { v: number; m: Record<string, unknown> }) => {
    const sets = Object.values(wire.m)
      .flatMap((field) => (Array.isArray(field) ? field : [field]))
      .filter((variant): variant is Record<string, unknown> => (variant as { t: string }).t === 'or');
    const ranges = new Map<Record<string, unknown>, unknown>();
    for (const variant of sets) {
      const flat = variant.c as number[];
      const dots: number[] = [];
      for (let i = 0; i < flat.length; i += 3)
        for (let n = flat[i + 1] as number; n <= (flat[i + 2] as number); n++)
          dots.push(flat[i] as number, n);
      ranges.set(variant, variant.c);
      variant.c = dots;
      delete variant.s;
    }
    const text = JSON.stringify({ ...wire, v: 2 });
    for (const [variant, c] of ranges) variant.c = c;
    return text;
  };

  it('reads what version 2 wrote as the same state (a scope aside: version 2 had none)', () =>
    fc.assert(
      fc.property(document, (d) => {
        const wire = JSON.parse(encodeDocument(d)) as { v: number; m: Record<string, unknown> };
        expect(wire.v).toBe(3);
        const v2 = asVersion2(wire); // drops the scopes from `wire`
        const withoutScopes = decodeDocument(JSON.stringify({ ...wire, v: 3 }));
        expect(encodeDocument(decodeDocument(v2))).toBe(encodeDocument(withoutScopes));
      }),
      RUNS,
    ));

  it('draws documents with scopes and clouds of multi-dot ranges, so the round-trips cover them', () => {
    const samples = fc.sample(document, { numRuns: 300, seed: 7 }).map(encodeDocument).join('\n');
    expect(samples).toMatch(/"s":\["/);
    expect(samples).toMatch(/"c":\[\d+,(\d+),(?!\1\b)\d+/);
  });

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
        fc.jsonValue().map((v) => JSON.stringify({ v: 3, m: v })),
        onlyTypedErrors(decodeDocument),
      ),
      RUNS,
    );
  });

  /** A valid encoding with one value somewhere inside it replaced by junk. */
  const mutated = fc.tuple(document, fc.jsonValue({ maxDepth: 2 }), fc.nat()).map(([d, junk, pick]) => {
    const wire = JSON.parse(encodeDocument(d)) as unknown;
    const slots: Array<[Record<string, unknown> | unknown[], string | number]> = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) node.forEach((child, i) => (slots.push([node, i]), walk(child)));
      else if (typeof node === 'object' && node !== null)
        for (const key of Object.keys(node)) {
          slots.push([node as Record<string, unknown>, key]);
          walk((node as Record<string, unknown>)[key]);
        }
    };
    walk(wire);
    const slot = slots[pick % Math.max(1, slots.length)];
    if (slot) (slot[0] as Record<string | number, unknown>)[slot[1]] = junk;
    return JSON.stringify(wire);
  });

  it('throws only CrdtDecodeError on valid encodings with one value replaced', () =>
    fc.assert(fc.property(mutated, onlyTypedErrors(decodeDocument)), RUNS));

  it('decodes only states that satisfy the invariants: they re-encode stably and merge lawfully with valid ones', () =>
    fc.assert(
      fc.property(mutated, document, document, (text, valid, other) => {
        let decoded: CrdtDocument;
        try {
          decoded = decodeDocument(text);
        } catch {
          return;
        }
        const encoded = encodeDocument(decoded);
        expect(encodeDocument(decodeDocument(encoded))).toBe(encoded);
        expect(encodeDocument(mergeDocument(decoded, valid))).toBe(
          encodeDocument(mergeDocument(valid, decoded)),
        );
        expect(encodeDocument(mergeDocument(mergeDocument(decoded, valid), other))).toBe(
          encodeDocument(mergeDocument(decoded, mergeDocument(valid, other))),
        );
        expect(encodeDocument(mergeDocument(decoded, decoded))).toBe(encoded);
        decodeDocument(encodeDocument(mergeDocument(decoded, valid)));
      }),
      RUNS,
    ));
});

describe('counters at the edge of their type', () => {
  const MAX = Number.MAX_SAFE_INTEGER;

  it('refuses a local increment that would take the total past 2^53 - 1, and keeps the state encodable', () => {
    const full = gcounterIncrement(emptyGCounter(), 'eu-central-1', MAX);
    expect(gcounterValue(full)).toBe(MAX);
    expect(() => gcounterIncrement(full, 'eu-central-1', 1)).toThrow("a counter's total may not pass");
    expect(() => gcounterIncrement(full, 'us-east-1', 1)).toThrow("a counter's total may not pass");
    expect(() => pncounterAdd({ p: emptyGCounter(), n: full }, 'eu-central-1', -1)).toThrow(
      "a counter's total may not pass",
    );
    expect(decodeCrdt(encodeCrdt({ type: 'gcounter', state: full }))).toEqual({
      type: 'gcounter',
      state: full,
    });
  });

  it('refuses a new dot past 2^53 - 1 rather than issue an unsafe one', () => {
    const replicaId = SET_REPLICAS[0] as string;
    const full: ORSet = {
      entries: [],
      context: { vv: new Map([[replicaId, MAX]]), cloud: new Map(), horizons: new Map() },
    };
    expect(() => orsetAdd(full, replicaId, 'x')).toThrow('a dot counter may not pass 9007199254740991');
    expect(() => decodeCrdt(encodeCrdt({ type: 'orset', state: full }))).not.toThrow();
  });

  it.each([
    ['an unsafe increment', 2 ** 53],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a fraction', 0.5],
    ['a negative increment of a G-Counter', -1],
  ])('refuses %s', (_what, by) => {
    expect(() => gcounterIncrement(emptyGCounter(), 'eu-central-1', by)).toThrow(/integer/);
  });
});
