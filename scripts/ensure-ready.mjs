// The pre-script of `npm start` and `npm test` (`node scripts/ensure-ready.mjs start|test [--quiet]`): installs
// what is missing, then checks the prerequisites and names the exact command that installs each one missing.
//   1. `npm ci` when node_modules is missing or older than package-lock.json.
//   2. In parallel: Terraform >= 1.5; hashicorp/aws 5.100.0 from a filesystem mirror, else a network path to
//      registry.terraform.io; moto_server importable by the project's Python; Node 22 (Lambda's nodejs22.x) for
//      the handlers, installed from npm into .build/node22 when there is none.
// Every failure is printed, then it exits 1. With everything in place it prints one line (nothing with --quiet)
// and takes a fraction of a second: no npm, no network when a mirror is found, version probes in parallel.
// Plain Node ESM without dependencies: it runs before node_modules exists. Importing it runs nothing (the pure
// parts are exported for test/unit/ensure-ready.test.ts).
import { Buffer } from 'node:buffer';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL, URL } from 'node:url';
import {
  NODE22_DIR,
  NODE22_VERSION,
  findOnPath,
  node22InstallArgs,
  node22Package,
  nodeVersion,
  resolveNode22,
} from './lib/node22.cjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------------------
// Step 1: dependencies
// ---------------------------------------------------------------------------------------------------------

/**
 * Why `npm ci` must run, or undefined when node_modules is current. `marker` and `lock` are the mtimes (ms) of
 * node_modules/.package-lock.json (npm writes it last at every install) and package-lock.json; undefined when
 * missing.
 */
export function installReason({ nodeModules, marker, lock }) {
  if (!nodeModules) return 'node_modules is missing';
  if (lock === undefined) return undefined;
  if (marker === undefined) return 'node_modules/.package-lock.json is missing (an interrupted install?)';
  if (lock > marker) return 'package-lock.json is newer than node_modules';
  return undefined;
}

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
};

/** How to run npm: the npm running this pre-script when there is one, else `npm` from PATH. */
export function npmCommand(
  args,
  env = process.env,
  platform = process.platform,
  execPath = process.execPath,
) {
  const cli = env.npm_execpath;
  if (cli && /npm-cli\.c?js$/.test(cli)) return { command: execPath, args: [cli, ...args], shell: false };
  // npm is npm.cmd on Windows, which only a shell runs.
  return { command: 'npm', args, shell: platform === 'win32' };
}

/** Runs a command with this terminal; resolves its exit code (127 when it could not start). */
function runInherited({ command, args, shell }, cwd) {
  return new Promise((resolveRun) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'], shell });
    child.once('error', (error) => {
      console.error(`could not run ${command}: ${error.message}`);
      resolveRun(127);
    });
    child.once('exit', (code, signal) => resolveRun(code ?? (signal ? 128 : 1)));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Step 2: prerequisites. Each check resolves { name, ok: true, found, did? } or { name, ok: false, problem,
// install } (install: the exact command, one line per shell command).
// ---------------------------------------------------------------------------------------------------------

/** Runs a command and resolves what happened; never rejects. */
function probe(command, args, options = {}) {
  return new Promise((resolveProbe) => {
    execFile(
      command,
      args,
      { encoding: 'utf8', timeout: 15_000, windowsHide: true, ...options },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : undefined) : 0;
        const spawnError = error && typeof error.code === 'string' ? error.code : undefined;
        const timedOut = Boolean(error?.killed);
        resolveProbe({
          code,
          spawnError,
          timedOut,
          stdout: String(stdout ?? ''),
          stderr: String(stderr ?? ''),
        });
      },
    );
  });
}

const firstLine = (text) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line) ?? '';

/** What a probe that did not answer says: not found, or its exit code and first line of error output. */
function probeFailure(result, what) {
  if (result.spawnError === 'ENOENT') return `${what}: not found`;
  if (result.spawnError === 'EACCES') return `${what}: not executable`;
  if (result.spawnError) return `${what}: could not run (${result.spawnError})`;
  if (result.timedOut) return `${what}: no answer within 15 s`;
  const said = firstLine(result.stderr) || firstLine(result.stdout);
  return `${what} exited with ${result.code}${said ? `: ${said}` : ''}`;
}

export const MIN_TERRAFORM = [1, 5];

/** The version `terraform version -json` (or plain `terraform version`, before 0.13) prints. */
export function parseTerraformVersion(stdout) {
  try {
    const version = JSON.parse(stdout).terraform_version;
    if (typeof version === 'string') return version;
  } catch {
    // Not JSON: a Terraform too old for -json.
  }
  return /Terraform v(\d+\.\d+\.\d+\S*)/.exec(stdout)?.[1];
}

/** Whether a version `x.y.z` is at least `[major, minor]`. */
export function versionAtLeast(version, [major, minor]) {
  const [x = 0, y = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  return x > major || (x === major && y >= minor);
}

/** The exact command installing Terraform (HashiCorp's own instructions). */
export function terraformInstall(platform = process.platform) {
  if (platform === 'darwin') return 'brew tap hashicorp/tap && brew install hashicorp/tap/terraform';
  if (platform === 'win32') {
    return 'winget install --id Hashicorp.Terraform -e  (or the zip from https://developer.hashicorp.com/terraform/install)';
  }
  return [
    'wget -O - https://apt.releases.hashicorp.com/gpg | sudo gpg --dearmor -o /usr/share/keyrings/hashicorp-archive-keyring.gpg',
    'echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/hashicorp-archive-keyring.gpg] https://apt.releases.hashicorp.com $(lsb_release -cs) main" | sudo tee /etc/apt/sources.list.d/hashicorp.list',
    'sudo apt update && sudo apt install terraform',
    '(other Linux: the zip from https://developer.hashicorp.com/terraform/install)',
  ].join('\n');
}

/** The Terraform check's result from its probe of `<binary> version -json`. */
export function terraformResult(result, env = process.env, platform = process.platform) {
  const name = 'Terraform >= 1.5';
  const what =
    env.ESTATE_TERRAFORM !== undefined ? `ESTATE_TERRAFORM=${env.ESTATE_TERRAFORM}` : '`terraform` on PATH';
  const version = result.code === 0 ? parseTerraformVersion(result.stdout) : undefined;
  const install = terraformInstall(platform);
  if (!version) return { name, ok: false, problem: probeFailure(result, what), install };
  if (!versionAtLeast(version, MIN_TERRAFORM)) {
    return { name, ok: false, problem: `${what} is Terraform ${version}, older than 1.5`, install };
  }
  return { name, ok: true, found: `terraform ${version}` };
}

async function checkTerraform(env) {
  const binary = env.ESTATE_TERRAFORM ?? 'terraform';
  // CHECKPOINT_DISABLE: no update check over the network.
  const result = await probe(binary, ['version', '-json'], { env: { ...env, CHECKPOINT_DISABLE: '1' } });
  return terraformResult(result, env);
}

/**
 * scripts/lib/provider-mirror.ts, the project's own discovery, compiled once with esbuild into .build/ensure-ready
 * and reused until one of its sources changes (importing the compiled copy takes milliseconds; tsx takes half a
 * second or more).
 */
async function loadProviderMirror(root) {
  const dir = join(root, '.build', 'ensure-ready');
  const bundle = join(dir, 'provider-mirror.mjs');
  const inputsFile = join(dir, 'provider-mirror.inputs.json');
  let fresh = false;
  try {
    const { builtAt, inputs } = JSON.parse(readFileSync(inputsFile, 'utf8'));
    fresh =
      existsSync(bundle) &&
      inputs.length > 0 &&
      inputs.every((input) => (mtime(join(root, input)) ?? Infinity) < builtAt);
  } catch {
    fresh = false;
  }
  if (!fresh) {
    const builtAt = Date.now();
    const { buildSync } = createRequire(join(root, 'package.json'))('esbuild');
    const built = buildSync({
      absWorkingDir: root,
      entryPoints: [join(root, 'scripts', 'lib', 'provider-mirror.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    mkdirSync(dir, { recursive: true });
    const suffix = `.${process.pid}.tmp`;
    writeFileSync(bundle + suffix, built.outputFiles[0].text);
    renameSync(bundle + suffix, bundle);
    const inputs = Object.keys(built.metafile.inputs);
    writeFileSync(inputsFile + suffix, JSON.stringify({ builtAt, inputs }));
    renameSync(inputsFile + suffix, inputsFile);
  }
  return import(pathToFileURL(bundle).href);
}

/** Whether NO_PROXY exempts a host (Terraform honours it the Go way: names, `.suffix`es and `*`). */
export function bypassesProxy(host, noProxy = '') {
  return noProxy
    .split(',')
    .map((entry) => entry.trim().toLowerCase().replace(/:\d+$/, ''))
    .filter(Boolean)
    .some(
      (entry) =>
        entry === '*' || host === entry.replace(/^\./, '') || host.endsWith(`.${entry.replace(/^\./, '')}`),
    );
}

/** The proxy Terraform would reach `host` through (HTTPS_PROXY, https_proxy), if any. */
export function proxyFor(host, env = process.env) {
  const proxy = env.HTTPS_PROXY || env.https_proxy;
  if (!proxy || bypassesProxy(host, env.NO_PROXY || env.no_proxy)) return undefined;
  return proxy;
}

/** TLS errors mean the registry answered: Node checks certificates against its own CAs, Terraform the system's. */
const TLS_ERROR = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS|ERR_SSL|HOSTNAME_MISMATCH)/;

/**
 * Whether registry.terraform.io answers over HTTPS within `timeoutMs`, directly or through the proxy Terraform
 * would use (a CONNECT to port 443). Resolves { ok, via? } or { ok: false, error }.
 */
export function reachRegistry(env = process.env, timeoutMs = 3_000, host = 'registry.terraform.io') {
  return new Promise((resolveReach) => {
    const proxy = proxyFor(host, env);
    let settled = false;
    const done = (outcome) => {
      if (settled) return;
      settled = true;
      request.destroy();
      resolveReach(outcome);
    };
    const failed = (error) =>
      TLS_ERROR.test(String(error.code))
        ? done({ ok: true, via: `${host} answered, its certificate unverified by Node (${error.code})` })
        : done({ ok: false, error: error.code ?? error.message });
    let request;
    if (proxy) {
      const url = new URL(proxy.includes('://') ? proxy : `http://${proxy}`);
      const client = url.protocol === 'https:' ? https : http;
      const auth = url.username
        ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
        : '';
      request = client.request({
        host: url.hostname,
        port: url.port || (url.protocol === 'https:' ? 443 : 80),
        method: 'CONNECT',
        path: `${host}:443`,
        headers: {
          host: `${host}:443`,
          ...(auth ? { 'proxy-authorization': `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
        },
        timeout: timeoutMs,
      });
      request.once('connect', (response) =>
        response.statusCode === 200
          ? done({ ok: true, via: `through the proxy ${url.host}` })
          : done({ ok: false, error: `the proxy ${url.host} answered CONNECT with ${response.statusCode}` }),
      );
    } else {
      request = https.request({
        host,
        path: '/.well-known/terraform.json',
        method: 'HEAD',
        timeout: timeoutMs,
      });
      request.once('response', () => done({ ok: true }));
    }
    request.once('timeout', () => done({ ok: false, error: `no answer within ${timeoutMs / 1000} s` }));
    request.once('error', failed);
    request.end();
  });
}

/** The exact command putting hashicorp/aws where the project finds it: an unpacked mirror in ~/.terraform.d. */
export function providerInstall(version, platform, mirror = '~/.terraform.d/plugins') {
  const zip = `https://releases.hashicorp.com/terraform-provider-aws/${version}/terraform-provider-aws_${version}_${platform}.zip`;
  const dir = `${mirror}/registry.terraform.io/hashicorp/aws/${version}/${platform}`;
  return `mkdir -p ${dir} && curl -fsSLo /tmp/terraform-provider-aws.zip ${zip} && unzip -o /tmp/terraform-provider-aws.zip -d ${dir}`;
}

/** The provider check's result from the mirror found (or not), the downloaded copy, and the registry probe. */
export function providerResult({ version, platform, mirror, mirrorError, downloaded, reach, root = ROOT }) {
  const name = `hashicorp/aws ${version}`;
  if (mirrorError) {
    return {
      name,
      ok: false,
      problem: mirrorError,
      install: `${providerInstall(version, platform, '"$ESTATE_TF_PROVIDER_MIRROR"')}\n(or unset ESTATE_TF_PROVIDER_MIRROR)`,
    };
  }
  if (mirror) return { name, ok: true, found: `${name} (mirror ${mirror})` };
  if (downloaded) return { name, ok: true, found: `${name} (downloaded ${relative(root, downloaded)})` };
  if (reach?.ok) {
    const how = reach.via ? `, ${reach.via}` : '';
    return {
      name,
      ok: true,
      found: `${name} (no mirror; registry.terraform.io reachable${how}: downloaded once on first use)`,
    };
  }
  return {
    name,
    ok: false,
    problem:
      `no filesystem mirror holds it for ${platform} (ESTATE_TF_PROVIDER_MIRROR is unset; Terraform's plugin ` +
      `directories and /opt hold none) and registry.terraform.io cannot be reached to download it (${reach?.error})`,
    install: `${providerInstall(version, platform)}\n(or run with network access: Terraform then downloads it once into .build/terraform)`,
  };
}

async function checkProvider(env) {
  let discovery;
  try {
    discovery = await loadProviderMirror(ROOT);
  } catch (error) {
    return {
      name: 'hashicorp/aws',
      ok: false,
      problem: `could not load scripts/lib/provider-mirror.ts with esbuild: ${firstLine(error.message)}`,
      install: 'npm ci',
    };
  }
  const { AWS_PROVIDER_VERSION: version, downloadedMirrorPath, findProviderMirror, providerPath } = discovery;
  const platform = discovery.terraformPlatform();
  let mirror;
  let mirrorError;
  try {
    mirror = findProviderMirror(env);
  } catch (error) {
    mirrorError = error.message;
  }
  const copy = downloadedMirrorPath(join(ROOT, '.build', 'terraform'));
  const downloaded = !mirror && !mirrorError && existsSync(providerPath(copy)) ? copy : undefined;
  const reach = mirror || mirrorError || downloaded ? undefined : await reachRegistry(env);
  return providerResult({ version, platform, mirror, mirrorError, downloaded, reach });
}

/**
 * Checks, without importing moto (a second), that the Python finds what moto_server needs: moto with its server
 * module, and the server extra's werkzeug, flask and flask_cors. Prints JSON.
 */
export const MOTO_PROBE = [
  'import importlib.util as u, importlib.metadata as m, json, os',
  'missing = [n for n in ("werkzeug", "flask", "flask_cors") if u.find_spec(n) is None]',
  's = u.find_spec("moto")',
  'app = s is not None and any(os.path.isfile(os.path.join(d, "moto_server", "werkzeug_app.py")) for d in (s.submodule_search_locations or []))',
  'missing = missing if app else ["moto.moto_server"] + missing',
  'version = m.version("moto") if s is not None else None',
  'print(json.dumps({"missing": missing, "version": version}))',
].join('\n');

/** The exact command installing moto_server for a Python. */
export const motoInstall = (python) => `${python} -m pip install "moto[server]"`;

/** The moto check's result from its probe of `<python> -c MOTO_PROBE`. */
export function motoResult(result, python) {
  const name = 'moto_server';
  const install = motoInstall(python);
  const what = `${python} (ESTATE_PYTHON, default python3)`;
  let answer;
  try {
    answer = result.code === 0 ? JSON.parse(result.stdout) : undefined;
  } catch {
    answer = undefined;
  }
  if (!answer || !Array.isArray(answer.missing)) {
    return { name, ok: false, problem: probeFailure(result, what), install };
  }
  if (answer.missing.length > 0) {
    return {
      name,
      ok: false,
      problem: `${python} cannot import ${answer.missing.join(', ')}: moto with its server extra is not installed there`,
      install,
    };
  }
  return { name, ok: true, found: `moto ${answer.version ?? '(version unknown)'}` };
}

async function checkMoto(env) {
  if (env.ESTATE_MOTO_SERVER) {
    const path = findOnPath(env.ESTATE_MOTO_SERVER, env);
    return path
      ? { name: 'moto_server', ok: true, found: `moto_server ${path}` }
      : {
          name: 'moto_server',
          ok: false,
          problem: `ESTATE_MOTO_SERVER=${env.ESTATE_MOTO_SERVER} is no executable file (a path, or a name on PATH)`,
          install: `${motoInstall('python3')}  (then unset ESTATE_MOTO_SERVER, or point it at that moto_server)`,
        };
  }
  const python = env.ESTATE_PYTHON ?? 'python3';
  return motoResult(await probe(python, ['-c', MOTO_PROBE]), python);
}

/** The Node 22 check's result: found, or (after an attempted install) what is wrong and the command fixing it. */
export function node22Result({ choice, installArgs, installCode, rosetta, running, did }) {
  const name = 'Node 22 (Lambda nodejs22.x)';
  if (choice && 'path' in choice) {
    const where = choice.source === NODE22_DIR ? NODE22_DIR.split('\\').join('/') : choice.path;
    return { name, ok: true, found: `node ${choice.version} (${where})`, did };
  }
  if (choice && 'error' in choice) {
    return {
      name,
      ok: false,
      problem: choice.error,
      install: `export ESTATE_NODE22=<a Node 22 binary>, or unset ESTATE_NODE22 (the pre-script then installs one into ${NODE22_DIR})`,
    };
  }
  if (!installArgs) {
    return {
      name,
      ok: false,
      problem: `no Node 22: the node running this is ${running}, and npm has no Node 22 build for ${process.platform}-${process.arch}`,
      install:
        'install Node 22 from https://nodejs.org/en/download, then export ESTATE_NODE22=<its node binary>',
    };
  }
  const command = `npm ${installArgs.join(' ')}`;
  return {
    name,
    ok: false,
    problem:
      installCode === 0
        ? `${command} succeeded but its binary does not run as Node 22` +
          (rosetta ? ' (Apple silicon runs this x64 build through Rosetta 2: is it installed?)' : '')
        : `no Node 22 (the node running this is ${running}) and ${command} failed (exit ${installCode})`,
    install: rosetta ? `softwareupdate --install-rosetta --agree-to-license && ${command}` : command,
  };
}

async function checkNode22(env, log) {
  const choice = resolveNode22(ROOT, { env });
  if (choice) return node22Result({ choice });
  const installArgs = node22InstallArgs();
  const rosetta = node22Package()?.rosetta ?? false;
  if (!installArgs) return node22Result({ running: process.version });
  log(
    `Installing Node ${NODE22_VERSION} (Lambda runs the handlers on nodejs22.x; the node running this is ` +
      `${process.version}): npm ${installArgs.join(' ')}`,
  );
  const installCode = await runInherited(npmCommand(installArgs, env), ROOT);
  const after = installCode === 0 ? resolveNode22(ROOT, { env, probe: nodeVersion }) : undefined;
  const did = `installed Node ${NODE22_VERSION} into ${NODE22_DIR}`;
  return node22Result({ choice: after, installArgs, installCode, rosetta, running: process.version, did });
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

/** The one line printed when everything is in place. */
export const summaryLine = (results) => `prerequisites: ${results.map((result) => result.found).join(', ')}`;

/** The report of failed checks: each problem with the command installing what is missing, then what was found. */
export function failureReport(mode, results) {
  const failed = results.filter((result) => !result.ok);
  const found = results.filter((result) => result.ok);
  const lines = [
    `npm ${mode} cannot run: ${failed.length} prerequisite${failed.length === 1 ? ' is' : 's are'} missing.`,
  ];
  for (const result of failed) {
    lines.push(`- ${result.name}: ${result.problem}`);
    const [first, ...rest] = result.install.split('\n');
    lines.push(`  install: ${first}`, ...rest.map((line) => `           ${line}`));
  }
  if (found.length > 0) lines.push(`found: ${found.map((result) => result.found).join(', ')}`);
  return lines.join('\n');
}

export const MODES = ['start', 'test'];

/** Parses `start|test [--quiet]`; undefined when the arguments are wrong. */
export function parseArgs(argv) {
  const quiet = argv.includes('--quiet');
  const rest = argv.filter((arg) => arg !== '--quiet');
  return rest.length === 1 && MODES.includes(rest[0]) ? { mode: rest[0], quiet } : undefined;
}

async function main(argv) {
  const args = parseArgs(argv);
  if (!args) {
    console.error('usage: node scripts/ensure-ready.mjs start|test [--quiet]');
    return 2;
  }
  const log = (message) => console.error(message);
  const env = process.env;

  const reason = installReason({
    nodeModules: existsSync(join(ROOT, 'node_modules')),
    marker: mtime(join(ROOT, 'node_modules', '.package-lock.json')),
    lock: mtime(join(ROOT, 'package-lock.json')),
  });
  if (reason) {
    log(`Running npm ci: ${reason}.`);
    const code = await runInherited(npmCommand(['ci'], env), ROOT);
    if (code !== 0) {
      log(`npm ci failed (exit ${code}); npm ${args.mode} cannot run without its dependencies.`);
      return code;
    }
  }

  // Terraform's and Python's probes are child processes started first: they run while the others block.
  const terraform = checkTerraform(env);
  const moto = checkMoto(env);
  const provider = checkProvider(env);
  const node22 = checkNode22(env, log);
  const results = await Promise.all([terraform, provider, moto, node22]);
  for (const result of results) if (result.ok && result.did) log(result.did);
  if (results.some((result) => !result.ok)) {
    log(failureReport(args.mode, results));
    return 1;
  }
  if (!args.quiet) log(summaryLine(results));
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
