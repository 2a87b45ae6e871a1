// `npm start` benchmark: runs the main job as a user does (a cold emulator, an installed checkout) and prints
// where its time went:
//  - its wall time, and the deployment's (synth, then every stack side by side);
//  - per stack: when its apply started, its plan (provider start, validation, plan) and its changes;
//  - per stack, the critical path of its apply: the chain of resources, each waiting on the one before,
//    that decided when it ended (the provider's waits for eventual consistency show as 15-55 s links);
//  - against baselines from the same run: the stacks applied wave by wave, as `npm start` did before (each
//    wave side by side, after the one before it; from this run's apply lengths, so an estimate: fewer stacks
//    at once would each run with less CPU contention), and every apply one after another.
// Usage: npm run bench:start
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyTimeline, criticalPath, resourceDependencies } from '../scripts/lib/apply-timeline';
import { applyLogOf } from '../scripts/lib/local-estate';
import { run } from '../scripts/lib/process';
import { defaultOutdir, deploymentWaves } from '../scripts/lib/synth';

async function main(): Promise<void> {
  const started = Date.now();
  const result = await run(process.execPath, ['--import', 'tsx', 'scripts/local-estate.ts'], {
    timeoutMs: 20 * 60_000,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const wallSeconds = (Date.now() - started) / 1000;
  const deployed = /Deployed the local estate in ([\d.]+) s/.exec(result.stdout)?.[1];
  const synthesized = /synthesized .* in ([\d.]+) s/.exec(result.stdout)?.[1];
  console.log('npm start (scripts/local-estate.ts, cold emulator)');
  console.log(`  wall time                          ${wallSeconds.toFixed(1).padStart(6)} s`);
  console.log(`  deployment (synth + every stack)   ${Number(deployed).toFixed(1).padStart(6)} s`);
  console.log(`  of which synth                     ${Number(synthesized).toFixed(1).padStart(6)} s`);
  console.log(
    `  after it (health, sync demo)       ${(wallSeconds - Number(deployed)).toFixed(1).padStart(6)} s`,
  );

  const stacksDir = join(defaultOutdir('local'), 'stacks');
  const manifest = JSON.parse(readFileSync(join(defaultOutdir('local'), 'manifest.json'), 'utf8')) as {
    stacks: Record<string, { dependencies?: string[] }>;
  };
  const applySeconds = new Map<string, number>();
  let applies = 0;
  console.log(
    '\nper stack (seconds): started after synth+init, plan, changes, apply; critical path of its changes',
  );
  for (const name of readdirSync(stacksDir).sort()) {
    const dir = join(stacksDir, name);
    const lines = readFileSync(applyLogOf(dir), 'utf8').split('\n');
    const timeline = applyTimeline(lines);
    applies += timeline.totalSeconds;
    applySeconds.set(name, timeline.totalSeconds);
    const config: unknown = JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8'));
    const chain = criticalPath(timeline, resourceDependencies(config));
    const startedAt = /"@timestamp":"([^"]+)"/.exec(lines[0] ?? '')?.[1];
    const offset = startedAt ? (Date.parse(startedAt) - started) / 1000 : Number.NaN;
    console.log(
      `  ${name.padEnd(26)} from ${offset.toFixed(0).padStart(4)}  plan ${timeline.planSeconds.toFixed(0).padStart(3)}` +
        `  changes ${String(timeline.spans.size).padStart(3)}  apply ${timeline.totalSeconds.toFixed(0).padStart(4)}`,
    );
    console.log(
      `    ${chain.map((span) => `${span.address.replace(/_[0-9A-F]{8}$/, '')} ${(span.end - span.start).toFixed(0)}`).join(' -> ')}`,
    );
  }
  const waves = deploymentWaves(
    Object.entries(manifest.stacks).map(([name, stack]) => ({
      name,
      dir: '',
      dependsOn: stack.dependencies ?? [],
    })),
  );
  const waveByWave = waves.reduce(
    (sum, wave) => sum + Math.max(...wave.map((stack) => applySeconds.get(stack.name) ?? 0)),
    0,
  );
  const deployment = Number(deployed);
  console.log(
    `\nbaseline: wave by wave (waves of ${waves.map((w) => w.length).join(', ')} stacks)  ${waveByWave.toFixed(1)} s`,
  );
  console.log(`baseline: every apply one after another  ${applies.toFixed(1)} s`);
  console.log(`ratio deployment/wave-by-wave: ${(deployment / waveByWave).toFixed(2)}x`);
  console.log(`ratio deployment/one-after-another: ${(deployment / applies).toFixed(2)}x`);
  if (!/demo\.count = (\d+) \(expected \1\)/.test(result.stdout))
    throw new Error('npm start did not converge');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
