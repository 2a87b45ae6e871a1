import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import { run, type RunResult } from './process';

/** The AWS provider version @cdktf/provider-aws 20.1.0 was generated for. */
export const AWS_PROVIDER_VERSION = '5.100.0';
const PROVIDER = 'registry.terraform.io/hashicorp/aws';

/** Where Terraform looks for local mirrors by default, plus where these machines keep one. */
const MIRROR_CANDIDATES = [
  join(homedir(), '.terraform.d', 'plugins'),
  join(homedir(), '.local', 'share', 'terraform', 'plugins'),
  '/usr/local/share/terraform/plugins',
  '/usr/share/terraform/plugins',
  '/opt',
];

function holdsProvider(dir: string): boolean {
  return existsSync(join(dir, PROVIDER, AWS_PROVIDER_VERSION));
}

/** Looks for a mirror holding hashicorp/aws at most two levels below a candidate directory. */
function searchMirror(candidate: string, depth: number): string | undefined {
  if (!existsSync(candidate)) return undefined;
  if (holdsProvider(candidate)) return candidate;
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
    const found = searchMirror(join(candidate, entry), depth - 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * The filesystem mirror holding hashicorp/aws 5.100.0: ESTATE_TF_PROVIDER_MIRROR if set, else the first of
 * Terraform's usual plugin directories (and /opt) that holds it.
 */
export function findProviderMirror(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.ESTATE_TF_PROVIDER_MIRROR;
  if (configured) {
    if (!holdsProvider(configured)) {
      throw new Error(`ESTATE_TF_PROVIDER_MIRROR=${configured} holds no ${PROVIDER}/${AWS_PROVIDER_VERSION}`);
    }
    return configured;
  }
  for (const candidate of MIRROR_CANDIDATES) {
    const found = searchMirror(candidate, candidate === '/opt' ? 2 : 0);
    if (found) return found;
  }
  throw new Error(
    `No filesystem mirror of ${PROVIDER} ${AWS_PROVIDER_VERSION} found in ${MIRROR_CANDIDATES.join(', ')}; ` +
      'set ESTATE_TF_PROVIDER_MIRROR to the directory holding registry.terraform.io/hashicorp/aws/5.100.0',
  );
}

/**
 * A Terraform CLI set up to install the AWS provider from the local mirror. Every stack's `.terraform`
 * links to the mirror's one unpacked copy, so nothing is copied and nothing is shared but that directory:
 * Terraform's plugin cache is not used, as concurrent inits sharing it fail ("still not detected in
 * .terraform/providers").
 */
export interface TerraformCli {
  readonly env: NodeJS.ProcessEnv;
  readonly mirror: string;
  readonly binary: string;
}

export function prepareTerraform(env: NodeJS.ProcessEnv = process.env): TerraformCli {
  const mirror = findProviderMirror(env);
  const dir = join(REPO_ROOT, '.build', 'terraform');
  mkdirSync(dir, { recursive: true });
  const cliConfig = join(dir, 'terraformrc');
  writeFileSync(
    cliConfig,
    [
      'provider_installation {',
      `  filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}\n    include = ["${PROVIDER}"]\n  }`,
      `  direct {\n    exclude = ["${PROVIDER}"]\n  }`,
      '}',
      '',
    ].join('\n'),
  );
  return {
    mirror,
    binary: env.ESTATE_TERRAFORM ?? 'terraform',
    env: {
      ...env,
      TF_CLI_CONFIG_FILE: cliConfig,
      TF_IN_AUTOMATION: '1',
      TF_INPUT: '0',
      CHECKPOINT_DISABLE: '1',
    },
  };
}

export function terraform(
  cli: TerraformCli,
  cwd: string,
  args: readonly string[],
  okCodes: readonly number[] = [0],
): Promise<RunResult> {
  return run(cli.binary, [...args, '-no-color'], { cwd, env: cli.env, okCodes, timeoutMs: 15 * 60_000 });
}

/** `terraform init` without touching the backend (no Terraform Cloud token needed). */
export const initOffline = (cli: TerraformCli, dir: string) =>
  terraform(cli, dir, ['init', '-backend=false', '-input=false']);
export const init = (cli: TerraformCli, dir: string) => terraform(cli, dir, ['init', '-input=false']);
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
