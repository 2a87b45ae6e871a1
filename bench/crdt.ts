// CRDT benchmark. Prints, in one run:
//  - merge throughput of two 100,000-element OR-Sets built at different replicas, against a baseline
//    taken in the same run: merging two plain Sets of the same strings;
//  - the encoded size of one change (add and remove) to a 100,000-element OR-Set, and of its full state;
//  - the state size after 1,000,000 add/remove cycles over 1,000 live elements, against 1,000 fresh elements;
//  - decoding that full state with every invariant checked, against JSON.parse of the same text;
//  - an add (delta and merge) to a set whose context holds 50,000 pending dots of one replica (one lost
//    dot, then 50,000 later ones), against the same add with none pending;
//  - G-Counter merge throughput.
// Usage: npm run bench:crdt
import {
  cloudSize,
  emptyORSet,
  union,
  type CausalContext,
  orsetDots,
  orsetFromEntries,
  orsetSize,
  orsetValues,
  type ORSetEntry,
  decodeCrdt,
  encodeCrdt,
  emptyGCounter,
  gcounterMerge,
  orsetAdd,
  orsetMerge,
  orsetRemove,
  type GCounter,
  type ORSet,
} from '../runtime/crdt';
import { encodeEnvelope } from '../runtime/sync/envelope';

const bytes = (set: ORSet) => Buffer.byteLength(encodeCrdt({ type: 'orset', state: set }));

function time<T>(fn: () => T, repeats: number): { result: T; ms: number } {
  let result = fn();
  const started = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) result = fn();
  return { result, ms: Number(process.hrtime.bigint() - started) / 1e6 / repeats };
}

/** A set as a replica that added `elements` elements one by one would hold it (checked below). */
function build(replica: string, elements: number, offset = 0): ORSet {
  const entries = Array.from({ length: elements }, (_, i): ORSetEntry => [
    `element-${offset + i}`,
    [[replica, i + 1]],
  ]);
  return orsetFromEntries(entries, {
    vv: new Map([[replica, elements]]),
    cloud: new Map(),
    horizons: new Map(),
  });
}

const sample = 2_000;
let viaDeltas = emptyORSet();
for (let i = 0; i < sample; i++)
  viaDeltas = orsetMerge(viaDeltas, orsetAdd(viaDeltas, 'eu-central-1', `element-${i}`));
if (bytes(viaDeltas) !== bytes(build('eu-central-1', sample)))
  throw new Error('directly built set differs from the delta-built one');

const N = 100_000;
const a = build('eu-central-1', N);
const b = build('us-east-1', N, N / 2); // half the elements overlap
const merge = time(() => orsetMerge(a, b), 5);
const plainA = new Set(orsetValues(a));
const plainB = new Set(orsetValues(b));
const baseline = time(() => new Set([...plainA, ...plainB]), 5);
console.log(
  `OR-Set merge, 2 x ${N.toLocaleString()} elements   ${merge.ms.toFixed(1).padStart(8)} ms   (${orsetSize(merge.result).toLocaleString()} elements after)`,
);
console.log(
  `baseline: union of two plain Sets        ${baseline.ms.toFixed(1).padStart(8)} ms   ratio ${(merge.ms / baseline.ms).toFixed(1)}x`,
);

const addDelta = orsetAdd(a, 'eu-central-1', 'element-new');
const removeDelta = orsetRemove(a, 'element-42');
console.log(
  `delta of one add to a ${N.toLocaleString()}-element set     ${bytes(addDelta).toString().padStart(8)} B`,
);
const stamp = { wallMs: 1_795_000_000_000, logical: 0, replica: 'eu-central-1@lqx2k3m0aab1c' };
const envelope = encodeEnvelope({
  origin: 'eu-central-1',
  document: 'presence',
  kind: 'delta',
  hlc: stamp,
  body: new Map([['members', [{ created: stamp, crdt: { type: 'orset', state: addDelta } }]]]),
});
console.log(
  `sync message carrying that add (envelope)  ${Buffer.byteLength(envelope).toString().padStart(8)} B`,
);
console.log(`delta of one remove                        ${bytes(removeDelta).toString().padStart(8)} B`);
console.log(`full state of that set                     ${bytes(a).toLocaleString().padStart(8)} B`);
const fullText = encodeCrdt({ type: 'orset', state: a });
const decode = time(() => decodeCrdt(fullText), 5);
const parse = time(() => JSON.parse(fullText) as unknown, 5);
console.log(
  `decode it, every invariant checked          ${decode.ms.toFixed(1).padStart(8)} ms   vs JSON.parse ${parse.ms.toFixed(1)} ms: ${(decode.ms / parse.ms).toFixed(1)}x`,
);

// 1,000 live elements, then 1,000,000 cycles of remove + re-add, each made and applied as a delta. A
// remove or add delta of one element only touches that element's entry, so the loop merges the delta into
// that entry and the context and replaces the entry in its own array (a pure orsetMerge copies all 1,000
// entries per delta); every 50,000 cycles the result is checked against the pure orsetMerge.
const LIVE = 1_000;
const CYCLES = 1_000_000;
const live = build('eu-central-1', LIVE);
const fresh = bytes(live);
const entries: ORSetEntry[] = [...live.entries];
let context = live.context;
const started = process.hrtime.bigint();
for (let i = 0; i < CYCLES; i++) {
  const element = `element-${i % LIVE}`;
  const before: ORSet | undefined = i % 50_000 === 0 ? { entries: [...entries], context } : undefined;
  const removal = orsetRemove({ entries, context }, element);
  applyToOneEntry(element, removal);
  const addition = orsetAdd({ entries, context }, 'eu-central-1', element);
  applyToOneEntry(element, addition);
  if (before && bytes(orsetMerge(orsetMerge(before, removal), addition)) !== bytes({ entries, context })) {
    throw new Error(`cycle ${i}: applying to one entry diverged from orsetMerge`);
  }
}
const churnMs = Number(process.hrtime.bigint() - started) / 1e6;
const churned = bytes({ entries, context });
console.log(
  `state after ${CYCLES.toLocaleString()} add/remove cycles over ${LIVE.toLocaleString()} elements ${churned.toLocaleString().padStart(8)} B   vs ${fresh.toLocaleString()} B fresh: ${(churned / fresh).toFixed(2)}x   (${(churnMs / 1000).toFixed(1)} s)`,
);

/** Index of the first entry not before `element`. */
function lowerBound(element: string): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((entries[middle] as ORSetEntry)[0] < element) low = middle + 1;
    else high = middle;
  }
  return low;
}

function applyToOneEntry(element: string, delta: ORSet): void {
  const own = orsetDots({ entries, context }, element);
  const merged = orsetMerge({ entries: own.length ? [[element, own]] : [], context }, delta);
  const at = lowerBound(element);
  const present = entries[at]?.[0] === element;
  const [entry] = merged.entries;
  if (entry) entries.splice(at, present ? 1 : 0, entry);
  else if (present) entries.splice(at, 1);
  context = merged.context;
}

// A peer's deltas 2..50,001 arrived, its first was lost: the context holds 50,000 dots beyond a gap (one
// range). An add at this replica, made and merged, costs the same as with nothing pending.
const PENDING = 50_000;
let peer: ORSet = emptyORSet();
let pending: CausalContext = live.context;
for (let k = 1; k <= PENDING + 1; k++) {
  const delta = orsetAdd(peer, 'us-east-1', `peer-${k}`);
  peer = { entries: [], context: union(peer.context, delta.context) };
  if (k > 1) pending = union(pending, delta.context);
}
if (cloudSize(pending) !== PENDING || pending.cloud.get('us-east-1')?.length !== 1)
  throw new Error('the pending dots should be one range of 50,000');
const withoutPending = build('eu-central-1', LIVE);
const withPending: ORSet = { entries: withoutPending.entries, context: pending };
const addTo = (set: ORSet) => orsetMerge(set, orsetAdd(set, 'eu-central-1', 'element-new'));
const ADDS = 2_000;
const none = time(() => addTo(withoutPending), ADDS);
const held = time(() => addTo(withPending), ADDS);
console.log(
  `add to a ${LIVE.toLocaleString()}-element set, nothing pending     ${(none.ms * 1000).toFixed(1).padStart(8)} µs`,
);
console.log(
  `same add, ${PENDING.toLocaleString()} dots pending (1 lost)     ${(held.ms * 1000).toFixed(1).padStart(8)} µs   ratio ${(held.ms / none.ms).toFixed(2)}x`,
);

const counters: GCounter[] = Array.from({ length: 1000 }, (_, i) => ({
  counts: new Map([
    ['eu-central-1', i + 1],
    ['us-east-1', 1000 - i],
    ['ap-southeast-1', i * 2 + 1],
  ]),
  folds: new Map(),
}));
const gmerge = time(() => counters.reduce(gcounterMerge, emptyGCounter()), 20);
console.log(`G-Counter merges (3 replicas)             ${(1000 / gmerge.ms).toFixed(0).padStart(8)} per ms`);
