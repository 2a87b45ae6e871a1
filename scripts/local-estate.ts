// The main job on the embedded default: the `local` estate deployed onto moto_server, every trigger of it live
// (scripts/lib/local-runtime), each region's health through its HTTP API, and sync converging.
// Usage: npm start [-- --keep]   (--keep leaves it all running until Ctrl-C; ESTATE_SPEED speeds schedules up)
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { REPO_ROOT } from '../modules/bundled-function/bundle';
import { documentIn, syncRegionsOf, writer } from './lib/event-pump';
import { startLocalRuntime, type LocalRuntime } from './lib/local-runtime';
import { startMoto } from './lib/moto';
import { deployLocalEstate } from './lib/local-estate';
import { prepareTerraform } from './lib/terraform';
import { progressView } from './lib/progress-view';

/** Schedules fire this many times faster than in AWS (ESTATE_SPEED; rate(5 minutes) every 5 s at 60). */
const SPEED = Number(process.env.ESTATE_SPEED ?? 60);

/** One line per region of what ran: invocations and errors per function, queue batches. */
function statusLines(runtime: LocalRuntime): string[] {
  const status = runtime.status();
  const regions = [...new Set(status.functions.map((fn) => fn.region))].sort();
  return regions.map((region) => {
    const functions = status.functions.filter((fn) => fn.region === region && fn.invocations > 0);
    const queues = status.queues.filter((queue) => queue.region === region);
    const batches = queues.reduce((sum, queue) => sum + queue.batches, 0);
    const failed = queues.reduce((sum, queue) => sum + queue.failed, 0);
    const invoked = functions
      .map(
        (fn) =>
          `${fn.functionName.replace(/^local-/, '')} ${fn.invocations}${fn.errors ? ` (${fn.errors} failed)` : ''}`,
      )
      .join(', ');
    return `  ${region.padEnd(16)} queue batches ${batches}${failed ? ` (${failed} messages retried)` : ''}; invoked: ${invoked || 'nothing yet'}`;
  });
}

async function main(): Promise<void> {
  if (!Number.isFinite(SPEED) || SPEED <= 0 || SPEED > 3600)
    throw new Error(
      `ESTATE_SPEED must be a number above 0 and at most 3600, got ${process.env.ESTATE_SPEED}`,
    );
  const keep = process.argv.includes('--keep');
  const cli = prepareTerraform();
  const moto = await startMoto();
  console.log(`AWS emulator (moto_server) at ${moto.endpoint}`);
  let failed = false;
  let runtime: LocalRuntime | undefined;
  try {
    const started = Date.now();
    console.log(
      '\nDeploying the local estate (every stack side by side; each starts once what it reads exists):',
    );
    const view = progressView();
    let estate;
    try {
      estate = await deployLocalEstate(cli, moto.endpoint, {
        // On a terminal the view shows each stack's phase in place; other lines would scroll it.
        log: process.stdout.isTTY ? undefined : (line) => console.log(`  ${line}`),
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
    const runtimeLog = join(REPO_ROOT, '.build', 'local-estate', 'runtime.jsonl');
    mkdirSync(dirname(runtimeLog), { recursive: true });
    writeFileSync(runtimeLog, '');
    runtime = await startLocalRuntime({
      endpoint: moto.endpoint,
      stacks: estate.stacks.map((stack) => ({ name: stack.name, dir: stack.dir })),
      speed: SPEED,
      onLog: (entry) => appendFileSync(runtimeLog, `${JSON.stringify(entry)}\n`),
    });
    const count = (key: 'functions' | 'mappings' | 'rules' | 'apis') =>
      runtime?.triggers.reduce((sum, stack) => sum + stack[key].length, 0) ?? 0;
    console.log(
      `\nEvery trigger live (found in the synthesized stacks; handlers on Node ${runtime.nodeVersion ?? '?'}): ` +
        `${count('functions')} functions, ${count('mappings')} queue mappings polled, ${count('rules')} ` +
        `EventBridge rules (schedules ${SPEED}x faster), ${count('apis')} HTTP APIs; logs in ${relative(REPO_ROOT, runtimeLog)}`,
    );
    for (const [region, url] of runtime.httpEndpoints)
      console.log(
        `  ${region.padEnd(16)} ${url}   curl ${url}/health   (admin routes: curl --aws-sigv4 "aws:amz:${region}:execute-api" --user test:test)`,
      );
    if (runtime.secretsEndpoint)
      console.log(
        `  Secrets Manager calls through ${runtime.secretsEndpoint} reach the rules as CloudTrail events`,
      );

    console.log("\nRegional health (GET /health through each region's HTTP API):");
    for (const [region, url] of runtime.httpEndpoints) {
      const response = await fetch(`${url}/health`);
      const verdict = (await response.json()) as { status: string; failing: string[] };
      failed ||= response.status !== 200;
      console.log(
        `  ${region.padEnd(16)} ${response.status} ${verdict.status}${verdict.failing.length ? ` (failing: ${verdict.failing.join(', ')})` : ''}`,
      );
    }
    console.log(
      "\nActive/active sync (one increment written in each region; the inboxes are polled like Lambda's mapping):",
    );
    const regions = syncRegionsOf(estate);
    for (const region of regions)
      await writer(moto.endpoint, region).update('demo', { kind: 'increment', field: 'count', by: 1 });
    const deadline = Date.now() + 60_000;
    let counts: number[] = [];
    for (;;) {
      counts = await Promise.all(
        regions.map(async (region) => (await documentIn(moto.endpoint, region, 'demo')).count),
      );
      if (counts.every((count) => count === regions.length) || Date.now() > deadline) break;
      await new Promise((wake) => setTimeout(wake, 250));
    }
    regions.forEach((region, i) => {
      console.log(`  ${region.region.padEnd(16)} demo.count = ${counts[i]} (expected ${regions.length})`);
      failed ||= counts[i] !== regions.length;
    });

    if (keep) {
      console.log(`\nKeeping the estate running on ${moto.endpoint}; Ctrl-C to stop. What ran, every 30 s:`);
      const live = runtime;
      const timer = setInterval(() => console.log(statusLines(live).join('\n')), 30_000);
      process.once('SIGINT', () => clearInterval(timer));
      await new Promise<void>((resolveWait) => process.once('SIGINT', () => resolveWait()));
    }
  } finally {
    await runtime?.stop();
    await moto.stop();
  }
  if (failed) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
