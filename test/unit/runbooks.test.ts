import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { loadEnvironments, type EnvironmentConfig } from '../../environments';
import { REDRIVE_QUEUES } from '../../scripts/lib/redrive';
import { parseRolloutArgs } from '../../scripts/lib/rollout';
import { synthesize } from '../../scripts/lib/synth';
import { globalStackName, regionalStackName, sharedStackName } from '../../stacks/names';

// The operator runbooks in docs/ go stale when what they name changes: a script, a flag, a file, a resource
// name, a Terraform address. Each check below reads the Markdown as an operator would copy it.

const ROOT = resolve(__dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const RUNBOOKS = join(DOCS, 'runbooks');
const INDEX = join(RUNBOOKS, 'README.md');

interface Doc {
  readonly path: string;
  /** Repository-relative, for messages. */
  readonly name: string;
  readonly text: string;
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return entry.endsWith('.md') ? [path] : [];
  });
}

const docs: Doc[] = markdownFiles(DOCS).map((path) => ({
  path,
  name: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}));
const runbooks = docs.filter((doc) => dirname(doc.path) === RUNBOOKS && doc.path !== INDEX);

const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
};
const scripts = packageJson.scripts;

const environments = loadEnvironments({});
const deployed = Object.values(environments).filter((environment) => !environment.emulator);
const regionsOf = (environment: EnvironmentConfig): readonly string[] => environment.regions;
/** The deployed environments' stacks, by the names the stacks get (stacks/names.ts). */
const stackNames = new Set(
  deployed.flatMap((env) => [
    ...(env.sharedServices ? env.regions.map((region) => sharedStackName(env, region)) : []),
    ...(env.workloads
      ? [globalStackName(env), ...env.regions.map((region) => regionalStackName(env, region))]
      : []),
  ]),
);

/** Every match of a global regex's first group. */
const all = (text: string, pattern: RegExp): string[] => [...text.matchAll(pattern)].map((m) => m[1] ?? '');

/** The shell commands of a document: fenced blocks and inline code, continuation lines joined. */
function commandsOf(text: string): string[] {
  const fenced = all(text, /^```[a-z]*\n([\s\S]*?)^```/gm);
  const prose = text.replace(/^```[a-z]*\n[\s\S]*?^```/gm, '');
  const inline = all(prose, /`([^`\n]+)`/g);
  return [...fenced, ...inline]
    .map((block) => block.replace(/\\\n\s*/g, ' '))
    .flatMap((block) => block.split('\n'))
    .map((line) => line.trim())
    .filter(Boolean);
}

/** Words of a command line as the shell splits them, quotes removed. */
const wordsOf = (line: string): string[] =>
  (line.match(/'[^']*'|"[^"]*"|[^\s'"]+/g) ?? []).map((word) => word.replace(/^(['"])(.*)\1$/, '$2'));

/** A value an operator fills in or the shell computes: not checked against anything. */
const isPlaceholder = (value: string): boolean => /[$<>*(]/.test(value);

/** `npm run <script> -- <args>` invocations: the script and its arguments. */
function npmRunsOf(line: string): Array<{ script: string; args: string[] }> {
  const runs: Array<{ script: string; args: string[] }> = [];
  for (const match of line.matchAll(/\bnpm run (?:--silent )?([\w:-]+)((?: -- [^;&|)`#]*)?)/g)) {
    const args = wordsOf((match[2] ?? '').replace(/^ -- /, ''));
    runs.push({ script: match[1] ?? '', args });
  }
  return runs;
}

/** GitHub's anchor of a heading. */
const slugOf = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchorsOf = (text: string): Set<string> => new Set(all(text, /^#{1,6} (.+)$/gm).map(slugOf));

describe('runbook index (docs/runbooks/README.md)', () => {
  it('lists every runbook in docs/runbooks, and only those', () => {
    const index = readFileSync(INDEX, 'utf8');
    const listed = [...new Set(all(index, /\]\(([\w-]+\.md)(?:#[^)]*)?\)/g))].sort();
    const present = runbooks.map((doc) => relative(RUNBOOKS, doc.path)).sort();
    expect(listed).toEqual(present);
  });
});

describe.each(runbooks.map((doc) => [doc.name, doc] as const))('runbook %s', (_name, doc) => {
  it('says when to use it, what it needs, its steps, how to verify and how to roll back, in that order', () => {
    const headings = all(doc.text, /^## (.+)$/gm);
    const wanted = ['When to use', 'Prerequisites', 'Steps', 'Verify', 'Roll back'];
    const found = wanted.map((title) => headings.findIndex((heading) => heading.startsWith(title)));
    expect(wanted.filter((_, i) => (found[i] ?? -1) < 0)).toEqual([]);
    expect([...found].sort((a, b) => a - b)).toEqual(found);
    expect(doc.text.startsWith('# ')).toBe(true);
  });
});

describe.each(docs.map((doc) => [doc.name, doc] as const))('%s', (_name, doc) => {
  const commands = commandsOf(doc.text);
  const runs = commands.flatMap(npmRunsOf);

  it('runs only npm scripts package.json has', () => {
    const named = [
      ...all(doc.text, /\bnpm run (?:--silent )?([\w:-]+)/g),
      ...all(doc.text, /\bnpm (start|test)\b/g),
    ];
    expect(named.filter((script) => !(script in scripts))).toEqual([]);
  });

  it('passes each script only flags its source reads', () => {
    const unknown: string[] = [];
    for (const { script, args } of runs) {
      const file = /\b(scripts\/[\w./-]+\.(?:ts|mjs))\b/.exec(scripts[script] ?? '')?.[1];
      if (!file) continue;
      const source = readFileSync(join(ROOT, file), 'utf8');
      for (const flag of args.filter((arg) => arg.startsWith('--')))
        if (!source.includes(flag)) unknown.push(`npm run ${script} -- ${flag}`);
    }
    expect(unknown).toEqual([]);
  });

  it('names environments, regions, stacks and queues the scripts accept', () => {
    const problems: string[] = [];
    // A script named in prose without arguments is a mention, not an invocation.
    for (const { script, args } of runs.filter((run) => run.args.length > 0)) {
      const positional = args.filter((arg, i) => !arg.startsWith('--') && !args[i - 1]?.startsWith('--'));
      const said = `npm run ${script} -- ${args.join(' ')}`;
      if (script === 'rollout') {
        try {
          const { only } = parseRolloutArgs(args, Object.keys(environments));
          if (only !== undefined && !isPlaceholder(only) && !stackNames.has(only))
            problems.push(`${said}: no stack ${only}`);
        } catch (error) {
          problems.push(`${said}: ${(error as Error).message}`);
        }
      }
      if (script === 'plan')
        for (const stack of positional.filter((p) => !isPlaceholder(p) && !stackNames.has(p)))
          problems.push(`${said}: no stack ${stack}`);
      if (script === 'redrive') {
        const [env = '', region = ''] = positional;
        const environment = environments[env];
        if (!environment) problems.push(`${said}: no environment ${env}`);
        else if (!isPlaceholder(region) && !regionsOf(environment).includes(region))
          problems.push(`${said}: ${env} has no region ${region}`);
        const queue = args.includes('--queue') ? args[args.indexOf('--queue') + 1] : undefined;
        if (queue !== undefined && !(queue in REDRIVE_QUEUES)) problems.push(`${said}: no queue ${queue}`);
        const max = args.includes('--max') ? Number(args[args.indexOf('--max') + 1]) : 1;
        if (!Number.isInteger(max) || max < 1) problems.push(`${said}: --max takes a positive integer`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('mentions only repository paths that exist', () => {
    const paths = all(
      doc.text,
      /(?<![\w./$-])((?:\.github|bench|docs|environments|modules|runtime|scripts|stacks|test)\/[\w./-]*\w)/g,
    );
    expect(paths.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });

  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const target of all(doc.text, /\]\((?!https?:)([^)\s]+)\)/g)) {
      const [file = '', anchor] = target.split('#');
      const path = file === '' ? doc.path : resolve(dirname(doc.path), file);
      if (!existsSync(path)) broken.push(target);
      else if (
        anchor !== undefined &&
        path.endsWith('.md') &&
        !anchorsOf(readFileSync(path, 'utf8')).has(anchor)
      )
        broken.push(target);
    }
    expect(broken).toEqual([]);
  });
});

describe('AWS names and Terraform addresses in the docs', () => {
  /** Every string value of every synthesized stack: names of functions, tables, queues, alarms, rules... */
  const known = new Set<string>();
  /** `<type>.<id>` of every synthesized resource. */
  const addresses = new Set<string>();
  const regions = new Set(deployed.flatMap(regionsOf));

  const collect = (value: unknown): void => {
    if (typeof value === 'string') known.add(value);
    else if (Array.isArray(value)) value.forEach(collect);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(collect);
  };

  beforeAll(() => {
    const outdir = mkdtempSync(join(tmpdir(), 'runbooks-'));
    try {
      for (const stack of synthesize(deployed, outdir)) {
        const config = JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as {
          resource?: Record<string, Record<string, unknown>>;
        };
        collect(config);
        for (const [type, byId] of Object.entries(config.resource ?? {}))
          for (const id of Object.keys(byId)) addresses.add(`${type}.${id}`);
      }
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 180_000);

  /** Flags of the AWS CLI whose value is the name of something the stacks create. */
  const NAME_FLAGS = new Set([
    '--function-name',
    '--table-name',
    '--source-table-name',
    '--queue-name',
    '--secret-id',
    '--cluster',
    '--name',
    '--log-group-name',
    '--index-name',
    '--key-id',
    '--dns-name',
    '--repository-name',
    '--alarm-names',
  ]);
  /** Flags whose value is the start of such names. */
  const PREFIX_FLAGS = new Set(['--alarm-name-prefix', '--queue-name-prefix']);

  it.each(docs.map((doc) => [doc.name, doc] as const))(
    '%s names only resources the stacks create, in their regions',
    (_name, doc) => {
      const unknown: string[] = [];
      for (const line of commandsOf(doc.text).filter((l) => /\baws /.test(l))) {
        const words = wordsOf(line);
        words.forEach((word, i) => {
          const values: string[] = [];
          if (NAME_FLAGS.has(word)) {
            for (let j = i + 1; j < words.length && !words[j]?.startsWith('--'); j++) {
              values.push(words[j] ?? '');
              if (word !== '--alarm-names') break;
            }
          }
          for (const value of values.filter((v) => !isPlaceholder(v))) {
            const name = word === '--function-name' ? value.replace(/:live$/, '') : value;
            if (!known.has(name)) unknown.push(`${word} ${value}`);
          }
          const prefix = words[i + 1] ?? '';
          if (
            PREFIX_FLAGS.has(word) &&
            !isPlaceholder(prefix) &&
            ![...known].some((k) => k.startsWith(prefix))
          )
            unknown.push(`${word} ${prefix}`);
          if (word === '--region' && !isPlaceholder(prefix) && !regions.has(prefix))
            unknown.push(`--region ${prefix}`);
        });
        for (const name of all(line, /\bName=='([\w.-]+?)\.?'/g))
          if (!known.has(name)) unknown.push(`Name=='${name}'`);
      }
      expect(unknown).toEqual([]);
    },
  );

  it.each(docs.map((doc) => [doc.name, doc] as const))(
    '%s names only Terraform addresses the stacks synthesize',
    (_name, doc) => {
      const named = all(doc.text, /\b(aws_[a-z0-9_]+\.[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*_[0-9A-F]{8})\b/g);
      expect(named.filter((address) => !addresses.has(address))).toEqual([]);
    },
  );
});
