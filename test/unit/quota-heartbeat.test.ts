import { nextHeartbeat } from '../../runtime/quota/enforcement';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { MemoryLimiterStore } from '../../runtime/quota/store';
import { runSyncPass } from '../../runtime/quota/sync';
import {
  AP,
  at,
  CONFIG,
  E,
  EU,
  LIMIT,
  MemorySnapshots,
  RecordingMetrics,
  REQUESTS,
  ranThrough,
} from '../support/quota-fixtures';

describe('the heartbeat and hostile entity names', () => {
  it('does not record a pass that completes after a later one (what it wrote must not take effect)', () => {
    const later = { epoch: E + 1, completed: [E + 1, E - 1, E - 2], partial: [], staticCaps: new Map() };
    expect(nextHeartbeat(later, E)).toBe(later);
    // In order, every completed epoch is kept, newest first.
    expect(nextHeartbeat(ranThrough(E - 1), E).completed).toEqual([E, E - 1, E - 2]);
  });

  it('holds: entities named like Object.prototype members go through the hot path and a pass', async () => {
    const store = new MemoryLimiterStore();
    const snapshots = new MemorySnapshots();
    let t = at(E - 1, 5000);
    const limiter = new QuotaLimiter({ store, config: CONFIG, region: EU, now: () => t });
    for (const entity of ['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
      expect((await limiter.consume(entity, 'requests', 1)).admitted).toBe(true);
    t = at(E, 3000);
    const result = await runSyncPass({
      config: CONFIG,
      region: EU,
      store,
      snapshots: snapshots.forRegion(EU),
      metrics: new RecordingMetrics(),
      now: () => t,
      settleMs: 0,
    });
    expect(result.snapshot).toBe('written');
    expect(
      snapshots
        .read(EU, E)
        ?.entries.map((e) => e.entity)
        .sort(),
    ).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    void AP;
    void LIMIT;
    void REQUESTS;
  });
});
