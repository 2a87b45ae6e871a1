import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { zipSync } from 'fflate';

/** Repository root (where `cdktf.json` is): handlers live under `runtime/`, bundles go to `.build/bundles/`. */
export const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'cdktf.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`bundleHandler: no cdktf.json above ${from}`);
  }
}
/** Where bundles are written; override with ESTATE_BUNDLE_DIR. */
export const BUNDLE_DIR = process.env.ESTATE_BUNDLE_DIR ?? join(REPO_ROOT, '.build', 'bundles');

/** Fixed timestamp for archive entries, so the same sources always give byte-identical archives. */
const ZIP_EPOCH = new Date('1980-01-01T00:00:00Z');

/** A handler bundled for Lambda. */
export interface HandlerBundle {
  /** Short name, e.g. `health` for `runtime/health/handler.ts`. */
  readonly name: string;
  /** The bundled JavaScript (CommonJS, exports `handler`). */
  readonly codePath: string;
  /** Deterministic zip archive holding `index.js`. */
  readonly archivePath: string;
  /** Base64 SHA-256 of the archive, as Lambda reports `CodeSha256`. */
  readonly archiveSha256: string;
  readonly codeBytes: number;
  readonly archiveBytes: number;
}

const bundles = new Map<string, HandlerBundle>();
let esbuildRuns = 0;

/** How many times esbuild ran in this process (each handler is bundled at most once per process). */
export function bundleRunCount(): number {
  return esbuildRuns;
}

/** Names a handler after its folder under `runtime/`: `runtime/quota/sync/handler.ts` -> `quota-sync`. */
export function handlerName(entry: string): string {
  const rel = relative(join(REPO_ROOT, 'runtime'), resolve(REPO_ROOT, entry));
  if (rel.startsWith('..') || basename(rel) !== 'handler.ts') {
    throw new Error(
      `bundleHandler: invalid entry: received ${JSON.stringify(entry)}; expected runtime/<capability>/handler.ts`,
    );
  }
  return dirname(rel).split(/[\\/]/).join('-');
}

/** Every handler under `runtime/`: `runtime/<capability>[/<part>]/handler.ts`. */
export function handlerEntries(): string[] {
  const runtime = join(REPO_ROOT, 'runtime');
  return readdirSync(runtime, { recursive: true, encoding: 'utf8' })
    .filter((file) => basename(file) === 'handler.ts')
    .map((file) => join(runtime, file))
    .sort();
}

/**
 * Bundles a handler with esbuild (tree-shaken, ES modules preferred, minified, Node 20 syntax so the
 * bundle runs on Node 20 and the nodejs22.x runtime) into a deterministic zip. The first call bundles
 * every handler of `runtime/` in one esbuild run (their shared code is parsed once); the results are
 * cached, so however many stacks use a handler, it is bundled once per synth.
 */
export function bundleHandler(entry: string): HandlerBundle {
  const absolute = resolve(REPO_ROOT, entry);
  handlerName(entry); // validates the entry
  if (!bundles.has(absolute)) bundleAll([...new Set([absolute, ...handlerEntries()])]);
  const bundle = bundles.get(absolute);
  if (!bundle) throw new Error(`bundleHandler: esbuild produced no output for ${entry}`);
  return bundle;
}

function bundleAll(entries: readonly string[]): void {
  const runtime = join(REPO_ROOT, 'runtime');
  const outdir = join(BUNDLE_DIR, '.esbuild');
  const result = buildSync({
    entryPoints: [...entries],
    outbase: runtime,
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    mainFields: ['module', 'main'],
    minify: true,
    treeShaking: true,
    legalComments: 'none',
    charset: 'utf8',
    write: false,
    logLevel: 'silent',
    // The nodejs22.x runtime provides AWS SDK v3; bundling it would cost ~250 KB per function.
    external: ['@aws-sdk/*'],
  });
  esbuildRuns += 1;
  for (const entry of entries) {
    const expected = join(outdir, relative(runtime, dirname(entry)), 'handler.js');
    const code = result.outputFiles.find((file) => file.path === expected)?.contents;
    if (code) bundles.set(entry, writeBundle(handlerName(entry), code));
  }
}

function writeBundle(name: string, code: Uint8Array): HandlerBundle {
  const archive = zipSync({ 'index.js': [code, { mtime: ZIP_EPOCH, level: 9 }] });
  const dir = join(BUNDLE_DIR, name);
  mkdirSync(dir, { recursive: true });
  const codePath = join(dir, 'index.js');
  const archivePath = join(dir, `${name}.zip`);
  writeAtomically(codePath, code);
  writeAtomically(archivePath, archive);
  return {
    name,
    codePath,
    archivePath,
    archiveSha256: createHash('sha256').update(archive).digest('base64'),
    codeBytes: code.byteLength,
    archiveBytes: archive.byteLength,
  };
}

/** Parallel synths (test workers) may bundle the same handler at once: never expose a half-written file. */
function writeAtomically(path: string, data: Uint8Array): void {
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temporary, data);
  renameSync(temporary, path);
}
