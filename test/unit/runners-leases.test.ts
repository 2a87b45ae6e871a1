import { countIn } from '../../runtime/quota/bucket';
import { epochOf, type AllocationConfig } from '../../runtime/quota/config';
import { demandPerSecond, enforcedLimit } from '../../runtime/quota/enforcement';
import { RegionalLimit, raiseWindow, unitsOf } from '../../runtime/quota/regional-limit';
import { MemoryLimiterStore } from '../../runtime/quota/store';
import { runSyncPass } from '../../runtime/quota/sync';
import { RetryableError } from '../../runtime/lib/failures';
import { NO_CONCURRENCY_CAP, QuotaConcurrencyCap } from '../../runtime/runners/concurrency-cap';
import { leaseStateOf } from '../../runtime/runners/dispatch-adapters';
import {
  countLive,
  leaseIdOf,
  leaseIdsOf,
  RunnerLeases,
  WAIT_RECORD_SEC,
  type LeaseState,
  type LeaseTable,
  type LeaseWrite,
} from '../../runtime/runners/leases';
import {
  AP,
  at,
  DELAY,
  E,
  EU,
  MemorySnapshots,
  RecordingMetrics,
  REGIONS,
  US,
  type Region,
} from '../support/quota-fixtures';

/** The lease items in memory, with DynamoDB's conditional semantics; `beforeWrite` plays a rival writer. */
class MemoryLeaseTable implements LeaseTable {
  readonly items = new Map<string, LeaseState & { readonly expiresAt: number }>();
  writes = 0;
  conflicts = 0;
  beforeWrite: ((organization: string) => void) | undefined;

  async read(organization: string): Promise<LeaseState | undefined> {
    await Promise.resolve();
    return this.items.get(organization);
  }

  async write(organization: string, next: LeaseWrite, expectedVersion: number | undefined): Promise<boolean> {
    await Promise.resolve();
    this.beforeWrite?.(organization);
    if (this.items.get(organization)?.version !== expectedVersion) {
      this.conflicts++;
      return false;
    }
    this.writes++;
    this.items.set(organization, {
      leases: new Map(next.leases),
      waiting: new Map(next.waiting),
      version: (expectedVersion ?? 0) + 1,
      expiresAt: next.expiresAt,
    });
    return true;
  }

  async all(): Promise<readonly LeaseState[]> {
    return [...this.items.values()];
  }

  /** Another dispatcher's write: a lease of `jobId` added behind the reader's back. */
  rival(organization: string, jobId: string, expiry: number): void {
    const item = this.items.get(organization);
    this.items.set(organization, {
      leases: new Map([...(item?.leases ?? []), [jobId, expiry]]),
      waiting: new Map(item?.waiting ?? []),
      version: (item?.version ?? 0) + 1,
      expiresAt: expiry,
    });
  }
}

const T0 = 1_700_000_000_000;

function setup(attempts = 6) {
  const table = new MemoryLeaseTable();
  const clock = { t: T0 };
  const sleeps: number[] = [];
  const leases = new RunnerLeases({
    table,
    now: () => clock.t,
    random: () => 0.999,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    attempts,
  });
  return { table, clock, sleeps, leases };
}

describe('RunnerLeases', () => {
  it('grants leases up to the cap and refuses at it, counting the refused job as waiting', async () => {
    const { leases, table } = setup();
    for (let job = 1; job <= 3; job++)
      expect(await leases.acquire('acme', String(job), 3, 600)).toEqual({
        acquired: true,
        fresh: true,
        held: job,
        waiting: 0,
      });
    expect(await leases.acquire('acme', '4', 3, 600)).toEqual({
      acquired: false,
      fresh: false,
      held: 3,
      waiting: 1,
    });
    expect(await leases.acquire('acme', '5', 3, 600)).toMatchObject({ acquired: false, waiting: 2 });
    const item = table.items.get('acme');
    expect([...(item?.leases.keys() ?? [])]).toEqual(['1', '2', '3']);
    expect(item?.waiting.get('4')).toBe(T0 / 1000 + WAIT_RECORD_SEC);
    expect(await leases.acquire('other', '9', 3, 600)).toMatchObject({ acquired: true, held: 1 });
  });

  it('refuses every job under a cap of 0', async () => {
    const { leases } = setup();
    expect(await leases.acquire('acme', '1', 0, 600)).toMatchObject({ acquired: false, held: 0 });
  });

  it('is idempotent for a job holding a lease: granted at the cap, counted once, its expiry refreshed', async () => {
    const { leases, table, clock } = setup();
    await leases.acquire('acme', '1', 2, 600);
    await leases.acquire('acme', '2', 2, 600);
    clock.t += 100_000;
    expect(await leases.acquire('acme', '1', 2, 600)).toEqual({
      acquired: true,
      fresh: false,
      held: 2,
      waiting: 0,
    });
    expect(table.items.get('acme')?.leases.get('1')).toBe((T0 + 100_000) / 1000 + 600);
    expect(await leases.acquire('acme', '3', 2, 600)).toMatchObject({ acquired: false, held: 2 });
  });

  it('moves a waiting job to the leases once a slot frees, and forgets its wait record', async () => {
    const { leases, table } = setup();
    await leases.acquire('acme', '1', 1, 600);
    await leases.acquire('acme', '2', 1, 600);
    await leases.release('acme', ['1']);
    expect(await leases.acquire('acme', '2', 1, 600)).toEqual({
      acquired: true,
      fresh: true,
      held: 1,
      waiting: 0,
    });
    expect(table.items.get('acme')?.waiting.size).toBe(0);
  });

  it('prunes expired leases: a lost `completed` is reclaimed once the lease expires', async () => {
    const { leases, table, clock } = setup();
    await leases.acquire('acme', '1', 2, 600);
    clock.t += 300_000;
    await leases.acquire('acme', '2', 2, 600);
    expect(await leases.acquire('acme', '3', 2, 600)).toMatchObject({ acquired: false });
    clock.t += 300_000; // job 1's lease expires now (T0 + 600 s)
    expect(await leases.acquire('acme', '3', 2, 600)).toMatchObject({ acquired: true, held: 2 });
    expect([...(table.items.get('acme')?.leases.keys() ?? [])]).toEqual(['2', '3']);
    expect(await leases.inUse()).toBe(2);
  });

  it('lets wait records lapse on their own', async () => {
    const { leases, table, clock } = setup();
    await leases.acquire('acme', '1', 1, 10_000);
    await leases.acquire('acme', '2', 1, 10_000);
    clock.t += (WAIT_RECORD_SEC + 1) * 1000;
    expect(await leases.acquire('acme', '3', 1, 10_000)).toMatchObject({ acquired: false, waiting: 1 });
    expect([...(table.items.get('acme')?.waiting.keys() ?? [])]).toEqual(['3']);
  });

  it('releases a lease, and writes nothing to release one it does not hold', async () => {
    const { leases, table } = setup();
    await leases.acquire('acme', '1', 2, 600);
    await leases.release('acme', ['1']);
    expect(table.items.get('acme')?.leases.size).toBe(0);
    const writes = table.writes;
    await leases.release('acme', ['1']);
    await leases.release('nobody', ['7']);
    expect(table.writes).toBe(writes);
  });

  it('retries a write that lost the race on the version, with the rival lease counted against the cap', async () => {
    const { leases, table, sleeps } = setup();
    await leases.acquire('acme', '1', 2, 600);
    let rivals = 1;
    table.beforeWrite = (org) => {
      if (rivals-- > 0) table.rival(org, '99', T0 / 1000 + 600);
    };
    expect(await leases.acquire('acme', '2', 2, 600)).toMatchObject({ acquired: false, held: 2 });
    expect(table.conflicts).toBe(1);
    expect(sleeps).toHaveLength(1);
    expect([...(table.items.get('acme')?.leases.keys() ?? [])]).toEqual(['1', '99']);
  });

  it('never grants past the cap to concurrent acquirers', async () => {
    const { leases, table } = setup(50);
    const grants = await Promise.all(
      Array.from({ length: 12 }, (_, i) => leases.acquire('acme', String(100 + i), 4, 600)),
    );
    expect(grants.filter((g) => g.acquired)).toHaveLength(4);
    expect(table.items.get('acme')?.leases.size).toBe(4);
    expect(table.conflicts).toBeGreaterThan(0);
  });

  it('gives up on an item that stays contended with a RetryableError, after capped full-jitter pauses', async () => {
    const { leases, table, sleeps } = setup(5);
    let n = 1000;
    table.beforeWrite = (org) => table.rival(org, String(n++), T0 / 1000 + 600);
    const failure = leases.acquire('acme', '1', 100, 600);
    await expect(failure).rejects.toBeInstanceOf(RetryableError);
    await expect(failure).rejects.toMatchObject({ code: 'lease-contention' });
    expect(sleeps).toHaveLength(4);
    sleeps.forEach((ms, i) => expect(ms).toBeLessThan(Math.min(1000, 20 * 2 ** (i + 1))));
  });

  it("keys a retry's runner apart from the job's first runner: both count against the cap and the capacity", async () => {
    const { leases, table } = setup();
    expect(leaseIdOf(42, 0)).toBe('42');
    expect(leaseIdOf(42, 1)).toBe('42:1');
    expect(await leases.acquire('acme', leaseIdOf(42, 0), 2, 600)).toMatchObject({ acquired: true, held: 1 });
    expect(await leases.acquire('acme', leaseIdOf(42, 1), 2, 600)).toMatchObject({
      acquired: true,
      fresh: true,
      held: 2,
    });
    expect(await leases.acquire('acme', leaseIdOf(43, 0), 2, 600)).toMatchObject({ acquired: false });
    expect(await leases.inUse()).toBe(2);
    // Released together, in one write, with the wait record of another job left alone.
    const writes = table.writes;
    await leases.release('acme', leaseIdsOf(42));
    expect(table.writes).toBe(writes + 1);
    expect([...(table.items.get('acme')?.leases.keys() ?? [])]).toEqual([]);
    expect([...(table.items.get('acme')?.waiting.keys() ?? [])]).toEqual(['43']);
  });

  it("reads a stored retry lease key, and refuses keys that are neither a job id nor a retry's", () => {
    const item = (key: string) => ({
      leases: { M: { [key]: { N: '1700000600' } } },
      version: { N: '3' },
    });
    expect([...leaseStateOf(item('42:1')).leases.keys()]).toEqual(['42:1']);
    expect(() => leaseStateOf(item('42:2'))).toThrow(/lease keys/);
    expect(() => leaseStateOf(item('__proto__'))).toThrow(/lease keys/);
  });

  it('counts the live leases of every organisation in the region', async () => {
    const { leases, clock } = setup();
    await leases.acquire('acme', '1', 5, 60);
    await leases.acquire('acme', '2', 5, 600);
    await leases.acquire('globex', '3', 5, 600);
    expect(await leases.inUse()).toBe(3);
    clock.t += 61_000;
    expect(await leases.inUse()).toBe(2);
    expect(countLive([], 0)).toBe(0);
  });
});

// ------------------------------------------------------------------- the cap and the quota sync

/** Three regions of weight 1; `runners` allows 40 runners at once per organisation across them. */
const RUNNERS: AllocationConfig = {
  windowSec: 60,
  activationDelayMs: DELAY,
  regions: REGIONS.map((region) => ({ region, weight: 1 })),
  resources: [{ name: 'runners', limit: 40_000, burstSec: 1, floors: [] }],
};
const RESOURCE = RUNNERS.resources[0] as AllocationConfig['resources'][number];

function caps(clock: { t: number }) {
  const stores = {
    [AP]: new MemoryLimiterStore(),
    [EU]: new MemoryLimiterStore(),
    [US]: new MemoryLimiterStore(),
  };
  const limits = (region: Region) =>
    new RegionalLimit({
      store: stores[region],
      config: RUNNERS,
      region,
      now: () => clock.t,
      sleep: async () => {},
    });
  const cap = (region: Region) => new QuotaConcurrencyCap(limits(region), 'runners');
  return {
    stores,
    cap: { [AP]: cap(AP), [EU]: cap(EU), [US]: cap(US) } as Record<Region, QuotaConcurrencyCap>,
  };
}

describe('QuotaConcurrencyCap', () => {
  it('reads a limit of L milli-units per second as floor(L / 1000) runners, as enforcedLimit has it', async () => {
    const clock = { t: at(E, 5000) };
    const { stores, cap } = caps(clock);
    // No sync yet: the default static share, 40,000 / 3 = 13,333 -> 13 runners.
    const expected = enforcedLimit(
      {},
      { config: RUNNERS, region: EU, resource: RESOURCE, heartbeat: undefined },
      clock.t,
    );
    expect(expected.limit).toBe(13_333);
    expect(await cap[EU].capOf('acme')).toBe(13);
    stores[EU].setLimits('acme', 'runners', { operator: 7_999 });
    expect(await cap[EU].capOf('acme')).toBe(7);
    stores[EU].setLimits('acme', 'runners', { operator: 999 });
    expect(await cap[EU].capOf('acme')).toBe(0);
    expect(unitsOf(25_500)).toBe(25);
  });

  it('records the peak wanted and held in a window with max semantics: the sync reads N runners as N x 1000 per second', async () => {
    const clock = { t: at(E, 1000) };
    const { stores, cap } = caps(clock);
    await cap[EU].recordDemand('acme', { wanted: 5, held: 3 });
    clock.t += 1000;
    await cap[EU].recordDemand('acme', { wanted: 2, held: 2 });
    await cap[EU].recordDemand('acme', { wanted: 8, held: 4 });
    await cap[EU].recordDemand('acme', { wanted: 6, held: 6 });
    const counters = stores[EU].items.get('runners\u0000acme')?.counters;
    expect(counters?.window).toBe(E);
    expect(countIn(counters?.demand ?? [], E, E)).toBe(8 * 60 * 1000);
    expect(countIn(counters?.consumed ?? [], E, E)).toBe(6 * 60 * 1000);
    expect(demandPerSecond(countIn(counters?.demand ?? [], E, E), RUNNERS.windowSec)).toBe(8_000);

    clock.t = at(E + 1, 10);
    await cap[EU].recordDemand('acme', { wanted: 1, held: 1 });
    const next = stores[EU].items.get('runners\u0000acme')?.counters;
    expect(next?.window).toBe(E + 1);
    expect(countIn(next?.demand ?? [], E + 1, E + 1)).toBe(60_000);
    expect(countIn(next?.demand ?? [], E + 1, E)).toBe(8 * 60 * 1000);
  });

  it('never records consumption above demand in a window', () => {
    const raised = raiseWindow(undefined, E, { demand: 1000, consumed: 5000 });
    expect(raised.demand[0]).toBe(1000);
    expect(raised.consumed[0]).toBe(1000);
    expect(epochOf(RUNNERS, at(E, 0))).toBe(E);
  });

  it('lets the quota sync move the cap to where the peak demand is, never past the global limit', async () => {
    const clock = { t: at(E, 1000) };
    const { stores, cap } = caps(clock);
    const snapshots = new MemorySnapshots();
    const pass = (region: Region) =>
      runSyncPass({
        config: RUNNERS,
        region,
        store: stores[region],
        snapshots: snapshots.forRegion(region),
        metrics: new RecordingMetrics(),
        now: () => clock.t,
        settleMs: 0,
      });
    // Window E: eu-central-1 wants 30 runners at its peak, the others 2 each.
    await cap[EU].recordDemand('acme', { wanted: 30, held: 13 });
    await cap[AP].recordDemand('acme', { wanted: 2, held: 2 });
    await cap[US].recordDemand('acme', { wanted: 2, held: 2 });
    for (const epoch of [E + 1, E + 2]) {
      clock.t = at(epoch, 1000);
      for (const region of REGIONS) await pass(region);
      // The demand goes on at the same peak.
      await cap[EU].recordDemand('acme', { wanted: 30, held: 13 });
      await cap[AP].recordDemand('acme', { wanted: 2, held: 2 });
      await cap[US].recordDemand('acme', { wanted: 2, held: 2 });
    }
    clock.t = at(E + 3, DELAY + 1);
    const after = {
      [AP]: await cap[AP].capOf('acme'),
      [EU]: await cap[EU].capOf('acme'),
      [US]: await cap[US].capOf('acme'),
    };
    for (const region of REGIONS) {
      const item = stores[region].items.get('runners\u0000acme');
      const heartbeat = await stores[region].readHeartbeat();
      const limit = enforcedLimit(
        item ?? {},
        { config: RUNNERS, region, resource: RESOURCE, heartbeat },
        clock.t,
      );
      expect(after[region]).toBe(unitsOf(limit.limit));
    }
    expect(after[EU]).toBeGreaterThanOrEqual(30);
    expect(after[AP] + after[EU] + after[US]).toBeLessThanOrEqual(40);
  });

  it('without a concurrency resource: no per-organisation cap, no demand recorded (nothing to report)', async () => {
    expect(await NO_CONCURRENCY_CAP.capOf('acme')).toBeUndefined();
    await expect(NO_CONCURRENCY_CAP.recordDemand('acme', { wanted: 1, held: 1 })).resolves.toBe(true);
  });

  it('tells the dispatcher when a level could not be recorded (the limiter item stayed contended)', async () => {
    const clock = { t: at(E, 1000) };
    const store = new MemoryLimiterStore();
    const cap = new QuotaConcurrencyCap(
      new RegionalLimit({ store, config: RUNNERS, region: EU, now: () => clock.t, sleep: async () => {} }),
      'runners',
    );
    expect(await cap.recordDemand('acme', { wanted: 2, held: 1 })).toBe(true);
    // Every conditional write loses its race (another dispatcher writes the item each time).
    store.writeBucket = async () => false;
    expect(await cap.recordDemand('acme', { wanted: 3, held: 1 })).toBe(false);
  });
});
