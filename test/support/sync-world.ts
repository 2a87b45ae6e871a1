import { encodeDocument, readField, type CrdtDocument } from '../../runtime/crdt';
import { decodeEnvelope, encodeEnvelope, type Operation } from '../../runtime/sync';
import { testRegion, type TestRegion } from './sync-harness';

export const HOUR = 3600 * 1000;
export const DAY = 24 * HOUR;

/** A message on its way from one region to another: nothing arrives unless a test delivers it. */
export interface Message {
  readonly from: string;
  readonly to: string;
  readonly kind: 'delta' | 'state';
  readonly text: string;
  readonly sentAt: number;
}

/**
 * Regions on one clock with a bus that holds every message until a test delivers it (in any order, as
 * often as it likes). `foldable: false` adds a peer that never sends a full state, so no region ever folds:
 * the same history run both ways must read the same.
 */
export function syncWorld(names: readonly string[], options: { foldable?: boolean; seed?: number } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const phantom = options.foldable === false ? ['never-sends'] : [];
  const regions = new Map<string, TestRegion>(
    names.map((name, i) => [
      name,
      testRegion(name, {
        now: () => clock.now,
        seed: (options.seed ?? 1) * 10 + i,
        peers: [...names.filter((r) => r !== name), ...phantom],
      }),
    ]),
  );
  const region = (name: string) => regions.get(name) as TestRegion;
  const queue: Message[] = [];
  /** Moves what the regions published onto the bus, one message per peer. */
  const post = () => {
    for (const from of regions.values())
      for (const envelope of from.published.splice(0)) {
        const text = encodeEnvelope(envelope);
        for (const to of names)
          if (to !== from.name)
            queue.push({ from: from.name, to, kind: envelope.kind, text, sentAt: clock.now });
      }
  };
  const world = {
    clock,
    region,
    queue,
    advance: (ms: number) => void (clock.now += ms),
    async update(name: string, operation: Operation, document = 'doc') {
      try {
        await region(name).replica.update(document, operation);
      } finally {
        post();
      }
    },
    async antiEntropy(name: string) {
      await region(name).replica.publishFullState();
      post();
    },
    /** Delivers one message (it stays queued when `again`): what the receiver answered. */
    async deliver(message: Message, again = false): Promise<string> {
      if (!again) queue.splice(queue.indexOf(message), 1);
      const answer = await region(message.to)
        .replica.receive(decodeEnvelope(message.text))
        .then(
          () => 'merged',
          (error: { code?: string; name: string }) => error.code ?? error.name,
        );
      post();
      return answer;
    },
    async deliverWhere(matches: (message: Message) => boolean): Promise<string[]> {
      const answers: string[] = [];
      for (const message of queue.filter(matches)) answers.push(await world.deliver(message));
      return answers;
    },
    async drain() {
      while (queue.length > 0) await world.deliver(queue[0] as Message);
    },
    /**
     * Drains the bus, then every region publishes its full state, over and over as anti-entropy does, until
     * a pass changes no region's table (at least twice; at most 6 passes). A region may fold an ended epoch
     * in the last pass (what it merged told it the epoch ended): that horizon takes one more pass to travel.
     */
    async settle() {
      // The documents' states (not their versions, which every save bumps).
      const tables = () =>
        names
          .flatMap((name) =>
            [...region(name).store.items.entries()].map(
              ([key, item]) => `${name}/${key}=${encodeDocument(item.state)}`,
            ),
          )
          .sort()
          .join('\n');
      for (let pass = 0, before = ''; pass < 6; pass++) {
        await world.drain();
        for (const name of names) await world.antiEntropy(name);
        await world.drain();
        const after = tables();
        if (pass >= 1 && after === before) break;
        before = after;
      }
    },
    async read(name: string, field: string, document = 'doc') {
      const value = (await region(name).replica.read(document)).get(field);
      return value ? readField(value) : undefined;
    },
    async state(name: string, document = 'doc'): Promise<CrdtDocument> {
      return region(name).replica.read(document);
    },
  };
  return world;
}

export type SyncWorld = ReturnType<typeof syncWorld>;
