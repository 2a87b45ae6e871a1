// The project's Terraform CLI configuration: the user's credentials and host blocks (from HCL or JSON CLI
// configuration files), then the project's provider installation.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AWS_PROVIDER } from './provider-mirror';

/** A Terraform CLI configuration file of the user's, HCL or JSON (`.json`). */
export interface UserCliConfig {
  readonly path: string;
  readonly text: string;
}

const HEADER =
  "# Written by scripts/lib/terraform-cli-config.ts: the estate's Terraform CLI configuration. Do not edit.";
/** How every version of this file began its configurations (an inherited one may be older than this code). */
const OURS =
  /^# Written by scripts\/lib\/terraform(-cli-config)?\.ts: the estate's Terraform CLI configuration\./;

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
function extractHclBlocks(text: string, kinds: readonly BlockKind[]): Block[] {
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
function extractJsonBlocks(text: string, kinds: readonly BlockKind[]): Block[] {
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
  const kinds = OURS.test(config.text) ? wanted.filter((k) => k !== 'provider_installation') : wanted;
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
    `  filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}\n    include = ["${AWS_PROVIDER}"]\n  }`,
    `  direct {\n    exclude = ["${AWS_PROVIDER}"]\n  }`,
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
export function writeCliConfig(dir: string, name: string, text: string): string {
  const path = join(dir, `${name}-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`);
  if (!existsSync(path)) writeAtomically(path, text);
  return path;
}
