import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDirLock } from '../../scripts/lib/dir-lock';
import {
  MAX_SUMMARY_CHARS,
  skippedSummary,
  summarizePlan,
  unappliedDependencyReason,
} from '../../scripts/lib/plan-summary';
import { CommandFailedError } from '../../scripts/lib/process';
import {
  downloadedMirrorPath,
  ensureProviderMirror,
  findProviderMirror,
  providerPath,
  terraformPlatform,
  type TerraformRunner,
} from '../../scripts/lib/provider-mirror';
import { prepareTerraform, stateLockHint, terraform } from '../../scripts/lib/terraform';
import {
  downloadCliConfig,
  readUserCliConfigs,
  stackCliConfig,
} from '../../scripts/lib/terraform-cli-config';

const AWS = 'registry.terraform.io/hashicorp/aws';
const temporary = (label: string) => mkdtempSync(join(tmpdir(), `estate-tf-${label}-`));

/** A directory laid out like an unpacked mirror holding hashicorp/aws 5.100.0 for this platform. */
function fakeMirror(): string {
  const mirror = temporary('mirror');
  mkdirSync(providerPath(mirror), { recursive: true });
  writeFileSync(join(providerPath(mirror), 'terraform-provider-aws_v5.100.0_x5'), '');
  return mirror;
}

/** What setup-terraform writes to ~/.terraformrc, with a comment and a token holding braces. */
const SETUP_TERRAFORM_RC = `# written by setup-terraform
plugin_cache_dir = "/home/runner/.terraform.d/plugin-cache"
credentials "app.terraform.io" {
  token = "abc.atlasv1.}{x" # a "quoted" } in a comment
}
disable_checkpoint = true
`;

const OFFLINE_INIT_STDERR = `
Error: Failed to query available provider packages

Could not retrieve the list of available versions for provider hashicorp/aws:
could not connect to registry.terraform.io: failed to request discovery
document: Get "https://registry.terraform.io/.well-known/terraform.json":
dial tcp: lookup registry.terraform.io on 10.255.255.53:53: no such host

To see which modules are currently depending on hashicorp/aws and what
versions are specified, run the following command:
    terraform providers
`;

describe('findProviderMirror', () => {
  it('names the path when ESTATE_TF_PROVIDER_MIRROR lacks the provider', () => {
    const empty = temporary('empty');
    expect(() => findProviderMirror({ ESTATE_TF_PROVIDER_MIRROR: empty })).toThrow(
      `ESTATE_TF_PROVIDER_MIRROR=${empty} holds no hashicorp/aws 5.100.0 for ${terraformPlatform()}: ` +
        `expected the directory ${join(empty, AWS, '5.100.0', terraformPlatform())}`,
    );
    expect(() => prepareTerraform({ ESTATE_TF_PROVIDER_MIRROR: '/nonexistent/mirror' })).toThrow(
      'ESTATE_TF_PROVIDER_MIRROR=/nonexistent/mirror holds no hashicorp/aws 5.100.0',
    );
  });

  it('takes ESTATE_TF_PROVIDER_MIRROR first, then the first candidate holding the provider, else none', () => {
    const configured = fakeMirror();
    const found = fakeMirror();
    expect(findProviderMirror({ ESTATE_TF_PROVIDER_MIRROR: configured }, [found])).toBe(configured);
    expect(findProviderMirror({}, [temporary('other'), found])).toBe(found);
    expect(findProviderMirror({}, [temporary('other')])).toBeUndefined();
  });

  it('does not take a mirror holding the provider for another platform only', () => {
    const mirror = temporary('elsewhere');
    mkdirSync(providerPath(mirror, 'plan9_mips'), { recursive: true });
    expect(findProviderMirror({}, [mirror], 'linux_amd64')).toBeUndefined();
  });
});

describe('terraformPlatform', () => {
  it("uses Terraform's names for operating systems and CPUs", () => {
    expect(terraformPlatform('linux', 'x64')).toBe('linux_amd64');
    expect(terraformPlatform('darwin', 'arm64')).toBe('darwin_arm64');
    expect(terraformPlatform('win32', 'ia32')).toBe('windows_386');
  });
});

describe('stackCliConfig', () => {
  it('installs hashicorp/aws from the mirror and every other provider from its registry', () => {
    expect(stackCliConfig('/opt/tf-plugins', [])).toBe(
      [
        "# Written by scripts/lib/terraform-cli-config.ts: the estate's Terraform CLI configuration. Do not edit.",
        '',
        'provider_installation {',
        '  filesystem_mirror {',
        '    path    = "/opt/tf-plugins"',
        `    include = ["${AWS}"]`,
        '  }',
        '  direct {',
        `    exclude = ["${AWS}"]`,
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it("carries the user's credentials block verbatim, braces in its token and comment included, and nothing else", () => {
    const config = stackCliConfig('/m', [{ path: '/home/runner/.terraformrc', text: SETUP_TERRAFORM_RC }]);
    expect(config).toContain(
      'credentials "app.terraform.io" {\n  token = "abc.atlasv1.}{x" # a "quoted" } in a comment\n}',
    );
    expect(config).not.toContain('plugin_cache_dir');
    expect(config).not.toContain('disable_checkpoint');
    expect(config.match(/provider_installation/g)).toHaveLength(1);
  });

  it('carries credentials helpers and host blocks, and leaves out the user provider installation', () => {
    const text = `
host "tfe.example.com" {
  services = {
    "tfe.v2" = "https://tfe.example.com/api/v2/"
  }
}
credentials_helper "vault" {
  args = ["--mount", "tf"]
}
provider_installation {
  network_mirror { url = "https://mirror.example.com/" }
}
/* credentials "commented.example.com" { token = "no" } */
`;
    const config = stackCliConfig('/m', [{ path: '/u/rc', text }]);
    expect(config).toContain('host "tfe.example.com" {\n  services = {\n    "tfe.v2" =');
    expect(config).toContain('credentials_helper "vault" {\n  args = ["--mount", "tf"]\n}');
    expect(config).not.toContain('network_mirror');
    expect(config).not.toContain('commented.example.com" {\n');
  });

  it('carries the token `terraform login` wrote to credentials.tfrc.json, written as HCL', () => {
    const json = JSON.stringify({ credentials: { 'app.terraform.io': { token: 'from-login' } } });
    const config = stackCliConfig('/m', [{ path: '/u/.terraform.d/credentials.tfrc.json', text: json }]);
    expect(config).toContain('credentials "app.terraform.io" {\n  token = "from-login"\n}');
  });

  it('lets a later file win for the same host, as Terraform does, and keeps one credentials helper', () => {
    const config = stackCliConfig('/m', [
      {
        path: '/u/.terraformrc',
        text: 'credentials "App.Terraform.io" { token = "old" }\ncredentials_helper "a" {}',
      },
      {
        path: '/u/.terraform.d/x.tfrc',
        text: 'credentials "app.terraform.io" { token = "new" }\ncredentials_helper "b" {}',
      },
    ]);
    expect(config).toContain('token = "new"');
    expect(config).not.toContain('token = "old"');
    expect(config).toContain('credentials_helper "a"');
    expect(config).not.toContain('credentials_helper "b"');
  });
});

describe('downloadCliConfig', () => {
  it("uses Terraform's default installation (the registry) and carries the user's credentials", () => {
    const config = downloadCliConfig([{ path: '/home/runner/.terraformrc', text: SETUP_TERRAFORM_RC }]);
    expect(config).toContain('credentials "app.terraform.io" {');
    expect(config).not.toContain('provider_installation');
  });

  it("keeps the user's own provider installation, e.g. a network mirror", () => {
    const text = 'provider_installation {\n  network_mirror { url = "https://mirror.example.com/" }\n}\n';
    expect(downloadCliConfig([{ path: '/u/rc', text }])).toContain(text.trim());
  });

  it("does not take the project's own configuration, inherited through TF_CLI_CONFIG_FILE, for the user's", () => {
    const inherited = stackCliConfig('/m', [{ path: '/u/rc', text: SETUP_TERRAFORM_RC }]);
    const config = downloadCliConfig([{ path: '/repo/.build/terraform/terraformrc-1', text: inherited }]);
    expect(config).toContain('credentials "app.terraform.io" {');
    expect(config).not.toContain('provider_installation');
    // One written before scripts/lib/terraform.ts was split, too.
    const older = inherited.replace('scripts/lib/terraform-cli-config.ts', 'scripts/lib/terraform.ts');
    expect(downloadCliConfig([{ path: '/r/terraformrc-0', text: older }])).not.toContain(
      'provider_installation',
    );
  });
});

describe('readUserCliConfigs', () => {
  it('reads only the file TF_CLI_CONFIG_FILE names when it is set (nothing when it does not exist)', () => {
    const home = temporary('home');
    writeFileSync(join(home, '.terraformrc'), 'credentials "a.example.com" { token = "x" }');
    const own = join(temporary('own'), 'rc');
    writeFileSync(own, 'credentials "b.example.com" { token = "y" }');
    expect(readUserCliConfigs({ TF_CLI_CONFIG_FILE: own }, home).map((c) => c.path)).toEqual([own]);
    expect(readUserCliConfigs({ TF_CLI_CONFIG_FILE: join(home, 'missing') }, home)).toEqual([]);
  });

  it('else reads ~/.terraformrc and the *.tfrc and *.tfrc.json files of ~/.terraform.d', () => {
    const home = temporary('home');
    writeFileSync(join(home, '.terraformrc'), '');
    mkdirSync(join(home, '.terraform.d', 'plugins'), { recursive: true });
    writeFileSync(join(home, '.terraform.d', 'credentials.tfrc.json'), '{}');
    writeFileSync(join(home, '.terraform.d', 'other.tfrc'), '');
    writeFileSync(join(home, '.terraform.d', 'notes.txt'), '');
    expect(readUserCliConfigs({}, home).map((c) => c.path)).toEqual([
      join(home, '.terraformrc'),
      join(home, '.terraform.d', 'credentials.tfrc.json'),
      join(home, '.terraform.d', 'other.tfrc'),
    ]);
  });
});

/** A stand-in for `terraform init` with a plugin cache: puts the provider where the cache would hold it. */
function installingRunner(
  calls: Array<{ args: readonly string[]; env: NodeJS.ProcessEnv; cliConfig: string }>,
): TerraformRunner {
  return async (args, _cwd, env) => {
    calls.push({ args, env, cliConfig: readFileSync(env.TF_CLI_CONFIG_FILE ?? '', 'utf8') });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const cache = env.TF_PLUGIN_CACHE_DIR ?? '';
    mkdirSync(providerPath(cache), { recursive: true });
    writeFileSync(join(providerPath(cache), 'terraform-provider-aws_v5.100.0_x5'), '');
    return { code: 0, stdout: 'Terraform has been successfully initialized!', stderr: '' };
  };
}

describe('prepareTerraform', () => {
  const userRc = () => {
    const path = join(temporary('user'), '.terraformrc');
    writeFileSync(path, SETUP_TERRAFORM_RC);
    return path;
  };

  it('with a mirror found, points every stack at it, carries the credentials and downloads nothing', async () => {
    const mirror = fakeMirror();
    const calls: Parameters<typeof installingRunner>[0] = [];
    const cli = prepareTerraform(
      { TF_CLI_CONFIG_FILE: userRc(), TF_PLUGIN_CACHE_DIR: '/shared/cache', TF_TOKEN_app_terraform_io: 't' },
      { dir: temporary('build'), mirrorCandidates: [mirror], runTerraform: installingRunner(calls) },
    );
    expect(cli.mirror).toBe(mirror);
    expect(cli.ready).toBeUndefined();
    const config = readFileSync(cli.env.TF_CLI_CONFIG_FILE ?? '', 'utf8');
    expect(config).toBe(stackCliConfig(mirror, [{ path: 'rc', text: SETUP_TERRAFORM_RC }]));
    expect(cli.env.TF_TOKEN_app_terraform_io).toBe('t');
    expect(cli.env.TF_PLUGIN_CACHE_DIR).toBeUndefined();
    expect(calls).toEqual([]);
  });

  it('with none, downloads the provider once for concurrent callers and points every stack at the download', async () => {
    const dir = temporary('build');
    const calls: Parameters<typeof installingRunner>[0] = [];
    const options = { dir, mirrorCandidates: [], runTerraform: installingRunner(calls), lock: { pollMs: 5 } };
    const env = { TF_CLI_CONFIG_FILE: userRc() };
    // Two CLIs stand for two jest workers: they share nothing but the lock directory.
    const workers = [prepareTerraform(env, options), prepareTerraform(env, options)];
    await Promise.all(workers.flatMap((cli) => [cli.ready?.(), cli.ready?.()]));

    const mirror = downloadedMirrorPath(dir);
    expect(workers.map((cli) => cli.mirror)).toEqual([mirror, mirror]);
    expect(existsSync(providerPath(mirror))).toBe(true);
    expect(readFileSync(workers[0]?.env.TF_CLI_CONFIG_FILE ?? '', 'utf8')).toContain(
      `filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}`,
    );
    expect(calls).toHaveLength(1);
    const [download] = calls;
    expect(download?.args).toEqual(['init', '-input=false', '-backend=false', '-no-color']);
    const downloadConfig = download?.cliConfig ?? '';
    expect(download?.env.TF_PLUGIN_CACHE_DIR).toMatch(/mirror-aws-5.100.0-.*\.partial-/);
    expect(downloadConfig).toContain('credentials "app.terraform.io" {');
    expect(downloadConfig).not.toContain('provider_installation');

    // A later run finds the download and does not download again.
    await prepareTerraform(env, options).ready?.();
    expect(calls).toHaveLength(1);
  });

  it('says plainly when the download fails for want of a network', async () => {
    const offline: TerraformRunner = async () => {
      throw new CommandFailedError(
        'terraform init exited 1',
        { code: 1, signal: null, stdout: '', stderr: OFFLINE_INIT_STDERR },
        false,
      );
    };
    const cli = prepareTerraform(
      {},
      { dir: temporary('build'), mirrorCandidates: [], runTerraform: offline },
    );
    await expect(cli.ready?.()).rejects.toThrow(
      'could not download hashicorp/aws 5.100.0 from registry.terraform.io (no network?): ' +
        'Error: Failed to query available provider packages: Could not retrieve the list of available ' +
        'versions for provider hashicorp/aws: could not connect to registry.terraform.io',
    );
    await expect(cli.ready?.()).rejects.toThrow('set ESTATE_TF_PROVIDER_MIRROR to a directory holding');
  });

  it('does not blame the network for another download failure, nor leave a half download behind', async () => {
    const dir = temporary('build');
    const refused: TerraformRunner = async () => {
      throw new CommandFailedError(
        'terraform init exited 1',
        {
          code: 1,
          signal: null,
          stdout: '',
          stderr: 'Error: Failed to install provider\n\nchecksum mismatch\n',
        },
        false,
      );
    };
    const cli = prepareTerraform({}, { dir, mirrorCandidates: [], runTerraform: refused });
    const error = await cli.ready?.().catch((e: unknown) => e);
    expect(String(error)).toContain(
      'from registry.terraform.io: Error: Failed to install provider: checksum mismatch',
    );
    expect(String(error)).not.toContain('no network');
    expect(existsSync(downloadedMirrorPath(dir))).toBe(false);
  });
});

describe('withDirLock', () => {
  /** A lock dir as withDirLock leaves it, its owner file last touched `ageMs` ago. */
  const held = (owner: { pid: number; host: string; since: number }, ageMs = 0) => {
    const lock = join(temporary('lock'), 'mirror.lock');
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner.json'), JSON.stringify(owner));
    const touched = new Date(Date.now() - ageMs);
    utimesSync(join(lock, 'owner.json'), touched, touched);
    return lock;
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('breaks a lock whose holder on this host is gone once it misses its heartbeats, saying so', async () => {
    const lock = held({ pid: 999_999, host: hostname(), since: Date.now() }, 25_000);
    const said: string[] = [];
    const ran = await withDirLock(lock, async () => 'ran', {
      isAlive: () => false,
      log: (m) => said.push(m),
    });
    expect(ran).toBe('ran');
    expect(said).toEqual([
      `breaking the lock ${lock}: its holder, process 999999, is gone and has not renewed it for 25 s`,
    ]);
    expect(existsSync(lock)).toBe(false);
  });

  it('breaks a lock not renewed for the stale limit even when its PID is alive (reused after a restart)', async () => {
    // This very process holds the PID: a lock from before a container restart looks alive by PID forever.
    const lock = held({ pid: process.pid, host: hostname(), since: Date.now() - 3_600_000 }, 5 * 60_000);
    const said: string[] = [];
    await expect(
      withDirLock(lock, async () => 'ran', { waitMs: 2_000, pollMs: 5, log: (m) => said.push(m) }),
    ).resolves.toBe('ran');
    expect(said).toEqual([
      `breaking the lock ${lock}: its holder, process ${process.pid} on ${hostname()}, has not renewed it for 5 min`,
    ]);
  });

  it('breaks a lock from another host once not renewed for the stale limit, by the injected clock', async () => {
    const lock = held({ pid: 1, host: 'builder', since: Date.now() });
    const said: string[] = [];
    await expect(
      withDirLock(lock, async () => 'ran', {
        staleMs: 30_000,
        now: () => Date.now() + 60_000,
        log: (m) => said.push(m),
      }),
    ).resolves.toBe('ran');
    expect(said).toEqual([
      `breaking the lock ${lock}: its holder, process 1 on builder, has not renewed it for 60 s`,
    ]);
  });

  it('waits for a live holder, and gives up naming it', async () => {
    const lock = held({ pid: 4242, host: 'builder', since: Date.now() });
    await expect(withDirLock(lock, async () => 'ran', { waitMs: 50, pollMs: 5 })).rejects.toThrow(
      `for ${lock} (held by process 4242 on builder); remove it if no download is running`,
    );
  });

  it('keeps a lock alive by its heartbeat for as long as its holder runs, however long', async () => {
    const lock = join(temporary('lock'), 'mirror.lock');
    const options = { staleMs: 300, heartbeatMs: 20, pollMs: 10 };
    const events: string[] = [];
    const holder = withDirLock(
      lock,
      async () => {
        events.push('first in');
        await sleep(1_200); // four times the stale limit
        events.push('first out');
      },
      options,
    );
    await sleep(30);
    const waiter = withDirLock(lock, async () => events.push('second in'), {
      ...options,
      log: (m) => events.push(m),
    });
    await Promise.all([holder, waiter]);
    expect(events).toEqual(['first in', 'first out', 'second in']);
  });

  it('puts back a lock another breaker took meanwhile instead of entering too', async () => {
    // A lock judged stale (its holder on this host is gone) ...
    const lock = held({ pid: 999_999, host: hostname(), since: Date.now() }, 25_000);
    const winner = JSON.stringify({ pid: 4242, host: 'builder', since: Date.now(), nonce: 'w' });
    let raced = false;
    const entered: string[] = [];
    const attempt = withDirLock(lock, async () => entered.push('second breaker'), {
      waitMs: 300,
      pollMs: 10,
      log: () => undefined,
      // ... is broken by another process between this one's judgement and its move, which then holds it.
      isAlive: () => {
        if (!raced) {
          raced = true;
          renameSync(lock, `${lock}.gone`);
          const next = `${lock}.next`;
          mkdirSync(next);
          writeFileSync(join(next, 'owner.json'), winner);
          renameSync(next, lock);
        }
        return false;
      },
    });
    await expect(attempt).rejects.toThrow(`(held by process 4242 on builder)`);
    expect(entered).toEqual([]);
    expect(readFileSync(join(lock, 'owner.json'), 'utf8')).toBe(winner);
  });
});

describe('ensureProviderMirror', () => {
  const download = (mirror: string, extra: Partial<Parameters<typeof ensureProviderMirror>[0]> = {}) =>
    ensureProviderMirror({
      mirror,
      env: {},
      cliConfig: '',
      runTerraform: installingRunner([]),
      lock: { pollMs: 5 },
      log: () => undefined,
      ...extra,
    });

  it('uses the mirror another download renamed into place first, and never removes it', async () => {
    const mirror = join(temporary('build'), 'mirror');
    const rename = (from: string, to: string) => {
      if (to === mirror && !existsSync(mirror)) {
        // Another download (one that broke this lock as stale) finishes just before this one's rename.
        mkdirSync(providerPath(mirror), { recursive: true });
        writeFileSync(join(mirror, 'theirs'), '');
      }
      renameSync(from, to);
    };
    await expect(download(mirror, { rename })).resolves.toBe(mirror);
    expect(existsSync(join(mirror, 'theirs'))).toBe(true);
    expect(existsSync(providerPath(mirror))).toBe(true);
  });

  it('moves aside a mirror directory without the provider, and leaves no partial download', async () => {
    const build = temporary('build');
    const mirror = join(build, 'mirror');
    mkdirSync(join(mirror, 'half-copied'), { recursive: true });
    await download(mirror);
    expect(existsSync(providerPath(mirror))).toBe(true);
    expect(existsSync(join(mirror, 'half-copied'))).toBe(false);
    expect(readdirSync(build).filter((name) => name.includes('partial'))).toEqual([]);
  });

  it('removes partial downloads abandoned more than an hour ago when it takes the lock, and no others', async () => {
    const build = temporary('build');
    const mirror = join(build, 'mirror');
    const abandoned = join(build, 'mirror.partial-abc123');
    const running = join(build, 'mirror.partial-def456');
    const unrelated = join(build, 'other.partial-ghi789');
    [abandoned, running, unrelated].forEach((dir) => mkdirSync(join(dir, 'mirror'), { recursive: true }));
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(abandoned, twoHoursAgo, twoHoursAgo);
    utimesSync(unrelated, twoHoursAgo, twoHoursAgo);
    await download(mirror);
    expect([abandoned, running, unrelated].map(existsSync)).toEqual([false, true, true]);
  });
});

describe('terraform', () => {
  it('waits for the mirror, then runs without colours, the flag before any plan file or output name', async () => {
    const dir = temporary('bin');
    const binary = join(dir, 'terraform');
    writeFileSync(binary, '#!/bin/sh\necho "$@"\n');
    chmodSync(binary, 0o755);
    const order: string[] = [];
    const cli = {
      binary,
      mirror: '/m',
      env: {},
      ready: async () => {
        order.push('ready');
      },
    };
    const said = async (args: string[]) => {
      const { stdout } = await terraform(cli, dir, args);
      order.push('ran');
      return stdout.trim();
    };
    expect(await said(['apply', '-input=false', 'rollout.tfplan'])).toBe(
      'apply -no-color -input=false rollout.tfplan',
    );
    expect(await said(['output', '-json', 'name_servers'])).toBe('output -no-color -json name_servers');
    expect(await said(['state', 'list'])).toBe('state list -no-color');
    expect(order).toEqual(['ready', 'ran', 'ready', 'ran', 'ready', 'ran']);
  });

  it('says after a SIGKILL that the state lock is probably held, and how to release it from the stack', async () => {
    const dir = temporary('stack');
    const binary = join(dir, 'terraform');
    // Ignores SIGINT, like a Terraform stuck in a provider call.
    writeFileSync(binary, "#!/bin/bash\ntrap '' INT\necho 'Acquiring state lock.'\nsleep 30\n");
    chmodSync(binary, 0o755);
    const cli = { binary, mirror: '/m', env: {} };
    const error = await terraform(cli, dir, ['apply', '-input=false', 'rollout.tfplan'], {
      timeoutMs: 300,
      graceMs: 200,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailedError);
    const [firstLine] = (error as Error).message.split('\n');
    expect(firstLine).toContain('ended by SIGKILL; the state lock is probably still held');
    expect(firstLine).toContain(`release it from ${dir} with \`terraform force-unlock <lock ID>\``);
    expect((error as CommandFailedError).killed).toBe(true);
  }, 15_000);

  it('gives that hint only for commands that take the lock', () => {
    expect(stateLockHint('/s', ['plan', '-input=false'])).toContain('force-unlock');
    expect(stateLockHint('/s', ['state', 'rm', 'x'])).toContain('force-unlock');
    expect(stateLockHint('/s', ['plan', '-lock=false'])).toBeUndefined();
    expect(stateLockHint('/s', ['state', 'list'])).toBeUndefined();
    expect(stateLockHint('/s', ['output', '-json'])).toBeUndefined();
  });
});

const CREDENTIALS_ERROR = `
Planning failed. Terraform encountered an error while generating this plan.

╷
│ Error: No valid credential sources found
│ 
│   with provider["registry.terraform.io/hashicorp/aws"],
│   on cdk.tf.json line 12, in provider.aws[0]:
│   12:       },
│ 
│ Please see https://registry.terraform.io/providers/hashicorp/aws
│ for more information about providing credentials.
│ 
│ Error: failed to refresh cached credentials, no EC2 IMDS role found
╵
`;

describe('summarizePlan', () => {
  it('reads exit code 0 as no changes and 2 as the plan line', () => {
    expect(
      summarizePlan({ exitCode: 0, output: 'No changes. Your infrastructure matches the configuration.' }),
    ).toBe('No changes.');
    expect(
      summarizePlan({
        exitCode: 2,
        output: '  # aws_s3_bucket.b will be created\n\nPlan: 2 to add, 1 to change, 0 to destroy.\n',
      }),
    ).toBe('Plan: 2 to add, 1 to change, 0 to destroy.');
    expect(
      summarizePlan({ exitCode: 2, output: 'Plan: 1 to import, 0 to add, 0 to change, 0 to destroy.' }),
    ).toBe('Plan: 1 to import, 0 to add, 0 to change, 0 to destroy.');
    expect(
      summarizePlan({ exitCode: 2, output: 'Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.' }),
    ).toBe('Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.');
    expect(
      summarizePlan({ exitCode: 2, output: 'Changes to Outputs:\n  + zone_id = (known after apply)\n' }),
    ).toBe('Only output values change.');
  });

  it('reads the last plan line at the start of a line, not one a multi-line value in the diff forges', () => {
    const forged = [
      'Terraform will perform the following actions:',
      '',
      '  # aws_ssm_parameter.note will be created',
      '  + resource "aws_ssm_parameter" "note" {',
      '      + value = <<-EOT',
      '            Plan: 0 to add, 0 to change, 0 to destroy.',
      '            No changes. Your infrastructure matches the configuration.',
      '        EOT',
      '    }',
      '',
      'Plan: 1 to add, 0 to change, 3 to destroy.',
      '',
      'Changes to Outputs:',
      '  + note = <<-EOT',
      '        Plan: 0 to add, 0 to change, 0 to destroy.',
      '    EOT',
    ].join('\n');
    expect(summarizePlan({ exitCode: 2, output: forged })).toBe('Plan: 1 to add, 0 to change, 3 to destroy.');
    // Only indented ones: no plan line, whatever the values say.
    const onlyForged = '  + value = <<-EOT\n      Plan: 0 to add, 0 to change, 0 to destroy.\n  EOT\n';
    expect(summarizePlan({ exitCode: 2, output: onlyForged })).toBe(
      'Changes planned (Terraform printed no "Plan:" line).',
    );
    expect(summarizePlan({ exitCode: 2, output: '  + x = <<-EOT\n      Changes to Outputs:\n  EOT\n' })).toBe(
      'Changes planned (Terraform printed no "Plan:" line).',
    );
  });

  it('never reads a failed plan as success, even when it printed a plan line', () => {
    const output = `Plan: 3 to add, 0 to change, 0 to destroy.\n${CREDENTIALS_ERROR}`;
    expect(summarizePlan({ exitCode: 1, output })).toBe(
      'failed: exit code 1: Error: No valid credential sources found: Please see ' +
        'https://registry.terraform.io/providers/hashicorp/aws for more information about providing credentials. / ' +
        'Error: failed to refresh cached credentials, no EC2 IMDS role found',
    );
    expect(summarizePlan({ exitCode: undefined, output: 'Plan: 1 to add, 0 to change, 0 to destroy.' })).toBe(
      'failed: ended by a signal: Plan: 1 to add, 0 to change, 0 to destroy.',
    );
    expect(
      summarizePlan({
        exitCode: 0,
        output: 'No changes.',
        stoppedBecause: 'timed out after 30 min, stopped by SIGINT',
      }),
    ).toBe('failed: timed out after 30 min, stopped by SIGINT; No changes.');
  });

  it('keeps a failure to one bounded line, the last lines standing in when Terraform printed no diagnostic', () => {
    const long = summarizePlan({ exitCode: 1, output: `Error: ${'x'.repeat(2_000)}\n\nmore\n` });
    expect(long).toMatch(/^failed: exit code 1: Error: x+\.\.\.$/);
    expect(long.length).toBeLessThanOrEqual('failed: '.length + MAX_SUMMARY_CHARS);
    expect(summarizePlan({ exitCode: 1, output: 'one\ntwo\nthree\nfour\n' })).toBe(
      'failed: exit code 1: two / three / four',
    );
    expect(skippedSummary('a\nb')).toBe('skipped: a b');
  });

  it('says a diagnostic Terraform repeats per resource once, with how often', () => {
    const halted = '\nError: execution halted\n\n'.repeat(3);
    expect(summarizePlan({ exitCode: 1, output: `${halted}Error: reading table: canceled\n` })).toBe(
      'failed: exit code 1: Error: execution halted (3 times) / Error: reading table: canceled',
    );
  });
});

describe('unappliedDependencyReason', () => {
  const regional = { name: 'dev-eu-central-1', config: { data: { aws_route53_zone: {} } } };

  it('skips a stack that looks things up when a stack it deploys after has no state', () => {
    expect(unappliedDependencyReason(regional, [{ name: 'dev-global', stateList: '\n' }])).toBe(
      'dev-global has not been applied yet; dev-eu-central-1 looks up what it creates',
    );
    expect(
      unappliedDependencyReason(regional, [
        { name: 'a', stateList: '' },
        { name: 'b', stateList: '' },
      ]),
    ).toBe('a and b have not been applied yet; dev-eu-central-1 looks up what they create');
  });

  it('plans a stack whose dependencies have state, or that looks nothing up', () => {
    expect(
      unappliedDependencyReason(regional, [{ name: 'dev-global', stateList: 'aws_route53_zone.Zone\n' }]),
    ).toBeUndefined();
    expect(
      unappliedDependencyReason({ name: 'dev-global', config: {} }, [
        { name: 'shared-eu-central-1', stateList: '' },
      ]),
    ).toBeUndefined();
  });
});
