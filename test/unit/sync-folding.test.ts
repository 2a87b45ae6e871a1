import type { Field, Hlc } from '../../runtime/crdt';
import { MAX_DOCUMENT_BYTES, type StoredDocument } from '../../runtime/sync';
import { paddedTo, storedBytes, testRegion } from '../support/sync-harness';
import { DAY, HOUR, syncWorld, type SyncWorld } from '../support/sync-world';

const EU = 'eu-central-1';
const US = 'us-east-1';

/** The counter `n` as `region` stores it: eu's fold horizon (-1: none), and how many counts it lists. */
function counter(world: SyncWorld, region: string) {
  const variant = (world.region(region).store.items.get('doc')?.state.get('n') as Field | undefined)?.[0];
  if (variant?.crdt.type !== 'pncounter') return { horizon: -1, counts: 0 };
  return {
    horizon: variant.crdt.state.p.folds.get(EU)?.beforeMs ?? -1,
    counts: variant.crdt.state.p.counts.size,
  };
}

/** eu writes from a new process every day for `days` days; every message arrives; us sends full states. */
async function dailyWrites(world: SyncWorld, days: number) {
  for (let day = 0; day < days; day++) {
    world.region(EU).restart();
    await world.update(EU, { kind: 'increment', field: 'n', by: 1 });
    await world.update(EU, { kind: 'add', field: 's', element: `e${day}` });
    await world.antiEntropy(US);
    await world.drain();
    world.advance(DAY);
  }
}

describe('folding old epochs', () => {
  it('folds the epochs a region issued once they ended, keeping every value, and peers follow', async () => {
    const world = syncWorld([EU, US]);
    await dailyWrites(world, 10);
    await world.update(EU, { kind: 'increment', field: 'n', by: 1 });
    await world.settle();
    expect(counter(world, EU).horizon).toBeGreaterThan(0);
    expect(counter(world, EU).counts).toBeLessThanOrEqual(2);
    expect(counter(world, US)).toEqual(counter(world, EU));
    for (const region of [EU, US]) {
      expect(await world.read(region, 'n')).toBe(11);
      expect((await world.read(region, 's')) as string[]).toHaveLength(10);
    }
  });

  it('does not count a delta as having heard the peer: only a full state merged whole', async () => {
    const world = syncWorld([EU, US]);
    await world.update(US, { kind: 'set', field: 'v', value: 1 });
    await world.drain();
    expect(world.region(EU).store.items.get('doc')?.heard).toBeUndefined();
    await world.update(US, { kind: 'set', field: 'big', value: 'x'.repeat(150_000) });
    await world.update(EU, { kind: 'set', field: 'mine', value: 'y' });
    const eu = world.region(EU).store;
    const stored = eu.items.get('doc') as StoredDocument;
    const stamp = stored.clock as Hlc;
    eu.items.set('doc', { ...stored, state: paddedTo(stored.state, MAX_DOCUMENT_BYTES - 100_000, stamp) });
    world.queue.length = 0;
    await world.antiEntropy(US);
    expect(await world.deliverWhere((m) => m.to === EU)).toEqual(['merged']);
    expect(world.region(EU).calls.refused).toHaveLength(1); // `big` kept out: the document would be too large
    expect(world.region(EU).store.items.get('doc')?.heard).toBeUndefined();
  });

  it('waits after finding its state went back, until peers sent full states later than any message could arrive', async () => {
    const world = syncWorld([EU, US]);
    await dailyWrites(world, 3);
    const before = world.region(EU).store.items.get('doc') as StoredDocument;
    await dailyWrites(world, 3);
    world.region(EU).store.items.set('doc', before); // an item put back by hand
    world.region(EU).restart(); // by a process that never saw it
    await world.antiEntropy(US);
    await world.drain(); // us shows eu counts eu no longer holds: eu's state went back
    expect(world.region(EU).store.items.get('doc')?.regressedAt).toBe(world.clock.now);
    const horizon = counter(world, EU).horizon;
    await dailyWrites(world, 20);
    expect(counter(world, EU).horizon).toBe(horizon); // no new fold within the in-flight bound
    expect(counter(world, EU).counts).toBeGreaterThan(20);
    await dailyWrites(world, 25);
    expect(counter(world, EU).horizon).toBeGreaterThan(horizon); // then it folds again
    expect(counter(world, EU).counts).toBeLessThan(5);
    await world.settle();
    for (const region of [EU, US]) expect(await world.read(region, 'n')).toBe(51);
  });

  it('loses nothing when a full state sent before a table restore arrives after the region folded again', async () => {
    const world = syncWorld([EU, US]);
    await dailyWrites(world, 3);
    const snapshot = new Map(world.region(EU).store.items);
    await world.update(EU, { kind: 'increment', field: 'n', by: 100 });
    await world.antiEntropy(EU);
    const late = world.queue.filter((m) => m.from === EU); // held up on their way to us
    world.queue.splice(0, world.queue.length, ...world.queue.filter((m) => !late.includes(m)));
    world.region(EU).store.restore(snapshot, world.clock.now); // a restored table: a new one
    world.region(EU).restart();
    for (let day = 0; day < 3; day++) {
      world.advance(DAY);
      await world.update(EU, { kind: 'increment', field: 'n', by: 1 });
      await world.antiEntropy(US);
      await world.drain();
    }
    for (const message of late) await world.deliver({ ...message }, true); // days later, within retention
    await world.settle();
    for (const region of [EU, US]) expect(await world.read(region, 'n')).toBe(3 + 100 + 3);
  });

  it.each([
    ['waits', 2, false],
    ['folds', 1_000, true],
  ])(
    "%s its ended epoch when the document has %i bytes of room left (a set's first horizon adds some)",
    async (_what, room, folds) => {
      const world = syncWorld([EU, US]);
      await world.update(EU, { kind: 'add', field: 's', element: 'x' }); // one epoch, never folded yet
      await world.drain();
      const eu = world.region(EU);
      const stored = eu.store.items.get('doc') as StoredDocument;
      const stamp = { wallMs: world.clock.now, logical: 9, replica: eu.replica.identity.replica };
      const state = paddedTo(stored.state, MAX_DOCUMENT_BYTES - room, stamp);
      eu.store.items.set('doc', { ...stored, state });
      expect(storedBytes(state)).toBe(MAX_DOCUMENT_BYTES - room);
      world.advance(3 * DAY);
      await world.antiEntropy(US); // eu's first full state from us: eu may fold its ended epoch
      expect(await world.deliverWhere((m) => m.to === EU)).toEqual(['merged']);
      const after = eu.store.items.get('doc') as StoredDocument;
      const set = (after.state.get('s') as Field)[0];
      expect(set?.crdt.type === 'orset' && set.crdt.state.context.horizons.size).toBe(folds ? 1 : 0);
      expect(storedBytes(after.state)).toBeLessThanOrEqual(MAX_DOCUMENT_BYTES);
    },
  );
});

describe('a process that cannot vouch for what it wrote', () => {
  it('starts a new epoch when a save failed without an answer, so a restore cannot make it reuse a count', async () => {
    const eu = testRegion(EU);
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    const before = eu.store.items.get('doc') as StoredDocument;
    const save = eu.store.save;
    eu.store.save = async (...args) => {
      await save(...args); // stored, but the answer is lost
      throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
    };
    await expect(eu.replica.update('doc', { kind: 'increment', field: 'n', by: 2 })).rejects.toThrow(
      'socket hang up',
    );
    eu.store.save = save;
    const written = eu.published.splice(0);
    const issuedBy = written[0]?.hlc.replica;
    eu.store.items.set('doc', before);
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 4 });
    expect(eu.published[0]?.hlc.replica).not.toBe(issuedBy);
  });

  it('starts a new epoch when it forgets a document, rather than write it again unchecked', async () => {
    const eu = testRegion(EU);
    const first = eu.replica.identity.replica;
    for (let i = 0; i <= 10_000; i++)
      await eu.replica.update(`doc-${i}`, { kind: 'increment', field: 'n', by: 1 });
    expect(eu.replica.identity.replica).not.toBe(first);
  });

  it('remembers what its earlier epochs wrote, so a restore after a daily rotation is still found', async () => {
    let now = 1_700_000_000_000;
    const eu = testRegion(EU, { now: () => now });
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    const before = eu.store.items.get('doc') as StoredDocument;
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    now += DAY + HOUR; // the next write starts a new epoch for its age
    eu.store.items.set('doc', before);
    await eu.replica.update('doc', { kind: 'increment', field: 'n', by: 1 });
    expect(eu.store.items.get('doc')?.regressedAt).toBe(now);
  });
});
