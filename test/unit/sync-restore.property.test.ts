import fc from 'fast-check';
import { encodeDocument, mergeDocument, readField, type CrdtDocument } from '../../runtime/crdt';
import { decodeEnvelope, type StoredDocument } from '../../runtime/sync';
import { DAY, HOUR, syncWorld, type Message } from '../support/sync-world';

const REGIONS = ['eu-central-1', 'us-east-1', 'ap-southeast-1'] as const;

type Command =
  | { kind: 'increment'; at: number; by: number }
  | { kind: 'add' | 'remove'; at: number; element: string }
  | { kind: 'deliver'; pick: number; again: boolean }
  | { kind: 'flush'; to: number }
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
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), again: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flush' as const), to: at }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('anti-entropy' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const), at }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 72 }) }),
  },
);

/**
 * Regions writing one document over a bus that delays, reorders and duplicates messages (each arrives
 * within the inbox's 4-day retention), with process restarts, anti-entropy, days passing (so ended epochs
 * fold) and tables restored from earlier snapshots. Nothing is lost in transit, so every update survives
 * somewhere: once the bus drains and anti-entropy runs, every region reads the same state, the exact
 * total, and every element added and never removed. `foldable: false` runs the same history with folding
 * impossible, which must read the same.
 */
async function run(commands: readonly Command[], foldable: boolean) {
  const world = syncWorld(REGIONS, { foldable });
  const name = (i: number) => REGIONS[i] as string;
  const snapshots = new Map<number, Map<string, StoredDocument>>();
  let total = 0;
  const added = new Set<string>();
  const removed = new Set<string>();
  for (const c of commands) {
    switch (c.kind) {
      case 'increment':
        await world.update(name(c.at), { kind: 'increment', field: 'n', by: c.by });
        total += c.by;
        break;
      case 'add':
      case 'remove':
        await world.update(name(c.at), { kind: c.kind, field: 's', element: c.element });
        (c.kind === 'add' ? added : removed).add(c.element);
        break;
      case 'deliver': {
        const message = world.queue[c.pick % Math.max(1, world.queue.length)];
        if (message) await world.deliver(message, c.again);
        break;
      }
      case 'flush':
        await world.deliverWhere((m) => m.to === name(c.to));
        break;
      case 'anti-entropy':
        await world.antiEntropy(name(c.at));
        break;
      case 'restart':
        world.region(name(c.at)).restart();
        break;
      case 'snapshot':
        snapshots.set(c.at, new Map(world.region(name(c.at)).store.items));
        break;
      case 'restore': {
        const snapshot = snapshots.get(c.at);
        if (snapshot) world.region(name(c.at)).store.restore(snapshot, world.clock.now);
        break;
      }
      case 'advance': {
        // Every message arrives within the inbox's retention of being sent.
        const due = world.clock.now + c.hours * HOUR - 4 * DAY;
        await world.deliverWhere((m: Message) => m.sentAt <= due);
        world.advance(c.hours * HOUR);
        break;
      }
    }
  }
  // What survives anywhere: every region's table and every message still on its way. A history can take
  // every holder of an update back (each table restored to before it arrived): then it survives nowhere.
  let surviving: CrdtDocument = new Map();
  for (const region of REGIONS) surviving = mergeDocument(surviving, await world.state(region));
  for (const message of world.queue) surviving = mergeDocument(surviving, decodeEnvelope(message.text).body);
  const survivingField = (key: string) => {
    const field = surviving.get(key);
    return field ? readField(field) : undefined;
  };
  await world.settle();
  const reads = await Promise.all(
    REGIONS.map(async (region) => ({
      n: (await world.read(region, 'n')) ?? 0,
      s: ((await world.read(region, 's')) ?? []) as string[],
      encoded: encodeDocument(await world.state(region)),
    })),
  );
  return {
    reads,
    total,
    added: [...added].filter((e) => !removed.has(e)).sort(),
    survivingTotal: (survivingField('n') as number | undefined) ?? 0,
    mustHave: ((survivingField('s') as string[] | undefined) ?? []).sort(),
  };
}

describe('sync across restores, restarts and folds', () => {
  jest.setTimeout(180_000);
  const histories = fc.array(command, { minLength: 20, maxLength: 120 });

  it('converges to every update that survives anywhere, whatever table goes back to what', async () => {
    await fc.assert(
      fc.asyncProperty(histories, async (commands) => {
        const { reads, total, added, survivingTotal, mustHave } = await run(commands, true);
        // Without a restore nothing is lost: what survives is everything written.
        if (!commands.some((c) => c.kind === 'restore')) {
          expect(survivingTotal).toBe(total);
          for (const element of added) expect(mustHave).toContain(element);
        }
        expect(new Set(reads.map((r) => r.encoded)).size).toBe(1);
        for (const read of reads) {
          expect(read.n).toBe(survivingTotal);
          for (const element of mustHave) expect(read.s).toContain(element);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('reads the same with folding as without it', async () => {
    await fc.assert(
      fc.asyncProperty(histories, async (commands) => {
        const folding = await run(commands, true);
        const never = await run(commands, false);
        expect(folding.reads.map(({ n, s }) => ({ n, s }))).toEqual(
          never.reads.map(({ n, s }) => ({ n, s })),
        );
      }),
      { numRuns: 200 },
    );
  });
});
