import fc from 'fast-check';
import {
  cloudRanges,
  cloudSize,
  contains,
  containsRange,
  contextOf,
  EMPTY_CONTEXT,
  emptyORSet,
  encodeCrdt,
  decodeCrdt,
  nextDot,
  orsetAdd,
  orsetFold,
  orsetMerge,
  orsetRemove,
  union,
  showsLossOf,
  type CausalContext,
  type CrdtDocument,
  type Dot,
  type ORSet,
} from '../../runtime/crdt';
import { checkTrust, MAX_DELTA_CONTEXT_DOTS } from '../../runtime/sync/trust';
import { GROUPS, runSet, setOp } from '../support/crdt-arbitraries';

const WRITER = 'us-east-1@00000000a0001';
const READER = 'eu-central-1@00zzzzzzz0002'; // an epoch after the horizon the fold below uses

/** The context a reader builds from the add deltas of `WRITER` numbered `from` to `to`, merged one by one. */
function received(from: number, to: number, start: CausalContext = EMPTY_CONTEXT): CausalContext {
  let writer: ORSet = emptyORSet();
  let context = start;
  for (let k = 1; k <= to; k++) {
    const delta = orsetAdd(writer, WRITER, `element-${k}`);
    // the writer's own view: only its context matters for the next dot
    writer = { entries: [], context: union(writer.context, delta.context) };
    if (k >= from) context = union(context, delta.context);
  }
  return context;
}

/** Every invariant of the cloud's form: sorted, disjoint, non-adjacent ranges, each above vv + 1. */
function expectCompact(context: CausalContext): void {
  for (const [replica, ranges] of context.cloud) {
    expect(ranges.length).toBeGreaterThan(0);
    let previousEnd = (context.vv.get(replica) ?? 0) + 1;
    for (const [from, to] of ranges) {
      expect(from).toBeLessThanOrEqual(to);
      expect(from).toBeGreaterThan(previousEnd);
      previousEnd = to + 1;
    }
  }
}

describe('CausalContext with one lost dot', () => {
  const context = received(2, 50_001);

  it('holds the 50,000 dots that follow it as ONE range', () => {
    expect([...context.cloud]).toEqual([[WRITER, [[2, 50_001]]]]);
    expect(context.vv.has(WRITER)).toBe(false);
    expect(cloudSize(context)).toBe(50_000);
    expect([...cloudRanges(context)]).toEqual([[WRITER, 2, 50_001]]);
  });

  it('contains exactly the dots it received', () => {
    expect(contains(context, [WRITER, 1])).toBe(false);
    expect(contains(context, [WRITER, 2])).toBe(true);
    expect(contains(context, [WRITER, 25_000])).toBe(true);
    expect(contains(context, [WRITER, 50_001])).toBe(true);
    expect(contains(context, [WRITER, 50_002])).toBe(false);
    expect(contains(context, [READER, 1])).toBe(false);
    expect(containsRange(context, WRITER, 2, 50_001)).toBe(true);
    expect(containsRange(context, WRITER, 1, 2)).toBe(false);
    expect(containsRange(context, WRITER, 50_000, 50_002)).toBe(false);
  });

  it('issues the next dot past the range, and the first dot of a replica it has not seen', () => {
    expect(nextDot(context, WRITER)).toEqual([WRITER, 50_002]);
    expect(nextDot(context, READER)).toEqual([READER, 1]);
  });

  it('keeps the range through an add at another replica, and folds it into the vector once the lost dot arrives', () => {
    const set: ORSet = { entries: [], context };
    const after = orsetMerge(set, orsetAdd(set, READER, 'x'));
    expect([...after.context.cloud]).toEqual([[WRITER, [[2, 50_001]]]]);
    expect(after.context.vv.get(READER)).toBe(1);
    const healed = union(after.context, received(1, 1));
    expect(healed.cloud.size).toBe(0);
    expect(healed.vv.get(WRITER)).toBe(50_001);
    expect(nextDot(healed, WRITER)).toEqual([WRITER, 50_002]);
  });

  it('is the same context whatever order the dots come in', () => {
    const dots: Dot[] = Array.from({ length: 50_000 }, (_, i) => [WRITER, 50_001 - i]);
    const built = contextOf(dots);
    expect([...built.cloud]).toEqual([...context.cloud]);
    expect(encodeCrdt({ type: 'orset', state: { entries: [], context: built } })).toBe(
      encodeCrdt({ type: 'orset', state: { entries: [], context } }),
    );
  });

  it('round-trips through the codec as one range', () => {
    const text = encodeCrdt({ type: 'orset', state: { entries: [], context } });
    expect(text).toContain(`"c":[0,2,50001]`);
    const decoded = decodeCrdt(text);
    expect(decoded.type === 'orset' && [...decoded.state.context.cloud]).toEqual([[WRITER, [[2, 50_001]]]]);
  });
});

describe('CausalContext ranges', () => {
  it('joins ranges that touch or overlap, and keeps those apart that do not', () => {
    const a = contextOf([
      [WRITER, 3],
      [WRITER, 4],
      [WRITER, 10],
    ]);
    const b = contextOf([
      [WRITER, 5],
      [WRITER, 12],
      [WRITER, 13],
    ]);
    expect(a.cloud.get(WRITER)).toEqual([
      [3, 4],
      [10, 10],
    ]);
    expect(union(a, b).cloud.get(WRITER)).toEqual([
      [3, 5],
      [10, 10],
      [12, 13],
    ]);
    expect(union(b, a).cloud.get(WRITER)).toEqual(union(a, b).cloud.get(WRITER));
    expect(containsRange(union(a, b), WRITER, 3, 5)).toBe(true);
    expect(containsRange(union(a, b), WRITER, 5, 10)).toBe(false);
    expect(nextDot(union(a, b), WRITER)).toEqual([WRITER, 14]);
  });

  it('folds the range that meets vv + 1 into the vector, and drops those the vector covers', () => {
    const gappy = contextOf([
      [WRITER, 4],
      [WRITER, 5],
      [WRITER, 8],
    ]);
    const upTo3 = contextOf([
      [WRITER, 1],
      [WRITER, 2],
      [WRITER, 3],
    ]);
    expect(upTo3.vv.get(WRITER)).toBe(3);
    expect(upTo3.cloud.size).toBe(0);
    const joined = union(gappy, upTo3);
    expect(joined.vv.get(WRITER)).toBe(5);
    expect([...joined.cloud]).toEqual([[WRITER, [[8, 8]]]]);
    const upTo9: CausalContext = { vv: new Map([[WRITER, 9]]), cloud: new Map(), horizons: new Map() };
    const covered = union(gappy, upTo9);
    expect(covered.vv.get(WRITER)).toBe(9);
    expect(covered.cloud.size).toBe(0);
  });

  it('agrees with a plain set of dots on every membership, the next dot and the size', () =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(WRITER, READER), fc.integer({ min: 1, max: 40 })), {
          maxLength: 60,
        }),
        fc.array(fc.tuple(fc.constantFrom(WRITER, READER), fc.integer({ min: 1, max: 40 })), {
          maxLength: 60,
        }),
        (left, right) => {
          const context = union(contextOf(left as Dot[]), contextOf(right as Dot[]));
          expectCompact(context);
          const model = new Set([...left, ...right].map(([r, n]) => `${r}/${n}`));
          for (const replica of [WRITER, READER]) {
            const has = (n: number) => model.has(`${replica}/${n}`);
            const counters = Array.from({ length: 42 }, (_, i) => i + 1);
            expect(counters.filter((n) => contains(context, [replica, n]))).toEqual(counters.filter(has));
            expect(nextDot(context, replica)).toEqual([replica, Math.max(0, ...counters.filter(has)) + 1]);
            const spans = counters.flatMap((from) =>
              [0, 1, 2, 5].map((width) => [from, from + width] as const),
            );
            const allSeen = ([from, to]: readonly [number, number]) =>
              counters.slice(from - 1, to).length === to - from + 1 &&
              counters.slice(from - 1, to).every(has);
            expect(spans.filter(([from, to]) => containsRange(context, replica, from, to))).toEqual(
              spans.filter(allSeen),
            );
          }
          const beyondVector = [...model].filter((key) => {
            const [r, n] = key.split('/') as [string, string];
            return Number(n) > (context.vv.get(r) ?? 0);
          });
          expect(cloudSize(context)).toBe(beyondVector.length);
        },
      ),
      { numRuns: 300 },
    ));
});

describe('ORSet scope', () => {
  const set = orsetMerge(emptyORSet(), orsetAdd(emptyORSet(), WRITER, 'a'));

  it('names the element an add or a remove speaks for', () => {
    expect(orsetAdd(set, WRITER, 'b').scope).toEqual(['b']);
    expect(orsetRemove(set, 'a').scope).toEqual(['a']);
    expect(orsetRemove(set, 'absent').scope).toEqual(['absent']);
    expect(emptyORSet().scope).toBeUndefined();
    expect(set.scope).toBeUndefined();
  });

  it('merges to the sorted union between deltas, and to none with a full state', () => {
    const c = orsetAdd(set, WRITER, 'c');
    const a = orsetRemove(set, 'a');
    const b = orsetAdd(set, READER, 'b');
    expect(orsetMerge(c, a).scope).toEqual(['a', 'c']);
    expect(orsetMerge(orsetMerge(c, a), b).scope).toEqual(['a', 'b', 'c']);
    expect(orsetMerge(b, orsetMerge(a, c)).scope).toEqual(['a', 'b', 'c']);
    expect(orsetMerge(c, c).scope).toEqual(['c']);
    expect(orsetMerge(set, c).scope).toBeUndefined();
    expect(orsetMerge(c, set).scope).toBeUndefined();
  });

  it('survives a fold and the codec', () => {
    const old = 'eu-central-1@000000001abcd';
    const delta = orsetMerge(orsetAdd(emptyORSet(), old, 'x'), orsetAdd(emptyORSet(), READER, 'y'));
    const folded = orsetFold(delta, GROUPS[0], 10 ** 9);
    expect(folded.context.horizons.size).toBe(1);
    expect([...folded.context.vv.keys()]).toEqual([READER]);
    expect(folded.scope).toEqual(['x', 'y']);
    const decoded = decodeCrdt(encodeCrdt({ type: 'orset', state: folded }));
    expect(decoded.type === 'orset' && decoded.state.scope).toEqual(['x', 'y']);
  });

  it('is all a delta speaks for: merging it leaves every other element of a state of the same run as it was', () =>
    fc.assert(
      fc.property(
        fc.array(setOp, { maxLength: 40, size: 'medium' }),
        fc.nat({ max: 2 }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        (ops, pick, taken) => {
          const { states, deltas } = runSet(ops);
          const chosen = deltas.flat().filter((_, i) => taken[i] ?? true);
          if (chosen.length === 0) return;
          const delta = chosen.reduce(orsetMerge);
          const scope = delta.scope as readonly string[];
          expect([...scope].sort()).toEqual(scope);
          expect(delta.entries.every(([element]) => scope.includes(element))).toBe(true);
          const state = states[pick] as ORSet;
          const merged = orsetMerge(state, delta);
          const outside = (s: ORSet) => s.entries.filter(([element]) => !scope.includes(element));
          expect(outside(merged)).toEqual(outside(state));
          expect(orsetMerge(delta, state).entries).toEqual(merged.entries);
        },
      ),
      { numRuns: 500 },
    ));
});

describe('range clouds where the sync service reads them', () => {
  const NOW = 1_700_000_000_000;
  const ORIGIN = 'eu-central-1@00lmw3ai8abcd';
  const stamp = { wallMs: NOW, logical: 0, replica: ORIGIN };
  const body = (context: CausalContext): CrdtDocument =>
    new Map([['s', [{ created: stamp, crdt: { type: 'orset', state: { entries: [], context } } }]]]);
  const cloudOf = (from: number, to: number): CausalContext => ({
    vv: new Map(),
    cloud: new Map([[ORIGIN, [[from, to]]]]),
    horizons: new Map(),
  });

  it("checkTrust counts a delta's cloud by the dots its ranges name, not by its ranges", () => {
    const policy = { region: 'us-east-1', peers: ['eu-central-1'], maxClockSkewMs: 300_000 };
    const delta = (context: CausalContext) =>
      ({ origin: 'eu-central-1', document: 'd', kind: 'delta', hlc: stamp, body: body(context) }) as const;
    expect(() => checkTrust(delta(cloudOf(3, 2 + MAX_DELTA_CONTEXT_DOTS)), policy, NOW)).not.toThrow();
    expect(() => checkTrust(delta(cloudOf(3, 3 + MAX_DELTA_CONTEXT_DOTS)), policy, NOW)).toThrow(
      expect.objectContaining({ code: 'delta-context' }),
    );
    const foreign: CausalContext = { ...cloudOf(3, 4), cloud: new Map([['constructor', [[3, 4]]]]) };
    expect(() => checkTrust(delta(foreign), policy, NOW)).toThrow(
      expect.objectContaining({ code: 'unknown-replica' }),
    );
  });

  it("showsLossOf finds a dot of the group's own replica in an incoming range that the stored cloud lacks", () => {
    const stored = body(
      union(cloudOf(3, 5), { vv: new Map(), cloud: new Map([[ORIGIN, [[8, 9]]]]), horizons: new Map() }),
    );
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(3, 5)))).toBe(false);
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(4, 4)))).toBe(false);
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(8, 9)))).toBe(false);
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(3, 6)))).toBe(true);
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(5, 8)))).toBe(true);
    expect(showsLossOf('eu-central-1', stored, body(cloudOf(10, 10)))).toBe(true);
    expect(showsLossOf('us-east-1', stored, body(cloudOf(10, 10)))).toBe(false);
  });
});
