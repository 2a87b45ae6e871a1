import fc from 'fast-check';
import { encodeDocument, readField } from '../../runtime/crdt';
import { decodeEnvelope, encodeEnvelope, type StoredDocument } from '../../runtime/sync';
import { testRegion, type TestRegion } from '../support/sync-harness';

const REGIONS = ['eu-central-1', 'us-east-1', 'ap-southeast-1'] as const;

type Command =
  | { kind: 'increment'; at: number; by: number }
  | { kind: 'add' | 'remove'; at: number; element: string }
  | { kind: 'deliver' }
  | { kind: 'anti-entropy'; at: number }
  | { kind: 'restart'; at: number }
  | { kind: 'snapshot'; at: number }
  | { kind: 'restore'; at: number }
  | { kind: 'advance'; hours: number };

const at = fc.nat({ max: REGIONS.length - 1 });
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('increment' as const),
      at,
      by: fc.integer({ min: -5, max: 9 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constantFrom('add' as const, 'remove' as const),
      at,
      element: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'constructor'),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('anti-entropy' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const), at }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 72 }) }),
  },
);

/**
 * Regions writing one document over a reliable but delayed bus, with process restarts, anti-entropy, days
 * passing (so old epochs fold) and point-in-time restores of a region's item to any earlier state. Nothing
 * is lost in transit, so every update survives somewhere: after the bus drains and anti-entropy runs, every
 * region must read the exact total and every element that was added and never removed.
 */
async function run(commands: readonly Command[]) {
  let now = 1_700_000_000_000;
  const regions: TestRegion[] = REGIONS.map((name, i) =>
    testRegion(name, { now: () => now, seed: i + 1, peers: REGIONS.filter((r) => r !== name) }),
  );
  const snapshots = new Map<number, StoredDocument>();
  let total = 0;
  const added = new Set<string>();
  const removed = new Set<string>();
  const deliver = async () => {
    for (const from of regions) {
      for (const envelope of from.published.splice(0)) {
        const text = encodeEnvelope(envelope);
        for (const to of regions) if (to !== from) await to.replica.receive(decodeEnvelope(text));
      }
    }
  };
  for (const c of commands) {
    const region = 'at' in c ? (regions[c.at] as TestRegion) : undefined;
    switch (c.kind) {
      case 'increment':
        await region?.replica.update('doc', { kind: 'increment', field: 'n', by: c.by });
        total += c.by;
        break;
      case 'add':
      case 'remove':
        await region?.replica.update('doc', { kind: c.kind, field: 's', element: c.element });
        (c.kind === 'add' ? added : removed).add(c.element);
        break;
      case 'deliver':
        await deliver();
        break;
      case 'anti-entropy':
        await region?.replica.publishFullState();
        break;
      case 'restart':
        region?.restart();
        break;
      case 'snapshot': {
        const stored = region?.store.items.get('doc');
        if (stored) snapshots.set(c.at, stored);
        break;
      }
      case 'restore': {
        const snapshot = snapshots.get(c.at);
        if (snapshot) region?.store.items.set('doc', snapshot);
        break;
      }
      case 'advance':
        now += c.hours * 3600 * 1000;
        break;
    }
  }
  for (let pass = 0; pass < 2; pass++) {
    await deliver();
    for (const region of regions) await region.replica.publishFullState();
    await deliver();
  }
  return { regions, total, mustHave: [...added].filter((e) => !removed.has(e)).sort() };
}

describe('sync across restores, restarts and folds', () => {
  jest.setTimeout(120_000);

  it('converges to every update that survives anywhere, whatever goes back to what', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 80 }), async (commands) => {
        const { regions, total, mustHave } = await run(commands);
        const encoded = await Promise.all(
          regions.map(async (r) => encodeDocument(await r.replica.read('doc'))),
        );
        expect(new Set(encoded).size).toBe(1);
        for (const region of regions) {
          const state = await region.replica.read('doc');
          const n = state.get('n');
          expect(n ? readField(n) : 0).toBe(total);
          const s = state.get('s');
          const elements = s ? (readField(s) as string[]) : [];
          for (const element of mustHave) expect(elements).toContain(element);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('folds when days pass and peers send full states, so replica ids stay bounded', async () => {
    const commands: Command[] = [];
    for (let day = 0; day < 40; day++) {
      commands.push({ kind: 'restart', at: 0 }, { kind: 'increment', at: 0, by: 1 }, { kind: 'deliver' });
      commands.push({ kind: 'anti-entropy', at: 1 }, { kind: 'anti-entropy', at: 2 }, { kind: 'deliver' });
      commands.push({ kind: 'advance', hours: 24 });
    }
    const { regions, total } = await run(commands);
    const variant = (await regions[1]?.replica.read('doc'))?.get('n')?.[0];
    const counts = variant?.crdt.type === 'pncounter' ? variant.crdt.state.p.counts.size : -1;
    expect(total).toBe(40);
    expect(counts).toBeGreaterThan(0);
    expect(counts).toBeLessThan(10); // 40 epochs written, all but the last few days' folded
  });
});
