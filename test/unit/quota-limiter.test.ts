import { addToWindow, countIn } from '../../runtime/quota/bucket';
import { QuotaInputError, QuotaLimiter, type LimiterOptions } from '../../runtime/quota/limiter';
import { MemoryLimiterStore, type BucketWrite, type LimiterItem } from '../../runtime/quota/store';
import { at, CONFIG, DELAY, E, EU, ranThrough } from '../support/quota-fixtures';

/** A clock the test moves by hand. */
class Clock {
  constructor(public t: number) {}
  readonly now = (): number => this.t;
}

function limiter(
  store: MemoryLimiterStore,
  clock: Clock,
  options: Partial<LimiterOptions> = {},
): QuotaLimiter {
  return new QuotaLimiter({ store, config: CONFIG, region: EU, now: clock.now, ...options });
}

const item = (store: MemoryLimiterStore, entity: string): LimiterItem | undefined =>
  store.items.get(`requests\u0000${entity}`);

/** Consumes `count` requests of `amount` one after the other; the units admitted. */
async function take(limiter: QuotaLimiter, count: number, amount = 1, entity = 'tenant-1'): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < count; i++)
    if ((await limiter.consume(entity, 'requests', amount)).admitted) admitted += amount;
  return admitted;
}

/** Consumes until the first refusal (at most `max` requests of 1): the units admitted. */
async function drain(limiter: QuotaLimiter, entity = 'tenant-1', max = 10_000): Promise<number> {
  for (let admitted = 0; admitted < max; admitted++)
    if (!(await limiter.consume(entity, 'requests')).admitted) return admitted;
  throw new Error(`still admitting after ${max} requests`);
}

describe('QuotaLimiter admission', () => {
  it('admits 30 requests of 1 at one instant under the static 30 units/s with a 1 s burst, refuses the 31st, and admits again after a refill', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    for (let i = 0; i < 30; i++)
      expect(await quota.consume('tenant-1', 'requests')).toEqual({
        admitted: true,
        limit: 30_000,
        source: 'static',
      });
    expect(await quota.consume('tenant-1', 'requests')).toEqual({
      admitted: false,
      limit: 30_000,
      source: 'static',
    });

    clock.t += 500;
    expect(await drain(quota)).toBe(15);
    clock.t += 1000;
    expect(await drain(quota)).toBe(30);
    clock.t += 60_000;
    expect(await drain(quota)).toBe(30);
  });

  it('takes an amount of several units as one: admitted only when the bucket holds all of it', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    expect((await quota.consume('tenant-1', 'requests', 25)).admitted).toBe(true);
    expect((await quota.consume('tenant-1', 'requests', 5)).admitted).toBe(true);
    expect((await quota.consume('tenant-1', 'requests', 1)).admitted).toBe(false);
    // 100 ms refill 3 units: 4 do not fit; 200 ms refill 6, and 6 fit.
    clock.t += 100;
    expect((await quota.consume('tenant-1', 'requests', 4)).admitted).toBe(false);
    clock.t += 100;
    expect((await quota.consume('tenant-1', 'requests', 6)).admitted).toBe(true);
    expect((await quota.consume('tenant-1', 'requests', 1)).admitted).toBe(false);
    clock.t += 60_000;
    expect((await quota.consume('tenant-1', 'requests', 31)).admitted).toBe(false);
  });

  it('gives every entity its own bucket', async () => {
    const store = new MemoryLimiterStore();
    const quota = limiter(store, new Clock(at(E, 1000)));
    expect(await drain(quota, 'tenant-1')).toBe(30);
    expect(await drain(quota, 'tenant-2')).toBe(30);
  });

  it('drops the tokens above a shrunk capacity at once', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    expect(await take(quota, 1)).toBe(1);
    store.setLimits('tenant-1', 'requests', { operator: 10_000 });
    clock.t += 200;
    expect(await quota.consume('tenant-1', 'requests')).toEqual({
      admitted: true,
      limit: 10_000,
      source: 'operator',
    });
    expect(await drain(quota)).toBe(9);
    expect(item(store, 'tenant-1')?.bucket?.tokens).toBeLessThanOrEqual(10_000);
  });

  it('enforces the sync override once the heartbeat says the sync runs', async () => {
    const store = new MemoryLimiterStore();
    store.heartbeat = ranThrough(E);
    await store.writeOverride(
      'tenant-1',
      'requests',
      { epoch: E - 1, prior: 30_000, share: 45_000 },
      undefined,
    );
    const quota = limiter(store, new Clock(at(E, 5000)));
    expect(await quota.consume('tenant-1', 'requests')).toEqual({
      admitted: true,
      limit: 45_000,
      source: 'sync',
    });
    expect(await drain(quota)).toBe(44);
  });

  it('never admits more than the share over time', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    let admitted = 0;
    for (const start = clock.t; clock.t < start + 5000; clock.t += 7) admitted += await take(quota, 1);
    // At most the capacity plus 5 s of refill at 30 units/s.
    expect(admitted).toBeLessThanOrEqual(30 + 150);
    expect(admitted).toBeGreaterThanOrEqual(150);
  });
});

describe('QuotaLimiter leases', () => {
  it('serves a steady stream with about one write per lease, not one per request', async () => {
    const store = new MemoryLimiterStore();
    store.setLimits('tenant-1', 'requests', { operator: 1_000_000 });
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock, { leaseMs: 100 });
    const start = clock.t;
    for (; clock.t < start + 1000; clock.t++) expect(await take(quota, 1)).toBe(1);
    const warm = store.counts.bucketWrites;
    expect(warm).toBeLessThan(100);
    for (; clock.t < start + 2000; clock.t++) expect(await take(quota, 1)).toBe(1);
    // A thousand requests over ten leases.
    expect(store.counts.bucketWrites - warm).toBeLessThanOrEqual(30);
  });

  it('answers many requests in one lease window with one write once the container is busy', async () => {
    const store = new MemoryLimiterStore();
    store.setLimits('tenant-1', 'requests', { operator: 1_000_000 });
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock, { leaseMs: 100 });
    const start = clock.t;
    for (; clock.t < start + 1000; clock.t += 10) await take(quota, 10);
    const before = store.counts.bucketWrites;
    // Ten requests in the first millisecond of a lease window.
    await take(quota, 10);
    clock.t += 1;
    expect(await take(quota, 10)).toBe(10);
    expect(store.counts.bucketWrites - before).toBeLessThanOrEqual(1);
  });

  it('lets two containers on one table admit no more than the bucket holds in total', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const containers = [limiter(store, clock), limiter(store, clock)];
    let admitted = 0;
    let requested = 0;
    const start = clock.t;
    for (; clock.t < start + 3000; clock.t += 20) {
      const decisions = await Promise.all(containers.map((c) => c.consume('tenant-1', 'requests')));
      requested += 2;
      admitted += decisions.filter((d) => d.admitted).length;
    }
    // The capacity and three seconds of refill at 30 units/s.
    expect(admitted).toBeLessThanOrEqual(30 + 90);
    expect(admitted).toBeGreaterThanOrEqual(90);
    expect(store.counts.conflicts).toBeGreaterThan(0);

    // Each container's next write (after its lease) carries what it counted: nothing is lost.
    clock.t += 1000;
    for (const c of containers) admitted += (await c.consume('tenant-1', 'requests')).admitted ? 1 : 0;
    requested += 2;
    const counted = item(store, 'tenant-1')?.counters;
    expect(counted && countIn(counted.demand, counted.window, E)).toBe(requested * 1000);
    expect(counted && countIn(counted.consumed, counted.window, E)).toBe(admitted * 1000);
  });

  it('retries a write that lost the conditional race to another container, and loses nothing', async () => {
    /** Lets another container take 2 units between this container's read and its write, once. */
    class RaceOnce extends MemoryLimiterStore {
      armed = false;
      override async writeBucket(write: BucketWrite): Promise<boolean> {
        const current = item(this, write.entity);
        if (this.armed && current?.bucket && current.counters) {
          this.armed = false;
          await super.writeBucket({
            entity: write.entity,
            resource: write.resource,
            expectedVersion: current.version,
            trip: 'another-container',
            bucket: { ...current.bucket, tokens: current.bucket.tokens - 2000 },
            counters: addToWindow(current.counters, E, { demand: 2000, consumed: 2000 }),
          });
        }
        return super.writeBucket(write);
      }
    }
    const store = new RaceOnce();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    expect(await take(quota, 1)).toBe(1);
    store.armed = true;
    expect(await quota.consume('tenant-1', 'requests', 4)).toEqual({
      admitted: true,
      limit: 30_000,
      source: 'static',
    });
    expect(store.armed).toBe(false);
    expect(store.counts.conflicts).toBe(1);
    // 1 + 4 units here and 2 by the other container, out of 30: at most 23 are left at this instant.
    const left = await drain(quota);
    expect(left).toBeLessThanOrEqual(23);
    expect(left).toBeGreaterThan(0);
    clock.t += 200;
    await take(quota, 1);
    const counted = item(store, 'tenant-1')?.counters;
    expect(counted && countIn(counted.demand, counted.window, E)).toBe((1 + 2 + 4 + left + 1 + 1) * 1000);
    expect(counted && countIn(counted.consumed, counted.window, E)).toBe((1 + 2 + 4 + left + 1) * 1000);
  });

  it('retries a write conflict that nobody else caused without losing a request', async () => {
    class RefuseOnce extends MemoryLimiterStore {
      attempts = 0;
      override async writeBucket(write: BucketWrite): Promise<boolean> {
        return this.attempts++ === 0 ? false : super.writeBucket(write);
      }
    }
    const store = new RefuseOnce();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    expect((await quota.consume('tenant-1', 'requests', 4)).admitted).toBe(true);
    expect(store.attempts).toBe(2);
    const counted = item(store, 'tenant-1')?.counters;
    expect(counted && countIn(counted.demand, counted.window, E)).toBe(4000);
    expect(counted && countIn(counted.consumed, counted.window, E)).toBe(4000);
    expect((await drain(quota)) + 4).toBe(30);
  });
});

describe('QuotaLimiter window counters', () => {
  it('count demand and consumption per window, refused demand included once the next write carries it', async () => {
    const store = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const quota = limiter(store, clock);
    expect(await take(quota, 35)).toBe(30);
    clock.t += 1000;
    expect(await take(quota, 1)).toBe(1);
    let counted = item(store, 'tenant-1')?.counters;
    expect(counted && countIn(counted.demand, counted.window, E)).toBe(36_000);
    expect(counted && countIn(counted.consumed, counted.window, E)).toBe(31_000);

    // The next window starts its own count; the last one stays as it was.
    clock.t = at(E + 1, 500);
    expect(await take(quota, 3, 2)).toBe(6);
    clock.t += 1000;
    await take(quota, 1);
    counted = item(store, 'tenant-1')?.counters;
    expect(counted?.window).toBe(E + 1);
    expect(counted && countIn(counted.demand, counted.window, E + 1)).toBe(7000);
    expect(counted && countIn(counted.demand, counted.window, E)).toBe(36_000);
    expect(counted && countIn(counted.consumed, counted.window, E)).toBe(31_000);
  });
});

describe('QuotaLimiter input', () => {
  const store = new MemoryLimiterStore();
  const quota = limiter(store, new Clock(at(E, 1000)));

  it.each([
    ['empty', ''],
    ['starting with #', '#x'],
    ['with a control character', 'tenant\u0001'],
    ['with a newline', 'tenant\n1'],
    ['of 513 bytes', 'x'.repeat(513)],
    ['of 514 bytes in 257 characters', 'é'.repeat(257)],
    ['with a lone surrogate', 'tenant\ud800'],
  ])('refuses an entity %s, naming `entity` and not the value', async (_, entity) => {
    const refusal = quota.consume(entity, 'requests');
    await expect(refusal).rejects.toBeInstanceOf(QuotaInputError);
    await expect(refusal).rejects.toMatchObject({ field: 'entity' });
    await expect(refusal).rejects.not.toThrow(entity.length > 0 ? entity : 'never matched');
  });

  it('refuses a non-string entity', async () => {
    await expect(quota.consume(7 as unknown as string, 'requests')).rejects.toMatchObject({
      field: 'entity',
    });
  });

  it.each(['bytes', 'Requests', '', '__proto__', 'constructor'])(
    'refuses the unknown resource %j',
    async (resource) => {
      await expect(quota.consume('tenant-1', resource)).rejects.toMatchObject({
        name: 'QuotaInputError',
        field: 'resource',
      });
    },
  );

  it.each([0, -1, 1.5, NaN, Infinity, 2 ** 53, Math.floor(Number.MAX_SAFE_INTEGER / 1000) + 1])(
    'refuses the amount %p',
    async (amount) => {
      await expect(quota.consume('tenant-1', 'requests', amount)).rejects.toMatchObject({
        name: 'QuotaInputError',
        field: 'amount',
      });
    },
  );

  it('touches no table for a refused input', () => {
    expect(store.counts).toEqual({ reads: 0, bucketWrites: 0, conflicts: 0, overrideWrites: 0 });
    expect(store.items.size).toBe(0);
  });

  it('takes `__proto__` and `constructor` as entities, each with its own bucket', async () => {
    const own = new MemoryLimiterStore();
    const clock = new Clock(at(E, 1000));
    const members = limiter(own, clock);
    expect(await members.consume('__proto__', 'requests')).toEqual({
      admitted: true,
      limit: 30_000,
      source: 'static',
    });
    expect(await drain(members, '__proto__')).toBe(29);
    expect(await drain(members, 'constructor')).toBe(30);
    expect(item(own, '__proto__')?.entity).toBe('__proto__');
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'tokens')).toBe(false);
  });

  it('takes a 512-byte entity', async () => {
    expect((await quota.consume('é'.repeat(256), 'requests')).admitted).toBe(true);
  });
});

describe('QuotaLimiter options', () => {
  const store = new MemoryLimiterStore();

  it('refuses a lease and heartbeat cache longer together than the activation delay', () => {
    const build = () =>
      new QuotaLimiter({ store, config: CONFIG, region: EU, leaseMs: 1200, heartbeatCacheMs: 1000 });
    expect(build).toThrow(QuotaInputError);
    expect(build).toThrow(/^leaseMs \+ heartbeatCacheMs: /);
    expect(
      () => new QuotaLimiter({ store, config: CONFIG, region: EU, leaseMs: 2101, heartbeatCacheMs: 0 }),
    ).toThrow(QuotaInputError);
  });

  it('takes a lease and heartbeat cache that fill the activation delay exactly, and the defaults', () => {
    expect(
      () => new QuotaLimiter({ store, config: CONFIG, region: EU, leaseMs: 1100, heartbeatCacheMs: 1000 }),
    ).not.toThrow();
    expect(DELAY).toBe(2100);
    expect(() => new QuotaLimiter({ store, config: CONFIG, region: EU })).not.toThrow();
  });
});
