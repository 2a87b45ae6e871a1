// Secrets replicator benchmark. Prints, in one run:
//  - fan-out of one change to 5 destinations with 200 ms injected per Secrets Manager call (the in-memory
//    Secrets Manager of the unit tests), for a new secret and for an update: the replicator (destinations in
//    parallel) against the sequential design of the seed's origin, taken in the same run (the same calls,
//    one destination after another: the replicator with a parallelism of 1);
//  - a resync of 1,000 secrets to 3 destinations when nothing changed: the calls it makes, by operation,
//    reads and writes (goal: reads only, zero writes), and its wall time with no injected latency.
// Usage: npm run bench:secrets  (SECRETS_BENCH_LATENCY_MS to change the injected latency)
import { handleTrigger, replicateSecret } from '../runtime/secrets/replicator';
import { destinationOf, World } from '../test/support/secrets-fixtures';

const LATENCY_MS = Number(process.env.SECRETS_BENCH_LATENCY_MS ?? 200);
const DESTINATIONS = ['us-east-1', 'us-east-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-1'];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function fanOut(parallelism: number): Promise<{ created: number; updated: number }> {
  const world = new World();
  const destinations = DESTINATIONS.map((region) =>
    destinationOf({ region, transform: (v) => v.split('us-west-2').join(region) }),
  );
  const deps = world.replicator('us-west-2', destinations, { parallelism });
  const source = world.region('us-west-2');
  source.userWrite('app/db', '{"host":"db.us-west-2.internal","password":"p1"}');
  for (const region of ['us-west-2', ...DESTINATIONS]) world.region(region).latencyMs = LATENCY_MS;
  const created = await timed(() => replicateSecret('app/db', deps));
  world.now += 1000;
  source.userWrite('app/db', '{"host":"db.us-west-2.internal","password":"p2"}');
  const updated = await timed(() => replicateSecret('app/db', deps));
  return { created, updated };
}

async function quietResync(): Promise<void> {
  const world = new World();
  const destinations = ['us-east-1', 'eu-west-1', 'ap-southeast-1'].map((region) =>
    destinationOf({ region, deletePolicy: { kind: 'propagate' } }),
  );
  const deps = world.replicator('us-west-2', destinations);
  const source = world.region('us-west-2');
  for (let i = 0; i < 1000; i++) source.userWrite(`app/service-${i}`, `{"token":"t${i}"}`);
  await handleTrigger({ kind: 'resync' }, deps);
  const regions = ['us-west-2', ...destinations.map((d) => d.region)].map((r) => world.region(r));
  for (const region of regions) region.calls.length = 0;
  const ms = await timed(() => handleTrigger({ kind: 'resync' }, deps));
  const calls = regions.flatMap((region) => region.calls);
  const byOp = new Map<string, number>();
  for (const call of calls) byOp.set(call.op, (byOp.get(call.op) ?? 0) + 1);
  const writes = regions.reduce((sum, region) => sum + region.writes.length, 0);
  console.log('\nresync of 1,000 unchanged secrets to 3 destinations');
  console.log(`  calls: ${calls.length} (${[...byOp].map(([op, n]) => `${op} ${n}`).join(', ')})`);
  console.log(`  writes: ${writes}`);
  console.log(`  wall time (no injected latency): ${ms.toFixed(0)} ms`);
}

async function main(): Promise<void> {
  console.log(`fan-out of one change to ${DESTINATIONS.length} destinations, ${LATENCY_MS} ms per call`);
  const sequential = await fanOut(1);
  const parallel = await fanOut(8);
  for (const kind of ['created', 'updated'] as const)
    console.log(
      `  ${kind === 'created' ? 'new secret' : 'update    '}: parallel ${parallel[kind].toFixed(0)} ms, ` +
        `sequential ${sequential[kind].toFixed(0)} ms, ratio ${(parallel[kind] / sequential[kind]).toFixed(2)}x`,
    );
  await quietResync();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
