import { refill } from '../../runtime/quota/bucket';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { MemoryLimiterStore, type BucketWrite } from '../../runtime/quota/store';
import { at, CONFIG, E, EU } from '../support/quota-fixtures';

describe('the token bucket refill (bucket.ts)', () => {
  it('credits no more than the share for the time elapsed when refilled every millisecond', () => {
    let state = { tokens: 0, refilledAt: 0 };
    for (let now = 1; now <= 1000; now++) state = refill(state, 1500, 1_000_000, now);
    // 1,500 milli-units per second for one second.
    expect(state.tokens).toBeLessThanOrEqual(1500);
  });

  it('lets a limiter admit no more than its share over time when the share is not whole units per second', async () => {
    const store = new MemoryLimiterStore();
    store.setLimits('tenant-1', 'requests', { operator: 43_334 });
    let t = at(E, 1000);
    const quota = new QuotaLimiter({ store, config: CONFIG, region: EU, now: () => t });
    let admitted = 0;
    for (const start = t; t < start + 5000; t++)
      if ((await quota.consume('tenant-1', 'requests')).admitted) admitted++;
    // The capacity (43.334 units) and 5 s of refill at 43.334 units/s.
    expect(admitted).toBeLessThanOrEqual(Math.floor((43_334 + 5 * 43_334) / 1000));
  });
});

describe('one container serving concurrent requests (limiter.ts)', () => {
  /** Holds the next bucket write until `open()`, as a slow table round trip would. */
  class SlowOnce extends MemoryLimiterStore {
    private gate: Promise<void> | undefined;
    open: () => void = () => undefined;
    holdNextWrite(): void {
      this.gate = new Promise((resolve) => (this.open = resolve));
    }
    override async writeBucket(write: BucketWrite): Promise<boolean> {
      const gate = this.gate;
      this.gate = undefined;
      if (gate) await gate;
      return super.writeBucket(write);
    }
  }

  it('never spends the same leased tokens twice: no more than the bucket holds at one instant', async () => {
    const store = new SlowOnce();
    const t = at(E, 1000);
    const quota = new QuotaLimiter({ store, config: CONFIG, region: EU, now: () => t });
    let admitted = 0;
    const take = async (amount: number) => {
      if ((await quota.consume('tenant-1', 'requests', amount)).admitted) admitted += amount;
    };
    // A busy container: its lease now holds tokens taken ahead of requests.
    for (let i = 0; i < 7; i++) await take(1);
    // A request the lease does not cover goes to the table; while its write is in flight, requests the lease
    // covers are answered from it.
    store.holdNextWrite();
    const large = take(4);
    await new Promise((resolve) => setImmediate(resolve));
    const small = [take(1), take(1), take(1)];
    store.open();
    await Promise.all([large, ...small]);
    for (let i = 0; i < 100; i++) await take(1);
    expect(admitted).toBeLessThanOrEqual(30);
  });

  it('counts every request once in the window counters when concurrent requests go to the table', async () => {
    const store = new MemoryLimiterStore();
    let t = at(E, 1000);
    const quota = new QuotaLimiter({ store, config: CONFIG, region: EU, now: () => t });
    let admitted = 0;
    let requested = 0;
    for (const start = t; t < start + 3000; t += 50) {
      const decisions = await Promise.all(
        Array.from({ length: 10 }, () => quota.consume('tenant-1', 'requests')),
      );
      requested += decisions.length;
      admitted += decisions.filter((d) => d.admitted).length;
    }
    t += 1000;
    admitted += (await quota.consume('tenant-1', 'requests')).admitted ? 1 : 0;
    requested += 1;
    const counters = store.items.get('requests\u0000tenant-1')?.counters;
    expect(counters?.consumed[0]).toBe(admitted * 1000);
    expect(counters?.demand[0]).toBe(requested * 1000);
  });
});
