// The Terraform CLI the project runs: set up once (provider mirror, CLI configuration), then commands.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import type { LockOptions } from './dir-lock';
import { run, type OutputStream, type RunResult } from './process';
import {
  downloadedMirrorPath,
  ensureProviderMirror,
  findProviderMirror,
  type TerraformRunner,
} from './provider-mirror';
import {
  downloadCliConfig,
  readUserCliConfigs,
  stackCliConfig,
  writeCliConfig,
} from './terraform-cli-config';

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
  /** Mirror directories searched when ESTATE_TF_PROVIDER_MIRROR is unset. Default: the usual places. */
  readonly mirrorCandidates?: readonly string[];
  /** The user's home, for their CLI configuration. Default: os.homedir(). */
  readonly home?: string;
  /** Runs the download's `terraform init`. Default: the real CLI. */
  readonly runTerraform?: TerraformRunner;
  readonly lock?: LockOptions;
}

/**
 * Sets up the Terraform CLI: hashicorp/aws 5.100.0 from ESTATE_TF_PROVIDER_MIRROR, else from a mirror found
 * in the usual places, else downloaded once from the registry into `.build/terraform` on first use; the user's
 * Terraform credentials carried into the project's CLI configuration.
 */
export function prepareTerraform(
  env: NodeJS.ProcessEnv = process.env,
  options: PrepareOptions = {},
): TerraformCli {
  const dir = options.dir ?? join(REPO_ROOT, '.build', 'terraform');
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
  /** Run at this lower CPU priority (`nice -n`; ignored where there is no `nice`, i.e. on Windows). */
  readonly niceness?: number;
}

/** Commands whose second word is a subcommand (`state list`, `providers mirror`). */
const NESTED = new Set(['state', 'providers', 'workspace']);

/** `-no-color` goes after the (sub)command, before any positional argument such as a plan file. */
function withNoColor(args: readonly string[]): string[] {
  const words = NESTED.has(args[0] ?? '') ? 2 : 1;
  return [...args.slice(0, words), '-no-color', ...args.slice(words)];
}

/** Commands that take the state lock (unless given `-lock=false`). */
const LOCKING = new Set([
  'plan',
  'apply',
  'destroy',
  'refresh',
  'import',
  'taint',
  'untaint',
  'state mv',
  'state rm',
  'state push',
  'state replace-provider',
]);

/** What to do about the state lock a command SIGKILL ended may have left held, if it takes one. */
export function stateLockHint(cwd: string, args: readonly string[]): string | undefined {
  const command = NESTED.has(args[0] ?? '') ? args.slice(0, 2).join(' ') : (args[0] ?? '');
  if (!LOCKING.has(command) || args.includes('-lock=false')) return undefined;
  return (
    `the state lock is probably still held: once sure no Terraform runs on this state, release it from ` +
    `${cwd} with \`terraform force-unlock <lock ID>\` (the next plan or apply names the ID when it cannot ` +
    'take the lock)'
  );
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
    niceness,
  } = Array.isArray(options) ? { okCodes: options as readonly number[] } : (options as TerraformOptions);
  await cli.ready?.();
  const niced = niceness !== undefined && process.platform !== 'win32';
  return run(
    niced ? 'nice' : cli.binary,
    [...(niced ? ['-n', String(niceness), cli.binary] : []), ...withNoColor(args)],
    {
      cwd,
      env: cli.env,
      okCodes,
      timeoutMs,
      graceMs,
      onLine,
      afterKillHint: stateLockHint(cwd, args),
    },
  );
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
