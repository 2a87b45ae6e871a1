// Synth and bundle benchmark. Prints, for the same run:
//  - wall time and peak RSS of synthesizing every stack (the cdktf app, scripts/app.mjs), and of a baseline
//    (one stack, one S3 bucket, the provider imported from its package root), with their ratio;
//  - each handler bundle's size and the time a fresh Node process takes to load it.
// Usage: npm run bench:synth [-- --runs 5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleHandler, REPO_ROOT } from '../modules/bundled-function/bundle';

interface Sample {
  readonly wallMs: number;
  readonly maxRssMiB: number;
}

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const preload = join(REPO_ROOT, 'bench', 'support', 'report-usage.cjs');

function measure(script: string): Sample {
  const scratch = mkdtempSync(join(tmpdir(), 'bench-synth-'));
  const usageFile = join(scratch, 'usage.json');
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ['-r', preload, script], {
    cwd: scratch,
    env: { ...process.env, CDKTF_OUTDIR: join(scratch, 'out'), BENCH_USAGE_FILE: usageFile },
    encoding: 'utf8',
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${script} failed:\n${result.stderr}`);
  const { maxRssKiB } = JSON.parse(readFileSync(usageFile, 'utf8')) as { maxRssKiB: number };
  rmSync(scratch, { recursive: true, force: true });
  return { wallMs, maxRssMiB: maxRssKiB / 1024 };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

function series(label: string, script: string): { wallMs: number; maxRssMiB: number } {
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(measure(script));
  const summary = {
    wallMs: median(samples.map((s) => s.wallMs)),
    maxRssMiB: median(samples.map((s) => s.maxRssMiB)),
  };
  console.log(
    `${label.padEnd(44)} ${summary.wallMs.toFixed(0).padStart(6)} ms  ${summary.maxRssMiB.toFixed(0).padStart(5)} MiB`,
  );
  return summary;
}

function loadTimeMs(codePath: string): number {
  const script = `const t = process.hrtime.bigint(); require(${JSON.stringify(codePath)}); process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));`;
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const result = spawnSync(process.execPath, ['-e', script], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`loading ${codePath} failed:\n${result.stderr}`);
    samples.push(Number(result.stdout));
  }
  return median(samples);
}

console.log(`synth (median of ${runs} fresh processes each)`);
const full = series('full synth, every stack (scripts/app.mjs)', join(REPO_ROOT, 'scripts', 'app.mjs'));
const baseline = series(
  'baseline: 1 stack, 1 bucket, barrel import',
  join(REPO_ROOT, 'bench', 'support', 'barrel-baseline.cjs'),
);
console.log(
  `ratio full/baseline: wall ${(full.wallMs / baseline.wallMs).toFixed(2)}x, peak RSS ${(full.maxRssMiB / baseline.maxRssMiB).toFixed(2)}x`,
);

console.log('\nhandler bundles (load = require() in a fresh Node process, median)');
const handlers = readdirSync(join(REPO_ROOT, 'runtime'), { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('handler.ts'))
  .sort();
for (const file of handlers) {
  const bundle = bundleHandler(join('runtime', file));
  console.log(
    `${bundle.name.padEnd(16)} ${(bundle.codeBytes / 1024).toFixed(1).padStart(7)} KiB code  ${(bundle.archiveBytes / 1024).toFixed(1).padStart(7)} KiB zip  load ${loadTimeMs(bundle.codePath).toFixed(1).padStart(6)} ms`,
  );
}
