import { encodeMap, readCrdt, type CrdtMap } from '../../runtime/crdt';
import {
  decodeEnvelope,
  encodeEnvelope,
  SyncReplica,
  type DocumentStore,
  type StoredDocument,
} from '../../runtime/sync';
import type { Operation } from '../../runtime/sync/operations';

/** A seeded pseudo-random generator (mulberry32): the same seed replays the same run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Settles deferred work one piece at a time, in an order drawn from the seed. */
class Scheduler {
  private readonly pending: Array<() => void> = [];
  constructor(private readonly random: () => number) {}

  defer<T>(work: () => T): Promise<T> {
    return new Promise((resolve) => this.pending.push(() => resolve(work())));
  }

  async step(): Promise<boolean> {
    if (this.pending.length === 0) return false;
    const [task] = this.pending.splice(Math.floor(this.random() * this.pending.length), 1);
    task?.();
    await new Promise((resolve) => setImmediate(resolve));
    return true;
  }
}

/** A region's table: every load and save is a separate step, so writers interleave as they would in DynamoDB. */
class SimulatedStore implements DocumentStore {
  private readonly items = new Map<string, StoredDocument>();
  constructor(
    private readonly scheduler: Scheduler,
    private readonly conditional: boolean,
  ) {}

  load(document: string) {
    return this.scheduler.defer(() => this.items.get(document));
  }

  save(document: string, next: StoredDocument, expected: number) {
    return this.scheduler.defer(() => {
      if (this.conditional && (this.items.get(document)?.version ?? 0) !== expected) return false;
      this.items.set(document, next);
      return true;
    });
  }

  documents() {
    return this.scheduler.defer(() => [...this.items.keys()].sort());
  }
}

export interface SimulationOptions {
  readonly seed: number;
  readonly regions: number;
  readonly writersPerRegion: number;
  readonly operations: number;
  readonly lossRate: number;
  readonly duplicateRate: number;
  /** Chance per step that a region is cut off (its inbox not drained) until a later heal. */
  readonly partitionRate: number;
  /** Stores write unconditionally (the defect): concurrent writers in a region overwrite each other. */
  readonly blindWrites?: boolean;
}

export interface SimulationResult {
  /** Each region's documents, encoded canonically. */
  readonly states: ReadonlyMap<string, string>;
  /** Each region's value of every counter, by `document/field`. */
  readonly counters: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** The sum of every increment the writers made, by `document/field`. */
  readonly expectedCounters: ReadonlyMap<string, number>;
  readonly delivered: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly partitions: number;
  /** Operations the writers completed. */
  readonly completed: number;
}

const DOCUMENTS = ['presence', 'quota', 'flags'];

/**
 * N regions x M writers on the sync service's real code (SyncReplica, envelopes on the wire), over a
 * network that loses, duplicates and reorders messages and cuts regions off. After the run, partitions
 * heal and every region runs anti-entropy once over a reliable network.
 */
export async function simulate(options: SimulationOptions): Promise<SimulationResult> {
  const random = seededRandom(options.seed);
  const scheduler = new Scheduler(random);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const regions = Array.from({ length: options.regions }, (_, i) => `region-${i}`);
  let clock = 1_700_000_000_000;
  const wire: Array<{ to: string; text: string }> = [];
  let reliable = false;
  const stats = { delivered: 0, lost: 0, duplicated: 0, partitions: 0, completed: 0 };

  const replicas = new Map(
    regions.map((region) => [
      region,
      new SyncReplica({
        region,
        store: new SimulatedStore(scheduler, !options.blindWrites),
        now: () => (clock += Math.floor(random() * 3)),
        maxAttempts: 100_000,
        publisher: {
          publish: async (envelope) => {
            const text = encodeEnvelope(envelope);
            for (const to of regions.filter((r) => r !== region)) {
              if (!reliable && random() < options.lossRate) {
                stats.lost++;
                continue;
              }
              wire.push({ to, text });
              if (!reliable && random() < options.duplicateRate) {
                wire.push({ to, text });
                stats.duplicated++;
              }
            }
          },
        },
      }),
    ]),
  );
  const replica = (region: string) => replicas.get(region) as SyncReplica;

  const expected = new Map<string, number>();
  const cutOff = new Set<string>();
  const running = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    running.add(work);
    void work.finally(() => running.delete(work));
  };
  const busyWriters = new Set<string>();

  const deliverOne = () => {
    const deliverable = wire.map((m, i) => [m, i] as const).filter(([m]) => !cutOff.has(m.to));
    if (deliverable.length === 0) return;
    const [message, index] = pick(deliverable);
    wire.splice(index, 1);
    stats.delivered++;
    track(replica(message.to).receive(decodeEnvelope(message.text)));
  };

  const randomOperation = (): Operation => {
    const roll = random();
    if (roll < 0.5) return { kind: 'increment', field: 'count', by: Math.floor(random() * 11) - 3 };
    if (roll < 0.8)
      return {
        kind: random() < 0.6 ? 'add' : 'remove',
        field: 'members',
        element: `m${Math.floor(random() * 20)}`,
      };
    return { kind: 'set', field: 'owner', value: pick(regions) };
  };

  let started = 0;
  while (started < options.operations) {
    if (random() < options.partitionRate) {
      if (cutOff.size > 0 && random() < 0.5) cutOff.clear();
      else {
        cutOff.add(pick(regions));
        stats.partitions++;
      }
    }
    const region = pick(regions);
    const writer = `${region}/${Math.floor(random() * options.writersPerRegion)}`;
    if (!busyWriters.has(writer)) {
      started++;
      const document = pick(DOCUMENTS);
      const operation = randomOperation();
      busyWriters.add(writer);
      track(
        replica(region)
          .update(document, operation)
          .then(() => {
            stats.completed++;
            if (operation.kind === 'increment') {
              const key = `${document}/${operation.field}`;
              expected.set(key, (expected.get(key) ?? 0) + operation.by);
            }
          })
          .finally(() => busyWriters.delete(writer)),
      );
    }
    for (let s = 0, steps = 1 + Math.floor(random() * 4); s < steps; s++) {
      if (random() < 0.4) deliverOne();
      await scheduler.step();
    }
  }

  // Heal, finish what is in flight, then one round of anti-entropy over a reliable network.
  cutOff.clear();
  const settle = async () => {
    while (running.size > 0 || wire.length > 0) {
      if (wire.length > 0) deliverOne();
      await scheduler.step();
    }
  };
  await settle();
  reliable = true;
  for (const region of regions) track(replica(region).publishFullState());
  await settle();

  const states = new Map<string, string>();
  const counters = new Map<string, Map<string, number>>();
  for (const region of regions) {
    const documents: Record<string, string> = {};
    const values = new Map<string, number>();
    for (const document of DOCUMENTS) {
      const read = replica(region).read(document);
      let state: CrdtMap | undefined;
      void read.then((s) => (state = s));
      while (state === undefined) await scheduler.step();
      documents[document] = encodeMap(state);
      const count = state.get('count');
      if (count) values.set(`${document}/count`, readCrdt(count) as number);
    }
    states.set(region, JSON.stringify(documents));
    counters.set(region, values);
  }
  return { states, counters, expectedCounters: expected, ...stats };
}
