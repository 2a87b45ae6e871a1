// The main job on the embedded default: the `local` estate on moto_server, its health checked per region.
// Usage: npm start [-- --keep]   (--keep leaves the emulator running until Ctrl-C)
import { documentIn, pump, syncRegionsOf, writer } from './lib/event-pump';
import { startMoto } from './lib/moto';
import { deployLocalEstate, invokeDeployed, regionalStackOf } from './lib/local-estate';
import { resourceName } from '../stacks/names';
import { prepareTerraform } from './lib/terraform';
import { progressView } from './lib/progress-view';

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const cli = prepareTerraform();
  const moto = await startMoto();
  console.log(`AWS emulator (moto_server) at ${moto.endpoint}`);
  let failed = false;
  try {
    const started = Date.now();
    console.log(
      '\nDeploying the local estate (every stack side by side; each starts once what it reads exists):',
    );
    const view = progressView();
    let estate;
    try {
      estate = await deployLocalEstate(cli, moto.endpoint, {
        log: (line) => console.log(`  ${line}`),
        onProgress: (stacks) => view.update(stacks),
      });
    } finally {
      view.close();
    }
    console.log(`\nDeployed the local estate in ${((Date.now() - started) / 1000).toFixed(1)} s:`);
    for (const stack of estate.stacks) {
      const slowest = stack.slowest[0];
      console.log(
        `  ${stack.name.padEnd(24)} ${String(stack.resourceCount).padStart(3)} resources, applied from ` +
          `${stack.startedAfterSeconds.toFixed(0).padStart(3)} s for ${stack.applySeconds.toFixed(0).padStart(3)} s` +
          (slowest ? ` (slowest: ${slowest.address} ${slowest.seconds} s)` : ''),
      );
    }
    console.log('\nRegional health (GET /health, the deployed bundle invoked in-process):');
    for (const region of estate.environment.regions) {
      const stack = regionalStackOf(estate, region);
      const { response } = await invokeDeployed(
        moto.endpoint,
        region,
        stack.dir,
        resourceName(estate.environment, 'health'),
        {
          rawPath: '/health',
          requestContext: { http: { method: 'GET' } },
        },
      );
      const { statusCode, body } = response as { statusCode: number; body: string };
      const verdict = JSON.parse(body) as { status: string; failing: string[] };
      failed ||= statusCode !== 200;
      console.log(
        `  ${region.padEnd(16)} ${statusCode} ${verdict.status}${verdict.failing.length ? ` (failing: ${verdict.failing.join(', ')})` : ''}`,
      );
    }
    console.log(
      '\nActive/active sync (one increment written in each region, inboxes pumped through the deployed consumer):',
    );
    const regions = syncRegionsOf(estate);
    for (const region of regions)
      await writer(moto.endpoint, region).update('demo', { kind: 'increment', field: 'count', by: 1 });
    for (const region of regions) await pump(moto.endpoint, region);
    for (const region of regions) {
      const { count } = await documentIn(moto.endpoint, region, 'demo');
      console.log(`  ${region.region.padEnd(16)} demo.count = ${count} (expected ${regions.length})`);
      failed ||= count !== regions.length;
    }

    if (keep) {
      console.log(`\nKeeping the emulator at ${moto.endpoint}; Ctrl-C to stop.`);
      await new Promise<void>((resolveWait) => process.once('SIGINT', () => resolveWait()));
    }
  } finally {
    await moto.stop();
  }
  if (failed) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
