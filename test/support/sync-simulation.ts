import { encodeDocument, readField, type CrdtDocument } from '../../runtime/crdt';
import {
  decodeEnvelope,
  encodeEnvelope,
  NO_METRICS,
  SyncReplica,
  type Commit,
  type DocumentScope,
  type DocumentStore,
} from '../../runtime/sync';
import type { Operation } from '../../runtime/sync/operations';
import { seededRandom } from './seeded-random';
import { memoryStore } from './sync-harness';

export { seededRandom };

/** Settles deferred work one piece at a time, in an order drawn from the seed. */
class Scheduler {
  private readonly pending: Array<() => void> = [];
  constructor(private readonly random: () => number) {}

  defer<T>(work: () => T | Promise<T>): Promise<T> {
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
  private readonly table = memoryStore();
  constructor(
    private readonly scheduler: Scheduler,
    private readonly conditional: boolean,
  ) {}

  load(document: string, scope?: DocumentScope) {
    return this.scheduler.defer(() => this.table.load(document, scope));
  }

  save(document: string, commit: Commit) {
    return this.scheduler.defer(() => {
      // The defect: a write that ignores the version read applies over whatever is stored now.
      const expected = this.conditional ? commit.expected : (this.table.items.get(document)?.version ?? 0);
      return this.table.save(document, { ...commit, expected });
    });
  }

  documents() {
    return this.scheduler.defer(() => this.table.documents());
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
  /** Chance per step that a region's process restarts (a cold start: a new epoch, the same table). */
  readonly restartRate?: number;
  /** Most milliseconds the shared clock advances per reading (large values make epochs age and fold). */
  readonly maxTickMs?: number;
  /** Stores write unconditionally (the defect): concurrent writers in a region overwrite each other. */
  readonly blindWrites?: boolean;
  /** Operations between two anti-entropy passes (of a random region) during the run. Default: 1,000. */
  readonly antiEntropyEvery?: number;
  /** Anti-entropy passes allowed after the run for every region to converge. Default: 40. */
  readonly maxRepairPasses?: number;
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
  readonly restarts: number;
  /** Anti-entropy passes cut short (the invocation ended midway). */
  readonly interruptedPasses: number;
  /** Publishes that threw (none should: the simulated bus loses messages without throwing). */
  readonly publishFailures: number;
  /** Passes it took after the run until every region held the same state (undefined: not within the bound). */
  readonly repairPasses: number | undefined;
  /** Operations the writers completed. */
  readonly completed: number;
  /** Distinct replicas (region epochs) that issued changes. */
  readonly replicas: number;
  /** Per region and document, the set elements it lacks that were added and never removed anywhere. */
  readonly missingElements: readonly string[];
  /** Per document: replicas that incremented its counter, and those its state at region-0 still lists. */
  readonly counterReplicas: ReadonlyArray<{ readonly wrote: number; readonly listed: number }>;
}

const DOCUMENTS = ['presence', 'quota', 'flags'];

/**
 * N regions x M writers on the sync service's real code (SyncReplica, envelopes on the wire), over a
 * network that loses, duplicates and reorders messages and cuts regions off, with processes restarting
 * (new epochs) and a clock that can run fast enough for epochs to age and fold. After the run, partitions
 * heal and anti-entropy passes run over the same lossy network, each pass possibly interrupted midway,
 * until the regions converge or the bound is reached.
 */
export async function simulate(options: SimulationOptions): Promise<SimulationResult> {
  const random = seededRandom(options.seed);
  const scheduler = new Scheduler(random);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const regions = Array.from({ length: options.regions }, (_, i) => `region-${i}`);
  const maxTick = options.maxTickMs ?? 2;
  let clock = 1_700_000_000_000;
  const wire: Array<{ to: string; text: string }> = [];
  const stats = {
    delivered: 0,
    lost: 0,
    duplicated: 0,
    partitions: 0,
    completed: 0,
    restarts: 0,
    interruptedPasses: 0,
    publishFailures: 0,
  };
  const issuers = new Set<string>();
  /** Per document, the replicas whose deltas incremented its counter. */
  const incrementers = new Map<string, Set<string>>(DOCUMENTS.map((d) => [d, new Set()]));
  /** Per region, full states its current anti-entropy pass may still publish before it is cut short. */
  const passBudget = new Map<string, number>();

  const stores = new Map(
    regions.map((region) => [region, new SimulatedStore(scheduler, !options.blindWrites)]),
  );
  const process = (region: string) =>
    new SyncReplica({
      region,
      peers: regions.filter((r) => r !== region),
      store: stores.get(region) as SimulatedStore,
      now: () => (clock += Math.floor(random() * (maxTick + 1))),
      random,
      maxAttempts: 100_000,
      sleep: async () => undefined,
      metrics: { ...NO_METRICS, publishFailed: (n) => void (stats.publishFailures += n) },
      publisher: {
        publish: async (envelope) => {
          if (envelope.kind === 'state') {
            // The pass was cut short here (the invocation timed out): nothing more of it goes out.
            const budget = passBudget.get(region) ?? Number.POSITIVE_INFINITY;
            if (budget === 0) stats.interruptedPasses++;
            passBudget.set(region, budget - 1);
            if (budget <= 0) return;
          } else {
            issuers.add(envelope.hlc.replica);
            if (envelope.body.get('count')) incrementers.get(envelope.document)?.add(envelope.hlc.replica);
          }
          const text = encodeEnvelope(envelope);
          for (const to of regions.filter((r) => r !== region)) {
            if (random() < options.lossRate) {
              stats.lost++;
              continue;
            }
            wire.push({ to, text });
            if (random() < options.duplicateRate) {
              wire.push({ to, text });
              stats.duplicated++;
            }
          }
        },
      },
    });
  const replicas = new Map(regions.map((region) => [region, process(region)]));
  const replica = (region: string) => replicas.get(region) as SyncReplica;

  const expected = new Map<string, number>();
  const added = new Map<string, Set<string>>(DOCUMENTS.map((d) => [d, new Set()]));
  const removed = new Map<string, Set<string>>(DOCUMENTS.map((d) => [d, new Set()]));
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

  /** One region's anti-entropy pass, cut short at a random document half of the time. */
  const antiEntropyPass = (region: string) => {
    passBudget.set(
      region,
      random() < 0.5 ? Math.floor(random() * DOCUMENTS.length) : Number.POSITIVE_INFINITY,
    );
    track(replica(region).publishFullState());
  };

  const passEvery = options.antiEntropyEvery ?? 1_000;
  let nextPassAt = passEvery;
  let started = 0;
  while (started < options.operations) {
    if (started >= nextPassAt) {
      antiEntropyPass(pick(regions));
      nextPassAt += passEvery;
    }
    if (random() < options.partitionRate) {
      if (cutOff.size > 0 && random() < 0.5) cutOff.clear();
      else {
        cutOff.add(pick(regions));
        stats.partitions++;
      }
    }
    if (random() < (options.restartRate ?? 0)) {
      const region = pick(regions);
      replicas.set(region, process(region)); // the old process finishes what it started
      stats.restarts++;
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
            if (operation.kind === 'add' || operation.kind === 'remove')
              (operation.kind === 'add' ? added : removed).get(document)?.add(operation.element);
          })
          .finally(() => busyWriters.delete(writer)),
      );
    }
    for (let s = 0, steps = 1 + Math.floor(random() * 4); s < steps; s++) {
      if (random() < 0.4) deliverOne();
      await scheduler.step();
    }
  }

  // Heal and finish what is in flight; then anti-entropy passes over the same lossy network, each region's
  // pass cut short at a random point half of the time, until every region holds the same state.
  cutOff.clear();
  const settle = async () => {
    while (running.size > 0 || wire.length > 0) {
      if (wire.length > 0) deliverOne();
      await scheduler.step();
    }
  };
  await settle();
  const missingElements: string[] = [];
  const counterReplicas: Array<{ wrote: number; listed: number }> = [];
  const snapshot = async () => {
    const states = new Map<string, string>();
    const counters = new Map<string, Map<string, number>>();
    missingElements.length = 0;
    counterReplicas.length = 0;
    for (const region of regions) {
      const documents: Record<string, string> = {};
      const values = new Map<string, number>();
      for (const document of DOCUMENTS) {
        const read = replica(region).read(document);
        let state: CrdtDocument | undefined;
        void read.then((s) => (state = s));
        while (state === undefined) await scheduler.step();
        documents[document] = encodeDocument(state);
        const count = state.get('count');
        if (count) values.set(`${document}/count`, readField(count) as number);
        const counter = count?.[0]?.crdt;
        if (region === regions[0] && counter?.type === 'pncounter')
          counterReplicas.push({
            wrote: incrementers.get(document)?.size ?? 0,
            listed: new Set([...counter.state.p.counts.keys(), ...counter.state.n.counts.keys()]).size,
          });
        const members = new Set(
          (state.get('members') ? readField(state.get('members') as never) : []) as string[],
        );
        for (const element of added.get(document) ?? [])
          if (!removed.get(document)?.has(element) && !members.has(element))
            missingElements.push(`${region}/${document}/${element}`);
      }
      states.set(region, JSON.stringify(documents));
      counters.set(region, values);
    }
    return { states, counters };
  };
  const converged = ({ states, counters }: Awaited<ReturnType<typeof snapshot>>) =>
    new Set(states.values()).size === 1 &&
    missingElements.length === 0 &&
    [...counters.values()].every((values) =>
      [...expected].every(([key, total]) => (values.get(key) ?? 0) === total),
    );

  let repairPasses: number | undefined;
  let final = await snapshot();
  for (let pass = 1; pass <= (options.maxRepairPasses ?? 40) && repairPasses === undefined; pass++) {
    for (const region of regions) {
      antiEntropyPass(region);
      await settle();
    }
    final = await snapshot();
    if (converged(final)) repairPasses = pass;
  }

  return {
    ...final,
    expectedCounters: expected,
    ...stats,
    repairPasses,
    replicas: issuers.size,
    missingElements: [...missingElements],
    counterReplicas,
  };
}
