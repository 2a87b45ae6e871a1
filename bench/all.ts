// Runs every bench (each `bench:<name>` script of package.json) one after another and rewrites BENCHMARKS.md:
// the header (machine, date, command) and, for each bench that succeeded, the block between its
// `<!-- bench:<name>:begin -->` and `<!-- bench:<name>:end -->` markers (command, figures as printed, ratio
// lines). Prose outside the markers is kept; a bench without a block gets a new section at the end.
// The file is rewritten after each bench, so an interrupted run keeps what it finished.
// A bench that fails keeps its earlier figures; the run goes on with the others and exits 1 naming it.
// Usage: npm run bench [-- <name> [<name>...]]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import {
  benchNames,
  failures,
  selectBenches,
  updateReport,
  type BenchResult,
  type Machine,
  type Run,
} from './support/report';

const REPO_ROOT = join(__dirname, '..');
const REPORT = join(REPO_ROOT, 'BENCHMARKS.md');

function machine(): Machine {
  const cores = cpus();
  return {
    cpuModel: cores[0]?.model ?? 'unknown CPU',
    cpuCount: cores.length,
    memoryBytes: totalmem(),
    os: `${osType()} ${release()} (${arch()})`,
    node: process.versions.node,
  };
}

/** Runs `npm run bench:<name>` (npm's banner off), echoing its output; resolves with what it printed. */
function runBench(name: string): Promise<BenchResult> {
  const npmCli = process.env.npm_execpath;
  const args = ['run', '--silent', `bench:${name}`];
  const startedAt = new Date();
  const load = loadavg()[0] ?? 0;
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const child = spawn(npmCli ? process.execPath : 'npm', npmCli ? [npmCli, ...args] : args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      process.stdout.write(chunk);
    });
    child.on('error', (error) => resolve({ name, ok: false, reason: error.message }));
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const stdout = Buffer.concat(chunks).toString('utf8');
      if (code !== 0)
        resolve({ name, ok: false, reason: signal ? `killed by ${signal}` : `exit code ${code}` });
      else if (stdout.trim() === '') resolve({ name, ok: false, reason: 'printed no figures' });
      else resolve({ name, ok: true, stdout, startedAt, seconds, load });
    });
  });
}

async function writeReport(run: Run, results: readonly BenchResult[]): Promise<void> {
  // Read just before writing: prose edited by hand during a long run is kept.
  const text = updateReport(readFileSync(REPORT, 'utf8'), run, results);
  const options = (await resolveConfig(REPORT)) ?? {};
  writeFileSync(REPORT, await format(text, { ...options, filepath: REPORT }));
}

async function main(): Promise<void> {
  const scripts =
    (
      JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
        scripts?: Record<string, string>;
      }
    ).scripts ?? {};
  const known = benchNames(scripts);
  let selected: string[];
  try {
    selected = selectBenches(known, process.argv.slice(2));
  } catch (error) {
    console.error(`npm run bench: ${(error as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const run: Run = { machine: machine(), date: new Date(), known, selected };
  const results: BenchResult[] = [];
  for (const name of selected) {
    console.log(`\n=== bench:${name} (${results.length + 1} of ${selected.length}) ===`);
    const result = await runBench(name);
    results.push(result);
    if (result.ok) console.log(`=== bench:${name}: ${result.seconds.toFixed(1)} s ===`);
    else
      console.error(
        `=== bench:${name} FAILED (${result.reason}): BENCHMARKS.md keeps its earlier figures ===`,
      );
    await writeReport(run, results);
  }
  const done = results.filter((result) => result.ok).map((result) => result.name);
  const failed = failures(results);
  console.log(`\nBENCHMARKS.md: header and figures of ${done.join(', ') || 'no bench'} rewritten`);
  if (failed.length > 0) {
    const which = failed.map((result) => `bench:${result.name} (${result.reason})`).join(', ');
    console.error(`npm run bench: failed: ${which}; their sections keep their earlier figures`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
