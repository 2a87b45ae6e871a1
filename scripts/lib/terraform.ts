import { randomBytes, createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import { failureText } from './plan-summary';
import { CommandFailedError, formatDuration, run, type OutputStream, type RunResult } from './process';

/** The AWS provider version @cdktf/provider-aws 20.1.0 was generated for. */
export const AWS_PROVIDER_VERSION = '5.100.0';
const PROVIDER = 'registry.terraform.io/hashicorp/aws';

// ---------------------------------------------------------------------------------------------------------
// Where the provider comes from: a filesystem mirror found on the machine, or one downloaded once.
// ---------------------------------------------------------------------------------------------------------

/** Terraform's name for a platform, e.g. `linux_amd64` or `darwin_arm64`. */
export function terraformPlatform(platform: string = process.platform, arch: string = process.arch): string {
  const os = platform === 'win32' ? 'windows' : platform;
  const cpu = ({ x64: 'amd64', ia32: '386' } as Record<string, string>)[arch] ?? arch;
  return `${os}_${cpu}`;
}

/** The directory an unpacked mirror keeps hashicorp/aws 5.100.0 for a platform in. */
export const providerPath = (mirror: string, platform: string = terraformPlatform()): string =>
  join(mirror, PROVIDER, AWS_PROVIDER_VERSION, platform);

const holdsProvider = (dir: string, platform: string): boolean => existsSync(providerPath(dir, platform));

/** Where Terraform looks for local mirrors by default, plus where these machines keep one (searched 2 deep). */
export const MIRROR_CANDIDATES: readonly string[] = [
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
 * undefined (the provider is then downloaded once, see prepareTerraform).
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

// ---------------------------------------------------------------------------------------------------------
// The project's CLI configuration: the user's credentials and host blocks, then our provider installation.
// ---------------------------------------------------------------------------------------------------------

/** A Terraform CLI configuration file of the user's, HCL or JSON (`.json`). */
export interface UserCliConfig {
  readonly path: string;
  readonly text: string;
}

const HEADER =
  "# Written by scripts/lib/terraform.ts: the estate's Terraform CLI configuration. Do not edit.";

/** Blocks carried from the user's CLI configuration into the project's: they hold or find credentials. */
const CARRIED = ['credentials', 'credentials_helper', 'host'] as const;
type BlockKind = (typeof CARRIED)[number] | 'provider_installation';

interface Block {
  readonly kind: BlockKind;
  readonly label: string;
  readonly text: string;
}

/** Skips a quoted string starting at `start` (a `"`), returning the index after its closing quote. */
function skipString(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** Skips a heredoc (`<<EOT` or `<<-EOT`) starting at `start`, returning the index after its closing marker. */
function skipHeredoc(text: string, start: number): number {
  const marker = /^<<-?([A-Za-z_][\w-]*)[^\n]*\n/.exec(text.slice(start));
  if (!marker?.[1]) return start + 2;
  const lines = text.slice(start + marker[0].length).split('\n');
  let offset = start + marker[0].length;
  for (const line of lines) {
    offset += line.length + 1;
    if (line.trim() === marker[1]) return offset;
  }
  return text.length;
}

/**
 * The top-level blocks of the given kinds in an HCL CLI configuration, verbatim: matches braces outside
 * strings, comments and heredocs, so a `}` inside a token or comment does not end a block.
 */
export function extractHclBlocks(text: string, kinds: readonly BlockKind[]): Block[] {
  const blocks: Block[] = [];
  let depth = 0;
  let open: { kind: BlockKind; start: number } | undefined;
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (c === '"') i = skipString(text, i);
    else if (c === '#' || text.startsWith('//', i)) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (text.startsWith('<<', i)) i = skipHeredoc(text, i);
    else if (c === '{' || c === '[') {
      depth++;
      i++;
    } else if (c === '}' || c === ']') {
      depth = Math.max(0, depth - 1);
      i++;
      if (depth === 0 && open && c === '}') {
        const body = text.slice(open.start, i);
        const label = /^[\w-]+\s*"((?:[^"\\]|\\.)*)"/.exec(body)?.[1] ?? '';
        blocks.push({ kind: open.kind, label, text: body });
        open = undefined;
      }
    } else if (depth === 0 && /[A-Za-z_]/.test(c)) {
      const word = /^[\w-]+/.exec(text.slice(i))?.[0] ?? c;
      // A top-level word starts a block of a wanted kind, or ends the search for one (an attribute such as
      // `disable_checkpoint = true`).
      open = (kinds as readonly string[]).includes(word) ? { kind: word as BlockKind, start: i } : undefined;
      i += word.length;
    } else i++;
  }
  return blocks;
}

/** A JSON value written as HCL (JSON strings, numbers and booleans are HCL literals as they are). */
function hclValue(value: unknown, indent: string): string {
  if (Array.isArray(value)) return `[${value.map((v) => hclValue(v, indent)).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    const inner = `${indent}  `;
    const items = Object.entries(value).map(([k, v]) => `${inner}${hclKey(k)} = ${hclValue(v, inner)}`);
    return items.length ? `{\n${items.join('\n')}\n${indent}}` : '{}';
  }
  return JSON.stringify(value);
}
const hclKey = (key: string): string => (/^[A-Za-z_][\w-]*$/.test(key) ? key : JSON.stringify(key));

/** The blocks of the given kinds in a JSON CLI configuration (`credentials.tfrc.json`), written as HCL. */
export function extractJsonBlocks(text: string, kinds: readonly BlockKind[]): Block[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null) return [];
  return kinds.flatMap((kind) => {
    const section: unknown = (parsed as Record<string, unknown>)[kind];
    if (typeof section !== 'object' || section === null || Array.isArray(section)) return [];
    return Object.entries(section).map(([label, body]) => ({
      kind,
      label,
      text: `${kind} ${JSON.stringify(label)} ${hclValue(body, '')}`,
    }));
  });
}

function blocksOf(config: UserCliConfig, wanted: readonly BlockKind[]): Block[] {
  // A configuration this file wrote (inherited through TF_CLI_CONFIG_FILE) carries the user's blocks; its
  // provider installation is the project's own, not the user's.
  const kinds = config.text.startsWith(HEADER) ? wanted.filter((k) => k !== 'provider_installation') : wanted;
  return config.path.endsWith('.json') || config.text.trimStart().startsWith('{')
    ? extractJsonBlocks(config.text, kinds)
    : extractHclBlocks(config.text, kinds);
}

/**
 * The user's credentials, credentials helper and host blocks, later files winning for the same host as
 * Terraform merges them; at most one credentials helper (Terraform allows one).
 */
function carriedBlocks(configs: readonly UserCliConfig[], kinds: readonly BlockKind[]): Block[] {
  const byKey = new Map<string, Block>();
  for (const block of configs.flatMap((config) => blocksOf(config, kinds))) {
    const key =
      block.kind === 'credentials_helper' ? block.kind : `${block.kind} ${block.label.toLowerCase()}`;
    if (block.kind === 'credentials_helper' && byKey.has(key)) continue;
    byKey.delete(key);
    byKey.set(key, block);
  }
  return [...byKey.values()];
}

/**
 * The CLI configuration every stack command runs with: the user's `credentials`, `credentials_helper` and
 * `host` blocks (Terraform reads no other CLI configuration once TF_CLI_CONFIG_FILE names ours), then
 * hashicorp/aws from the filesystem mirror and every other provider from its registry.
 */
export function stackCliConfig(mirror: string, userConfigs: readonly UserCliConfig[]): string {
  const installation = [
    'provider_installation {',
    `  filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}\n    include = ["${PROVIDER}"]\n  }`,
    `  direct {\n    exclude = ["${PROVIDER}"]\n  }`,
    '}',
  ].join('\n');
  return cliConfigText([...carriedBlocks(userConfigs, CARRIED).map((block) => block.text), installation]);
}

/**
 * The CLI configuration the one-off download of hashicorp/aws runs with: the user's credentials and host
 * blocks and the user's own `provider_installation` if there is one (a network mirror, say); else Terraform's
 * default, the registry.
 */
export function downloadCliConfig(userConfigs: readonly UserCliConfig[]): string {
  const blocks = carriedBlocks(userConfigs, [...CARRIED, 'provider_installation']);
  const installation = blocks.filter((b) => b.kind === 'provider_installation').slice(-1);
  return cliConfigText(
    [...blocks.filter((b) => b.kind !== 'provider_installation'), ...installation].map((b) => b.text),
  );
}

const cliConfigText = (blocks: readonly string[]): string => `${[HEADER, ...blocks].join('\n\n')}\n`;

/**
 * The user's CLI configuration as Terraform would read it without ours: the file TF_CLI_CONFIG_FILE names;
 * else `~/.terraformrc` and the `*.tfrc` / `*.tfrc.json` files of `~/.terraform.d` (where `terraform login`
 * keeps its token).
 */
export function readUserCliConfigs(env: NodeJS.ProcessEnv, home: string = homedir()): UserCliConfig[] {
  const read = (path: string): UserCliConfig[] => {
    try {
      return [{ path, text: readFileSync(path, 'utf8') }];
    } catch {
      return [];
    }
  };
  const override = env.TF_CLI_CONFIG_FILE || env.TERRAFORM_CONFIG;
  if (override) return read(override);
  const configDir = join(home, '.terraform.d');
  let dirFiles: string[] = [];
  try {
    dirFiles = readdirSync(configDir)
      .filter((name) => name.endsWith('.tfrc') || name.endsWith('.tfrc.json'))
      .sort();
  } catch {
    dirFiles = [];
  }
  return [join(home, '.terraformrc'), ...dirFiles.map((name) => join(configDir, name))].flatMap(read);
}

/** Writes a file whole or not at all (concurrent readers never see it half-written), owner-readable only. */
function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, text, { mode: 0o600 });
  renameSync(temporary, path);
}

/** Writes a CLI configuration under a name derived from its content, so callers with different ones coexist. */
function writeCliConfig(dir: string, name: string, text: string): string {
  const path = join(dir, `${name}-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`);
  if (!existsSync(path)) writeAtomically(path, text);
  return path;
}

// ---------------------------------------------------------------------------------------------------------
// The one-off download, safe for concurrent callers: a lock directory, and an atomic rename of a complete one.
// ---------------------------------------------------------------------------------------------------------

export interface LockOptions {
  /** A lock older than this is stale whoever holds it. Default: 20 minutes. */
  readonly staleMs?: number;
  /** How long to wait for another holder before giving up. Default: 30 minutes. */
  readonly waitMs?: number;
  /** How often to look again. Default: 500 ms. */
  readonly pollMs?: number;
  /** Whether a process of this host is alive. Default: `process.kill(pid, 0)`. */
  readonly isAlive?: (pid: number) => boolean;
  /** Told when a stale lock is broken, and why. Default: stderr. */
  readonly log?: (message: string) => void;
}

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: number;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lockDir: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(join(lockDir, 'owner.json'), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

/**
 * Why a lock is stale, or undefined while it is live: a holder on this host is alive or not; a lock from
 * another host (a shared filesystem) or without its owner file is stale once older than `staleMs`.
 */
function staleness(lockDir: string, options: Required<LockOptions>): string | undefined {
  const owner = readOwner(lockDir);
  if (owner?.host === hostname()) {
    return options.isAlive(owner.pid) ? undefined : `its holder, process ${owner.pid}, is gone`;
  }
  let since = owner?.since;
  if (since === undefined) {
    try {
      since = statSync(lockDir).mtimeMs;
    } catch {
      return undefined;
    }
  }
  return Date.now() - since > options.staleMs
    ? `it is older than ${formatDuration(options.staleMs)}`
    : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` holding `lockDir` (created exclusively), breaking a stale lock, waiting for a live one. */
export async function withDirLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  lock: LockOptions = {},
): Promise<T> {
  const options: Required<LockOptions> = {
    staleMs: lock.staleMs ?? 20 * 60_000,
    waitMs: lock.waitMs ?? 30 * 60_000,
    pollMs: lock.pollMs ?? 500,
    isAlive: lock.isAlive ?? processAlive,
    log: lock.log ?? ((message) => console.error(message)),
  };
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const stale = staleness(lockDir, options);
    if (stale) {
      options.log(`breaking the lock ${lockDir}: ${stale}`);
      // Moved aside first: of two processes breaking the same stale lock, one moves it, the other finds it gone.
      const aside = `${lockDir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        renameSync(lockDir, aside);
        rmSync(aside, { recursive: true, force: true });
      } catch {
        // Someone else broke it first.
      }
      continue;
    }
    if (Date.now() - started > options.waitMs) {
      const owner = readOwner(lockDir);
      throw new Error(
        `waited ${formatDuration(options.waitMs)} for ${lockDir}` +
          (owner ? ` (held by process ${owner.pid} on ${owner.host})` : '') +
          '; remove it if no download is running',
      );
    }
    await sleep(options.pollMs);
  }
  const owner: LockOwner = { pid: process.pid, host: hostname(), since: Date.now() };
  try {
    writeFileSync(join(lockDir, 'owner.json'), JSON.stringify(owner));
    return await fn();
  } finally {
    // Released only while it is still ours (another host may have taken it as stale meanwhile).
    const current = readOwner(lockDir);
    if (current?.pid === owner.pid && current.host === owner.host && current.since === owner.since) {
      rmSync(lockDir, { recursive: true, force: true });
    }
  }
}

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
}

/** Whether Terraform's message says it could not reach the network. */
const NETWORK_FAILURE =
  /could not connect|no such host|dial tcp|i\/o timeout|connection refused|network is unreachable|TLS handshake timeout|name resolution|context deadline exceeded|Client\.Timeout/i;

/** The error a failed download reports: plainly "no network?" when it looks like it. */
export function downloadError(output: string): Error {
  const message = failureText(output, 1_000);
  const hint = NETWORK_FAILURE.test(output) ? ' (no network?)' : '';
  return new Error(
    `could not download hashicorp/aws ${AWS_PROVIDER_VERSION} from registry.terraform.io${hint}: ${message}\n` +
      'No filesystem mirror of it was found either: set ESTATE_TF_PROVIDER_MIRROR to a directory holding ' +
      `${PROVIDER}/${AWS_PROVIDER_VERSION}/${terraformPlatform()}, or run again with network access.`,
  );
}

/**
 * Fills `mirror` with hashicorp/aws 5.100.0 unless it holds it already: `terraform init` of a one-resource
 * configuration with a plugin cache, whose layout is an unpacked filesystem mirror's, then renamed into place.
 * Concurrent callers (jest workers, parallel inits) download once: they wait on a lock, and a download that
 * loses the race to the rename is dropped.
 */
export async function ensureProviderMirror(download: ProviderDownload): Promise<string> {
  const platform = download.platform ?? terraformPlatform();
  const { mirror } = download;
  if (holdsProvider(mirror, platform)) return mirror;
  mkdirSync(dirname(mirror), { recursive: true });
  await withDirLock(
    `${mirror}.lock`,
    async () => {
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
        // A directory without the provider (an interrupted copy by hand, say) would block the rename.
        rmSync(mirror, { recursive: true, force: true });
        renameSync(cache, mirror);
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
    },
    download.lock,
  );
  return mirror;
}

// ---------------------------------------------------------------------------------------------------------
// The CLI the project runs.
// ---------------------------------------------------------------------------------------------------------

/**
 * A Terraform CLI set up to install the AWS provider from one filesystem mirror, found or downloaded. Every
 * stack's `.terraform` links to the mirror's one unpacked copy, so nothing is copied and nothing is shared but
 * that directory: Terraform's plugin cache is not used, as concurrent inits sharing it fail ("still not
 * detected in .terraform/providers").
 */
export interface TerraformCli {
  readonly env: NodeJS.ProcessEnv;
  /** The filesystem mirror hashicorp/aws is installed from: one found, or the one `ready` downloads into. */
  readonly mirror: string;
  readonly binary: string;
  /**
   * Makes sure the mirror holds the provider (the first call downloads it when no mirror was found; later
   * calls share that download). Every command of `terraform()` awaits it first.
   */
  readonly ready?: () => Promise<void>;
}

export interface PrepareOptions {
  /** Where the CLI configuration and a downloaded mirror go. Default: `<repo>/.build/terraform`. */
  readonly dir?: string;
  /** Mirror directories searched when ESTATE_TF_PROVIDER_MIRROR is unset. Default: MIRROR_CANDIDATES. */
  readonly mirrorCandidates?: readonly string[];
  /** The user's home, for their CLI configuration. Default: os.homedir(). */
  readonly home?: string;
  /** Runs the download's `terraform init`. Default: the real CLI. */
  readonly runTerraform?: TerraformRunner;
  readonly lock?: LockOptions;
}

const buildDir = () => join(REPO_ROOT, '.build', 'terraform');

/** Where a downloaded hashicorp/aws goes, below the build directory. */
export const downloadedMirrorPath = (
  dir: string = buildDir(),
  platform: string = terraformPlatform(),
): string => join(dir, `mirror-aws-${AWS_PROVIDER_VERSION}-${platform}`);

/**
 * Sets up the Terraform CLI: hashicorp/aws 5.100.0 from ESTATE_TF_PROVIDER_MIRROR, else from a mirror found
 * in the usual places, else downloaded once from the registry into `.build/terraform` on first use; the user's
 * Terraform credentials carried into the project's CLI configuration.
 */
export function prepareTerraform(
  env: NodeJS.ProcessEnv = process.env,
  options: PrepareOptions = {},
): TerraformCli {
  const dir = options.dir ?? buildDir();
  const binary = env.ESTATE_TERRAFORM ?? 'terraform';
  const found = findProviderMirror(env, options.mirrorCandidates);
  const mirror = found ?? downloadedMirrorPath(dir);
  const userConfigs = readUserCliConfigs(env, options.home);
  mkdirSync(dir, { recursive: true });
  const cliConfig = writeCliConfig(dir, 'terraformrc', stackCliConfig(mirror, userConfigs));
  // A plugin cache shared by concurrent inits breaks them (see TerraformCli).
  const inherited = Object.fromEntries(
    Object.entries(env).filter(([name]) => name !== 'TF_PLUGIN_CACHE_DIR'),
  );
  const cliEnv: NodeJS.ProcessEnv = {
    ...inherited,
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
    CHECKPOINT_DISABLE: '1',
  };
  if (found) return { mirror, binary, env: cliEnv };
  const runTerraform: TerraformRunner =
    options.runTerraform ??
    ((args, cwd, runEnv) => run(binary, args, { cwd, env: runEnv, timeoutMs: 30 * 60_000, graceMs: 10_000 }));
  let download: Promise<void> | undefined;
  const ready = () =>
    (download ??= ensureProviderMirror({
      mirror,
      env: { ...cliEnv },
      cliConfig: downloadCliConfig(userConfigs),
      runTerraform,
      lock: options.lock,
    }).then(() => undefined));
  return { mirror, binary, env: cliEnv, ready };
}

export interface TerraformOptions {
  /** Exit codes that count as success. Default: [0]. */
  readonly okCodes?: readonly number[];
  /** Default: 15 minutes; then SIGINT, and SIGKILL after `graceMs`. */
  readonly timeoutMs?: number;
  /** Default: 60 s. */
  readonly graceMs?: number;
  /** Each line of output as it arrives. */
  readonly onLine?: (line: string, stream: OutputStream) => void;
}

/** Commands whose second word is a subcommand (`state list`, `providers mirror`). */
const NESTED = new Set(['state', 'providers', 'workspace']);

/** `-no-color` goes after the (sub)command, before any positional argument such as a plan file. */
function withNoColor(args: readonly string[]): string[] {
  const words = NESTED.has(args[0] ?? '') ? 2 : 1;
  return [...args.slice(0, words), '-no-color', ...args.slice(words)];
}

/** Runs `terraform <args>` in `cwd` (after the provider mirror is ready), without colours. */
export async function terraform(
  cli: TerraformCli,
  cwd: string,
  args: readonly string[],
  options: readonly number[] | TerraformOptions = [0],
): Promise<RunResult> {
  const {
    okCodes = [0],
    timeoutMs = 15 * 60_000,
    graceMs,
    onLine,
  } = Array.isArray(options) ? { okCodes: options as readonly number[] } : (options as TerraformOptions);
  await cli.ready?.();
  return run(cli.binary, withNoColor(args), { cwd, env: cli.env, okCodes, timeoutMs, graceMs, onLine });
}

/** `terraform init` without touching the backend (no Terraform Cloud token needed). */
export const initOffline = (cli: TerraformCli, dir: string) =>
  terraform(cli, dir, ['init', '-backend=false', '-input=false']);
export const init = (cli: TerraformCli, dir: string, options: TerraformOptions = {}) =>
  terraform(cli, dir, ['init', '-input=false'], options);
export const validate = (cli: TerraformCli, dir: string) => terraform(cli, dir, ['validate']);
export const apply = (cli: TerraformCli, dir: string) =>
  terraform(cli, dir, ['apply', '-auto-approve', '-input=false']);
export const destroy = (cli: TerraformCli, dir: string) =>
  terraform(cli, dir, ['destroy', '-auto-approve', '-input=false']);

/** `terraform plan -detailed-exitcode`: true when the plan shows changes. */
export async function planHasChanges(
  cli: TerraformCli,
  dir: string,
): Promise<{ changes: boolean; output: string }> {
  const result = await terraform(cli, dir, ['plan', '-detailed-exitcode', '-input=false'], [0, 2]);
  return { changes: result.code === 2, output: result.stdout };
}
