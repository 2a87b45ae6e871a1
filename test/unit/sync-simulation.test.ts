import { simulate, type SimulationOptions } from '../support/sync-simulation';

const seedFromEnv = Number(process.env.SIM_SEED);
const seed = Number.isInteger(seedFromEnv) ? seedFromEnv : Date.now() % 1_000_000;

async function run(options: Omit<SimulationOptions, 'seed'>) {
  const result = await simulate({ seed, ...options });
  return { result, context: `(reproduce with SIM_SEED=${seed})` };
}

describe('cross-region sync simulation', () => {
  jest.setTimeout(120_000);

  it.each([
    [2, 3],
    [3, 3],
    [5, 2],
  ])(
    '%i regions x %i writers: 10,000 operations over a lossy, duplicating, reordering, partitioned network converge with exact totals',
    async (regions, writers) => {
      const { result, context } = await run({
        regions,
        writersPerRegion: writers,
        operations: 10_000,
        lossRate: 0.1,
        duplicateRate: 0.15,
        partitionRate: 0.002,
      });
      const [first, ...rest] = [...result.states.values()];
      for (const state of rest) expect({ state, context }).toEqual({ state: first, context });
      for (const [region, values] of result.counters) {
        for (const [key, total] of result.expectedCounters) {
          expect({ region, key, value: values.get(key) ?? 0, context }).toEqual({
            region,
            key,
            value: total,
            context,
          });
        }
      }
      expect(result.completed).toBe(10_000);
      // The network really misbehaved in this run.
      expect(result.lost).toBeGreaterThan(0);
      expect(result.duplicated).toBeGreaterThan(0);
      expect(result.partitions).toBeGreaterThan(0);
    },
  );

  it('loses increments when a region writes without conditions (the defect this service avoids)', async () => {
    const { result } = await run({
      regions: 2,
      writersPerRegion: 4,
      operations: 2_000,
      lossRate: 0,
      duplicateRate: 0,
      partitionRate: 0,
      blindWrites: true,
    });
    const lost = [...result.expectedCounters].some(([key, total]) =>
      [...result.counters.values()].some((values) => (values.get(key) ?? 0) !== total),
    );
    expect(lost).toBe(true);
  });
});
