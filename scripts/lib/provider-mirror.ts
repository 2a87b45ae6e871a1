// Where hashicorp/aws comes from: a filesystem mirror found on the machine, or one downloaded once, safe for
// concurrent callers (a lock directory, and an atomic rename of a complete download).
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { withDirLock, type LockOptions } from './dir-lock';
import { failureText } from './plan-summary';
import { CommandFailedError, formatDuration, type RunResult } from './process';

/** The AWS provider version @cdktf/provider-aws 20.1.0 was generated for. */
export const AWS_PROVIDER_VERSION = '5.100.0';
export const AWS_PROVIDER = 'registry.terraform.io/hashicorp/aws';

/** Terraform's name for a platform, e.g. `linux_amd64` or `darwin_arm64`. */
export function terraformPlatform(platform: string = process.platform, arch: string = process.arch): string {
  const os = platform === 'win32' ? 'windows' : platform;
  const cpu = ({ x64: 'amd64', ia32: '386' } as Record<string, string>)[arch] ?? arch;
  return `${os}_${cpu}`;
}

/** The directory an unpacked mirror keeps hashicorp/aws 5.100.0 for a platform in. */
export const providerPath = (mirror: string, platform: string = terraformPlatform()): string =>
  join(mirror, AWS_PROVIDER, AWS_PROVIDER_VERSION, platform);

const holdsProvider = (dir: string, platform: string): boolean => existsSync(providerPath(dir, platform));

/** Where Terraform looks for local mirrors by default, plus where these machines keep one (searched 2 deep). */
const MIRROR_CANDIDATES: readonly string[] = [
  join(homedir(), '.terraform.d', 'plugins'),
  join(homedir(), '.local', 'share', 'terraform', 'plugins'),
  '/usr/local/share/terraform/plugins',
  '/usr/share/terraform/plugins',
  '/opt',
];

/** Looks for a mirror holding the provider at most `depth` levels below a candidate directory. */
function searchMirror(candidate: string, depth: number, platform: string): string | undefined {
  if (!existsSync(candidate)) return undefined;
  if (holdsProvider(candidate, platform)) return candidate;
  if (depth === 0) return undefined;
  let entries: string[];
  try {
    entries = readdirSync(candidate, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    const found = searchMirror(join(candidate, entry), depth - 1, platform);
    if (found) return found;
  }
  return undefined;
}

/**
 * The filesystem mirror holding hashicorp/aws 5.100.0 for this platform: ESTATE_TF_PROVIDER_MIRROR if set (an
 * error, naming the path, when it lacks the provider), else the first of the candidates that holds it, else
 * undefined (the provider is then downloaded once, see ensureProviderMirror).
 */
export function findProviderMirror(
  env: NodeJS.ProcessEnv = process.env,
  candidates: readonly string[] = MIRROR_CANDIDATES,
  platform: string = terraformPlatform(),
): string | undefined {
  const configured = env.ESTATE_TF_PROVIDER_MIRROR;
  if (configured) {
    if (!holdsProvider(configured, platform)) {
      throw new Error(
        `ESTATE_TF_PROVIDER_MIRROR=${configured} holds no hashicorp/aws ${AWS_PROVIDER_VERSION} for ${platform}: ` +
          `expected the directory ${providerPath(configured, platform)}`,
      );
    }
    return configured;
  }
  for (const candidate of candidates) {
    const found = searchMirror(candidate, candidate === '/opt' ? 2 : 0, platform);
    if (found) return found;
  }
  return undefined;
}

/** Where a downloaded hashicorp/aws goes, below a build directory. */
export const downloadedMirrorPath = (dir: string, platform: string = terraformPlatform()): string =>
  join(dir, `mirror-aws-${AWS_PROVIDER_VERSION}-${platform}`);

/** Runs Terraform for the download: `terraform <args>` in `cwd` with `env`. */
export type TerraformRunner = (
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
) => Promise<RunResult>;

export interface ProviderDownload {
  /** The mirror directory to fill; it appears whole (renamed into place) or not at all. */
  readonly mirror: string;
  /** Environment of the download; TF_CLI_CONFIG_FILE and TF_PLUGIN_CACHE_DIR are set for it. */
  readonly env: NodeJS.ProcessEnv;
  /** The CLI configuration the download runs with (see downloadCliConfig). */
  readonly cliConfig: string;
  readonly runTerraform: TerraformRunner;
  readonly platform?: string;
  readonly lock?: LockOptions;
  /** Renames a directory (the download into place). Default: fs.renameSync. */
  readonly rename?: (from: string, to: string) => void;
  /** The clock leftovers are aged by. Default: Date.now. */
  readonly now?: () => number;
  /** Told what is removed. Default: stderr. */
  readonly log?: (message: string) => void;
}

/** How old an abandoned download (`<mirror>.partial-*`) must be before the next download removes it. */
const LEFTOVER_MS = 60 * 60_000;

/** Whether Terraform's message says it could not reach the network. */
const NETWORK_FAILURE =
  /could not connect|no such host|dial tcp|i\/o timeout|connection refused|network is unreachable|TLS handshake timeout|name resolution|context deadline exceeded|Client\.Timeout/i;

/** The error a failed download reports: plainly "no network?" when it looks like it. */
function downloadError(output: string): Error {
  const message = failureText(output, 1_000);
  const hint = NETWORK_FAILURE.test(output) ? ' (no network?)' : '';
  return new Error(
    `could not download hashicorp/aws ${AWS_PROVIDER_VERSION} from registry.terraform.io${hint}: ${message}\n` +
      'No filesystem mirror of it was found either: set ESTATE_TF_PROVIDER_MIRROR to a directory holding ' +
      `${AWS_PROVIDER}/${AWS_PROVIDER_VERSION}/${terraformPlatform()}, or run again with network access.`,
  );
}

/**
 * Removes what interrupted downloads left beside the mirror (`<mirror>.partial-*`) once older than `maxAgeMs`:
 * a download holds the lock and gives up after 30 minutes, so a directory an hour old is nobody's.
 */
function removeLeftovers(mirror: string, now: number, log: (message: string) => void): void {
  const dir = dirname(mirror);
  const prefix = `${basename(mirror)}.partial-`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      const age = now - statSync(path).mtimeMs;
      if (age > LEFTOVER_MS) {
        log(`removing ${path}, an abandoned download ${formatDuration(age)} old`);
        rmSync(path, { recursive: true, force: true });
      }
    } catch {
      // Gone meanwhile.
    }
  }
}

const errorCode = (error: unknown): unknown => (error as NodeJS.ErrnoException | null)?.code;

/**
 * Renames a complete download into place without ever removing a mirror that holds the provider: a
 * directory there without it (an interrupted copy by hand, say) is moved aside first; a rename that finds
 * the place taken (EEXIST, ENOTEMPTY) means another download won, and its copy is used.
 */
function install(
  cache: string,
  mirror: string,
  platform: string,
  rename: (from: string, to: string) => void,
) {
  if (existsSync(mirror) && !holdsProvider(mirror, platform)) {
    // Named like a partial download, so the leftover cleanup takes it should this process die here.
    const aside = `${mirror}.partial-aside-${randomBytes(4).toString('hex')}`;
    try {
      rename(mirror, aside);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    if (holdsProvider(aside, platform)) {
      // Another download finished between the check and the move: that one is put back, never removed.
      try {
        rename(aside, mirror);
        return;
      } catch {
        // A third one is in place already; the rename below finds it.
      }
    } else {
      rmSync(aside, { recursive: true, force: true });
    }
  }
  try {
    rename(cache, mirror);
  } catch (error) {
    const code = errorCode(error);
    if ((code === 'EEXIST' || code === 'ENOTEMPTY') && holdsProvider(mirror, platform)) return;
    throw error;
  }
}

/**
 * Fills `mirror` with hashicorp/aws 5.100.0 unless it holds it already: `terraform init` of a one-resource
 * configuration with a plugin cache, whose layout is an unpacked filesystem mirror's, then renamed into place.
 * Concurrent callers (jest workers, parallel inits) download once: they wait on a lock, and a download that
 * loses the race to the rename is dropped. Taking the lock removes downloads abandoned an hour ago or more.
 */
export async function ensureProviderMirror(download: ProviderDownload): Promise<string> {
  const platform = download.platform ?? terraformPlatform();
  const { mirror } = download;
  if (holdsProvider(mirror, platform)) return mirror;
  mkdirSync(dirname(mirror), { recursive: true });
  await withDirLock(
    `${mirror}.lock`,
    async () => {
      removeLeftovers(mirror, (download.now ?? Date.now)(), download.log ?? ((m) => console.error(m)));
      if (holdsProvider(mirror, platform)) return;
      const staging = mkdtempSync(`${mirror}.partial-`);
      try {
        const work = join(staging, 'work');
        const cache = join(staging, 'mirror');
        mkdirSync(work);
        mkdirSync(cache);
        const required = { aws: { source: 'hashicorp/aws', version: AWS_PROVIDER_VERSION } };
        writeFileSync(
          join(work, 'main.tf.json'),
          JSON.stringify({ terraform: { required_providers: required } }),
        );
        const cliConfig = join(staging, 'terraformrc');
        writeFileSync(cliConfig, download.cliConfig, { mode: 0o600 });
        try {
          await download.runTerraform(['init', '-input=false', '-backend=false', '-no-color'], work, {
            ...download.env,
            TF_CLI_CONFIG_FILE: cliConfig,
            TF_PLUGIN_CACHE_DIR: cache,
          });
        } catch (error) {
          const output =
            error instanceof CommandFailedError
              ? `${error.result.stderr}\n${error.result.stdout}`
              : error instanceof Error
                ? error.message
                : String(error);
          throw downloadError(output);
        }
        if (!holdsProvider(cache, platform)) {
          throw new Error(
            `terraform init reported success but left no ${providerPath(cache, platform)}; nothing was installed`,
          );
        }
        // Another download may have finished meanwhile (one that took a lock it judged stale): keep that one.
        if (holdsProvider(mirror, platform)) return;
        install(cache, mirror, platform, download.rename ?? renameSync);
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
    },
    download.lock,
  );
  return mirror;
}
