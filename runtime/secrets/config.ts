/**
 * The secrets replicator's configuration: a JSON document kept in its config secret, validated when loaded.
 *
 * ```json
 * {
 *   "defaults": {
 *     "filters": [
 *       { "match": "app/prod/*", "tags": { "replicate": "true" },
 *         "transform": [ { "sed": "s/us-west-2/us-east-1/g" },
 *                        { "path": "$.db.host", "sed": "s/usw2/use1/" },
 *                        { "path": "$.db.port", "value": 5433 } ] }
 *     ],
 *     "names": { "app/prod/db": "app/prod/db-replica", "app/prod/*": "app/dr/*" },
 *     "deletePolicy": "ignore",
 *     "kmsKeyId": "alias/replicas",
 *     "twoWay": false
 *   },
 *   "exclude": ["infra/*"],
 *   "destinations": [
 *     { "name": "dr-east", "region": "us-east-1", "roleArn": "arn:aws:iam::222222222222:role/replicas",
 *       "externalId": "abc", "kmsKeyId": "alias/replicas",
 *       "filters": { "app/prod/*": "s/us-west-2/us-east-1/g", "db/prod/*": "" },
 *       "names": {}, "deletePolicy": { "propagateAfterDays": 7 }, "twoWay": true }
 *   ]
 * }
 * ```
 *
 * - The document: at most 64 KiB of UTF-8 (a secret's maximum, refused before parsing), strict JSON (a key
 *   given twice is refused), at most 32 levels of nesting, numbers finite and integers safe. Every object
 *   is strict: an unknown key is refused.
 * - `destinations`: 1 to 50. Each has a `region` (`^[a-z]{2}(-[a-z]+)+-\d$`) and may have a `name` (1-64
 *   of `[A-Za-z0-9._-]`; default: the region, after the role's account id and `/` when `roleArn` is set,
 *   e.g. `222222222222/us-east-1`; names are unique), a `roleArn` (`arn:aws:iam::<12 digits>:role/<path/name>`,
 *   assumed through STS to write there), an `externalId` (2-1224 of `[\w+=,.@:/-]`, only with `roleArn`)
 *   and a `kmsKeyId` (key id, key ARN, alias name `alias/...` or alias ARN; an ARN must be of the
 *   destination's region). `filters`, `names`, `deletePolicy`, `kmsKeyId` and `twoWay` each replace the
 *   same field of `defaults` as a whole (no deep merge). A destination without filters, here or in the
 *   defaults, is refused: it would replicate nothing.
 * - `filters`: a list of rules `{ match, tags?, transform? }`, or the short form `{ "<glob>": <transform> }`
 *   (in the document's order). The first rule whose glob matches the secret's name (picomatch with
 *   `{ dot: true }`: `*` stops at `/`, `**` crosses it) and whose `tags` the secret all carries (a value
 *   `"*"` only needs the tag present) takes the secret; when none does, the destination does not. Globs are
 *   checked when loaded, and bounded so that matching stays fast: no leading `./`, no parentheses
 *   (extglobs), at most two free `*`/`**` runs (a `*` standing for a whole segment is free), two `{}` groups.
 * - A transform: a sed script (`""`: none) or a list of at most 20 steps: `{ "sed": script }` on the whole
 *   value; `{ "path": jsonpath, "sed": script }` on each string the path selects in the value, a JSON
 *   document (selecting anything else is an error); `{ "path": jsonpath, "value": json }` replacing each
 *   value the path selects. Sed scripts compile when loaded (`runtime/secrets/sed.ts`); JSON paths are a
 *   subset of jsonpath-plus's (no filter or script expressions, and jsonpath-plus runs with `eval: false`).
 *   A path that selects nothing changes nothing; when it selects something, the document is written back
 *   with `JSON.stringify`: its formatting is normalised.
 * - `names`: `{ "<name or pattern>": "<target>" }`. A key without `*` is an exact name; a key with one `*`
 *   matches any name with its prefix and suffix (`app/prod/*` matches `app/prod/x/y`) and a `*` in its
 *   target is replaced by what the key's `*` matched. An exact key wins, then the wildcard with the longest
 *   literal part (two that tie and can match one name are refused). Unmapped names keep their name. A name
 *   given is a Secrets Manager name: 1-512 of ASCII letters, digits and `/_+=.@-`, not ending in a hyphen
 *   and six characters, which Secrets Manager takes for the random suffix of a partial ARN (checked when
 *   loaded for exact targets, when mapping for wildcard targets).
 * - `deletePolicy`: `"propagate"` (delete the replica with its source), `"ignore"` (the default) or
 *   `{ "propagateAfterDays": 1-365 }` (delete it after that many days).
 * - `twoWay`: the destination is also a source replicating back (newest write wins instead of the source).
 * - `exclude`: globs of secrets never replicated (the engine also leaves out the config secret).
 *
 * A document that breaks any of this is refused with a `ReplicatorConfigError` naming every problem, each
 * with its field's path; values that can be secret (a path step's `value`, `externalId`) are never quoted.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { PermanentError } from '../lib/failures';
import { boundedText, renderValue } from '../lib/redact';
import {
  Filters,
  globMatcher,
  globProblem,
  MAX_TAG_KEY_CHARS,
  MAX_TAG_VALUE_CHARS,
  ruleHashOf,
  type FilterRule,
} from './filters';
import { NameMap, type NameMapping } from './names';
import { compileSed, SedScriptError } from './sed';
import { jsonPathProblem, MAX_TRANSFORM_STEPS, type TransformStep } from './transform';

export type DeletePolicy =
  | { readonly kind: 'propagate' }
  | { readonly kind: 'ignore' }
  | { readonly kind: 'grace'; readonly days: number };

export interface Route {
  /** The destination secret's name. */
  readonly targetName: string;
  /** The identity when the rule has no transform; throws a `TransformError` (which never holds the value). */
  readonly transform: (value: string) => string;
  /** The rule that took the secret, e.g. `filters[0]` or `defaults.filters[0]` (inherited). */
  readonly rule: string;
  /** Hex SHA-256 of the canonical rule (match, tags, transform) and the name mapping used. */
  readonly ruleHash: string;
}

export interface Destination {
  readonly name: string;
  readonly region: string;
  readonly roleArn?: string;
  readonly externalId?: string;
  readonly kmsKeyId?: string;
  readonly deletePolicy: DeletePolicy;
  readonly twoWay: boolean;
  /**
   * How this destination takes the secret, or undefined when its filters (or the excludes) leave it out.
   * Throws NameMappingError for an invalid mapped name.
   */
  route(secretName: string, tags: Readonly<Record<string, string>>): Route | undefined;
}

export interface ReplicatorConfig {
  readonly destinations: readonly Destination[];
  /** Hex SHA-256 of the canonical configuration (every destination with its defaults applied). */
  readonly hash: string;
}

export const MAX_CONFIG_BYTES = 65_536;
export const MAX_DESTINATIONS = 50;
export const MAX_NESTING = 32;
export const MAX_ISSUES_SHOWN = 20;

export const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d$/;
export const DESTINATION_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ROLE_ARN = /^arn:aws:iam::(\d{12}):role\/(?:[!-.0-~]+\/)*[\w+=,.@-]{1,64}$/;
const MAX_ROLE_ARN_CHARS = 2048;
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
const KMS_KEY_ID = '(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})';
const KMS_ALIAS = 'alias/[A-Za-z0-9/_-]{1,250}';
const KMS_BARE = new RegExp(`^(?:${KMS_KEY_ID}|${KMS_ALIAS})$`);
const KMS_ARN = new RegExp(
  `^arn:aws:kms:([a-z]{2}(?:-[a-z]+)+-\\d):\\d{12}:(?:key/${KMS_KEY_ID}|${KMS_ALIAS})$`,
);

/** A configuration that breaks the rules; `issues` names every problem found, each with its field's path. */
export class ReplicatorConfigError extends PermanentError {
  constructor(readonly issues: readonly string[]) {
    const shown = issues.slice(0, MAX_ISSUES_SHOWN).map((issue) => `  - ${issue}`);
    if (issues.length > MAX_ISSUES_SHOWN) shown.push(`  - +${issues.length - MAX_ISSUES_SHOWN} more`);
    const message = `Invalid replicator configuration:\n${shown.join('\n')}`;
    super('secrets-config', boundedText(issues.join('; '), 400));
    this.name = 'ReplicatorConfigError';
    this.message = message;
  }
}

type Path = readonly PropertyKey[];

interface Issue {
  readonly path: Path;
  readonly rule: string;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const own = (value: unknown, key: PropertyKey): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
    ? (value as Record<PropertyKey, unknown>)[key]
    : undefined;

/** The keys of objects read from the document, in the document's order (which integer-like keys lose). */
const KEY_ORDER = new WeakMap<object, readonly string[]>();

const entriesOf = (object: Record<string, unknown>): (readonly [string, unknown])[] =>
  (KEY_ORDER.get(object) ?? Object.keys(object)).map((key) => [key, object[key]] as const);

class JsonSyntaxError extends Error {
  constructor(
    readonly at: number,
    readonly expected: string,
  ) {
    super(expected);
  }
}

class TooDeep extends Error {
  constructor(readonly path: Path) {
    super('too deep');
  }
}

// eslint-disable-next-line no-control-regex -- JSON strings refuse raw control characters
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * A strict JSON reader: what `JSON.parse` accepts, into objects without a prototype (so `__proto__` is an
 * ordinary key), remembering key order, and reporting keys given twice and numbers that would not survive
 * (not finite, or integers past 2^53) by their path. Its errors give a position, never the text.
 */
class JsonReader {
  private at = 0;
  readonly issues: Issue[] = [];

  constructor(private readonly text: string) {}

  document(): unknown {
    const value = this.value([], 0);
    this.space();
    if (this.at < this.text.length) throw new JsonSyntaxError(this.at, 'the end of the document');
    return value;
  }

  private space(): void {
    while (this.at < this.text.length && ' \t\n\r'.includes(this.text[this.at] as string)) this.at++;
  }

  private token(re: RegExp): string | undefined {
    re.lastIndex = this.at;
    const match = re.exec(this.text);
    if (!match) return undefined;
    this.at += match[0].length;
    return match[0];
  }

  private value(path: Path, depth: number): unknown {
    this.space();
    const c = this.text[this.at];
    if (c === '{' || c === '[') {
      if (depth >= MAX_NESTING) throw new TooDeep(path);
      return c === '{' ? this.object(path, depth + 1) : this.array(path, depth + 1);
    }
    if (c === '"') return this.string();
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const)
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    const number = this.token(JSON_NUMBER);
    if (number === undefined) throw new JsonSyntaxError(this.at, 'a value');
    const parsed = Number(number);
    if (!Number.isFinite(parsed) || (Number.isInteger(parsed) && !Number.isSafeInteger(parsed)))
      this.issues.push({
        path,
        rule: 'expected a finite number, integers within 2^53 - 1 (this one would not survive as written)',
      });
    return parsed;
  }

  private string(): string {
    const token = this.token(JSON_STRING);
    if (token === undefined)
      throw new JsonSyntaxError(this.at, 'a string without control characters or bad escapes');
    return JSON.parse(token) as string;
  }

  private object(path: Path, depth: number): Record<string, unknown> {
    const object = Object.create(null) as Record<string, unknown>;
    const keys: string[] = [];
    this.at++;
    this.space();
    if (this.text[this.at] === '}') this.at++;
    else
      for (;;) {
        this.space();
        if (this.text[this.at] !== '"')
          throw new JsonSyntaxError(this.at, 'a property name in double quotes');
        const key = this.string();
        this.space();
        if (this.text[this.at] !== ':') throw new JsonSyntaxError(this.at, "':'");
        this.at++;
        const value = this.value([...path, key], depth);
        if (Object.prototype.hasOwnProperty.call(object, key))
          this.issues.push({
            path: [...path, key],
            rule: 'expected each key once (JSON would keep only the last)',
          });
        else keys.push(key);
        object[key] = value;
        this.space();
        const next = this.text[this.at++];
        if (next === '}') break;
        if (next !== ',') throw new JsonSyntaxError(this.at - 1, "',' or '}'");
      }
    KEY_ORDER.set(object, keys);
    return object;
  }

  private array(path: Path, depth: number): unknown[] {
    const array: unknown[] = [];
    this.at++;
    this.space();
    if (this.text[this.at] === ']') this.at++;
    else
      for (;;) {
        array.push(this.value([...path, array.length], depth));
        this.space();
        const next = this.text[this.at++];
        if (next === ']') break;
        if (next !== ',') throw new JsonSyntaxError(this.at - 1, "',' or ']'");
      }
    return array;
  }
}

function lineAndColumn(text: string, at: number): string {
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  return `line ${line}, column ${at - before.lastIndexOf('\n')}`;
}

type Schema<T> = z.ZodMiniType<T, unknown>;

/** An error map for a schema: says what is expected, and that it is missing when it is. */
const expecting =
  (what: string) =>
  (issue: { readonly input?: unknown }): string =>
    issue.input === undefined ? `missing: expected ${what}` : `expected ${what}`;

function strict<S extends Record<string, Schema<unknown>>>(shape: S, what: string) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown property; expected ${keys}`
        : issue.input === undefined
          ? `missing: expected ${what}`
          : `expected ${what}`,
  });
}

/** Zod's issues as ours: one per unknown key, each with the path to it. */
function issuesOf(issues: readonly z.core.$ZodIssue[]): Issue[] {
  return issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: [...issue.path, key], rule: issue.message }))
      : [{ path: issue.path, rule: issue.message }],
  );
}

type Report = (rule: string, path?: Path) => void;

/**
 * A schema for `unknown` input read by hand: `read` reports every problem it finds and returns the value,
 * or undefined after reporting one.
 */
function custom<T>(read: (input: unknown, report: Report) => T | undefined): Schema<T> {
  return z.pipe(
    z.unknown(),
    z.transform((input: unknown, ctx) => {
      let failed = false;
      const output = read(input, (rule, path = []) => {
        failed = true;
        ctx.issues.push({ code: 'custom', message: rule, path: [...path], input });
      });
      if (failed) return z.NEVER;
      if (output === undefined) throw new Error('a custom schema returned nothing without reporting why');
      return output;
    }),
  );
}

/** Parses `input` with `schema`, reporting its issues (under `path`); undefined when there are issues. */
function sub<T>(schema: Schema<T>, input: unknown, report: Report, path: Path = []): T | undefined {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  for (const issue of issuesOf(result.error.issues)) report(issue.rule, [...path, ...issue.path]);
  return undefined;
}

const REGION_RULE = 'an AWS region name such as us-east-1';
const region = z
  .string({ error: expecting(REGION_RULE) })
  .check(z.regex(REGION_NAME, `expected ${REGION_RULE}`));

const NAME_RULE = '1 to 64 ASCII letters, digits and ._-';
const destinationName = z
  .string({ error: expecting(NAME_RULE) })
  .check(z.regex(DESTINATION_NAME, `expected ${NAME_RULE}`));

const ROLE_RULE = 'an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<path/name>';
const roleArn = z
  .string({ error: expecting(ROLE_RULE) })
  .check(
    z.maxLength(MAX_ROLE_ARN_CHARS, `expected ${ROLE_RULE}`),
    z.regex(ROLE_ARN, `expected ${ROLE_RULE}`),
  );

const EXTERNAL_ID_RULE = '2 to 1224 ASCII letters, digits and _+=,.@:/-';
const externalId = z
  .string({ error: expecting(EXTERNAL_ID_RULE) })
  .check(z.regex(EXTERNAL_ID, `expected ${EXTERNAL_ID_RULE}`));

const KMS_RULE = 'a KMS key id, key ARN, alias name (alias/...) or alias ARN';
const kmsKeyId = z
  .string({ error: expecting(KMS_RULE) })
  .check(z.refine((id) => KMS_BARE.test(id) || KMS_ARN.test(id), `expected ${KMS_RULE}`));

const twoWay = z.boolean({ error: expecting('true or false') });

const glob = z.pipe(
  z.string({ error: expecting('a glob') }),
  z.transform((text: string, ctx) => {
    const problem = globProblem(text);
    if (problem === undefined) return text;
    ctx.issues.push({ code: 'custom', message: problem, input: text });
    return z.NEVER;
  }),
);

const sedScript = z.pipe(
  z.string({ error: expecting('a sed script') }),
  z.transform((script: string, ctx) => {
    try {
      return { script, sed: compileSed(script) };
    } catch (error) {
      if (!(error instanceof SedScriptError)) throw error;
      ctx.issues.push({
        code: 'custom',
        message: `line ${error.line}, column ${error.column}: ${error.rule}`,
        input: script,
      });
      return z.NEVER;
    }
  }),
);

const jsonPath = z.pipe(
  z.string({ error: expecting('a JSON path') }),
  z.transform((path: string, ctx) => {
    const problem = jsonPathProblem(path);
    if (problem === undefined) return path;
    ctx.issues.push({ code: 'custom', message: problem, input: path });
    return z.NEVER;
  }),
);

const STEP_RULE = 'a step { sed }, { path, sed } or { path, value }';
const valueStep = strict({ path: jsonPath, value: z.unknown() }, STEP_RULE);
const pathSedStep = strict({ path: jsonPath, sed: sedScript }, STEP_RULE);
const sedStep = strict({ sed: sedScript }, STEP_RULE);

const step: Schema<TransformStep> = custom((input, report): TransformStep | undefined => {
  if (!isObject(input)) {
    report(`expected ${STEP_RULE}`);
    return undefined;
  }
  if (Object.prototype.hasOwnProperty.call(input, 'value')) {
    const parsed = sub(valueStep, input, report);
    return parsed && { kind: 'path-value', path: parsed.path, valueJson: JSON.stringify(parsed.value) };
  }
  if (Object.prototype.hasOwnProperty.call(input, 'path')) {
    const parsed = sub(pathSedStep, input, report);
    return parsed && { kind: 'path-sed', path: parsed.path, ...parsed.sed };
  }
  const parsed = sub(sedStep, input, report);
  return parsed && { kind: 'sed', ...parsed.sed };
});

const TRANSFORM_RULE = `a sed script or a list of at most ${MAX_TRANSFORM_STEPS} steps { sed }, { path, sed } or { path, value }`;
const steps = z
  .array(step)
  .check(z.maxLength(MAX_TRANSFORM_STEPS, `expected at most ${MAX_TRANSFORM_STEPS} steps`));

const transform: Schema<readonly TransformStep[]> = custom((input, report): readonly TransformStep[] => {
  if (input === '') return [];
  if (typeof input === 'string') {
    const parsed = sub(sedScript, input, report);
    return parsed ? [{ kind: 'sed', ...parsed }] : [];
  }
  if (Array.isArray(input)) return sub(steps, input, report) ?? [];
  report(`expected ${TRANSFORM_RULE}`);
  return [];
});

const tagValue = z
  .string({ error: expecting(`the tag's value (at most ${MAX_TAG_VALUE_CHARS} characters) or *`) })
  .check(
    z.maxLength(
      MAX_TAG_VALUE_CHARS,
      `expected the tag's value (at most ${MAX_TAG_VALUE_CHARS} characters) or *`,
    ),
  );

const tags: Schema<readonly (readonly [string, string])[]> = custom((input, report) => {
  if (!isObject(input)) {
    report('expected an object { "<tag key>": "<value or *>" }');
    return [];
  }
  return entriesOf(input).flatMap(([key, value]): (readonly [string, string])[] => {
    if (key.length < 1 || key.length > MAX_TAG_KEY_CHARS)
      report(`expected a tag key of 1 to ${MAX_TAG_KEY_CHARS} characters`, [key]);
    const parsed = sub(tagValue, value, report, [key]);
    return parsed === undefined ? [] : [[key, parsed]];
  });
});

const rule = strict(
  { match: glob, tags: z.optional(tags), transform: z.optional(transform) },
  'a rule { match, tags?, transform? }',
);

const FILTERS_RULE = 'a list of rules { match, tags?, transform? } or an object { "<glob>": <transform> }';
const NO_RULES = 'expected at least one rule (a destination without rules replicates nothing)';
const ruleList = z.array(rule).check(z.minLength(1, NO_RULES));

const filters: Schema<readonly FilterRule[]> = custom((input, report): readonly FilterRule[] => {
  if (Array.isArray(input))
    return (sub(ruleList, input, report) ?? []).map((r) => ({
      match: r.match,
      tags: r.tags ?? [],
      steps: r.transform ?? [],
    }));
  if (!isObject(input)) {
    report(`expected ${FILTERS_RULE}`);
    return [];
  }
  const entries = entriesOf(input);
  if (entries.length === 0) report(NO_RULES);
  return entries.map(([match, value]) => {
    const problem = globProblem(match);
    if (problem !== undefined) report(problem, [match]);
    return { match, tags: [], steps: sub(transform, value, report, [match]) ?? [] };
  });
});

const names: Schema<NameMap> = custom((input, report) => {
  if (!isObject(input)) {
    report('expected an object { "<name or pattern>": "<target>" }');
    return undefined;
  }
  const entries: (readonly [string, string])[] = [];
  for (const [key, value] of entriesOf(input))
    if (typeof value === 'string') entries.push([key, value]);
    else report('expected a target name', [key]);
  const { map, problems } = NameMap.compile(entries);
  for (const problem of problems) report(problem.rule, problem.key === undefined ? [] : [problem.key]);
  return map;
});

const DELETE_RULE = '"propagate", "ignore" or { "propagateAfterDays": <1 to 365> }';
const DAYS_RULE = 'expected a whole number of days from 1 to 365';
const grace = strict(
  { propagateAfterDays: z.int({ error: DAYS_RULE }).check(z.gte(1, DAYS_RULE), z.lte(365, DAYS_RULE)) },
  DELETE_RULE,
);

const deletePolicy: Schema<DeletePolicy> = custom((input, report): DeletePolicy | undefined => {
  if (input === 'propagate' || input === 'ignore') return { kind: input };
  if (isObject(input)) {
    const parsed = sub(grace, input, report);
    return parsed && { kind: 'grace', days: parsed.propagateAfterDays };
  }
  report(`expected ${DELETE_RULE}`);
  return undefined;
});

const defaults = strict(
  {
    filters: z.optional(filters),
    names: z.optional(names),
    deletePolicy: z.optional(deletePolicy),
    kmsKeyId: z.optional(kmsKeyId),
    twoWay: z.optional(twoWay),
  },
  'an object { filters?, names?, deletePolicy?, kmsKeyId?, twoWay? }',
);

const destination = strict(
  {
    name: z.optional(destinationName),
    region,
    roleArn: z.optional(roleArn),
    externalId: z.optional(externalId),
    kmsKeyId: z.optional(kmsKeyId),
    filters: z.optional(filters),
    names: z.optional(names),
    deletePolicy: z.optional(deletePolicy),
    twoWay: z.optional(twoWay),
  },
  'a destination { region, name?, roleArn?, externalId?, kmsKeyId?, filters?, names?, deletePolicy?, twoWay? }',
);

const DESTINATIONS_RULE = `expected a list of 1 to ${MAX_DESTINATIONS} destinations`;
const document = strict(
  {
    defaults: z.optional(defaults),
    exclude: z.optional(z.array(glob, { error: expecting('a list of globs') })),
    destinations: z
      .array(destination, { error: expecting(`a list of 1 to ${MAX_DESTINATIONS} destinations`) })
      .check(z.minLength(1, DESTINATIONS_RULE), z.maxLength(MAX_DESTINATIONS, DESTINATIONS_RULE)),
  },
  'a JSON object { defaults?, exclude?, destinations }',
);

type Document = z.output<typeof document>;
type DestinationDoc = Document['destinations'][number];

const validString = (value: unknown, re: RegExp): string | undefined =>
  typeof value === 'string' && re.test(value) ? value : undefined;

/** The account of a valid role ARN. */
const accountOf = (arn: string): string => arn.split(':')[4] as string;

function defaultName(region: string, roleArn: string | undefined): string {
  return roleArn === undefined ? region : `${accountOf(roleArn)}/${region}`;
}

/** What names a destination in paths: its name, or its region (never the role's account id). */
function labelOf(raw: unknown): string | undefined {
  return validString(own(raw, 'name'), DESTINATION_NAME) ?? validString(own(raw, 'region'), REGION_NAME);
}

/** The checks that span fields, on the document as read (each skipped where the fields it needs are invalid). */
function acrossFields(raw: unknown): Issue[] {
  const issues: Issue[] = [];
  const list = own(raw, 'destinations');
  if (!Array.isArray(list)) return issues;
  const rawDefaults = own(raw, 'defaults');
  const defaultsHaveFilters = isObject(rawDefaults) && own(rawDefaults, 'filters') !== undefined;
  const seen = new Map<string, { readonly index: number; readonly given: boolean }>();
  list.forEach((entry: unknown, i) => {
    if (!isObject(entry)) return;
    const at = (field: string): Path => ['destinations', i, field];
    const role = own(entry, 'roleArn');
    if (own(entry, 'externalId') !== undefined && role === undefined)
      issues.push({
        path: at('externalId'),
        rule: 'expected only with roleArn (it is passed to STS when assuming the role)',
      });
    if (own(entry, 'filters') === undefined && !defaultsHaveFilters)
      issues.push({
        path: at('filters'),
        rule: 'missing: expected filters here or in defaults (without them the destination replicates nothing)',
      });
    const regionName = validString(own(entry, 'region'), REGION_NAME);
    const givenName = own(entry, 'name');
    const validRole = role === undefined ? undefined : validString(role, ROLE_ARN);
    const name =
      givenName !== undefined
        ? validString(givenName, DESTINATION_NAME)
        : regionName !== undefined && (role === undefined || validRole !== undefined)
          ? defaultName(regionName, validRole)
          : undefined;
    if (name !== undefined) {
      const first = seen.get(name);
      if (first === undefined) seen.set(name, { index: i, given: givenName !== undefined });
      else
        issues.push({
          path: at('name'),
          rule:
            `expected a name no other destination has; destinations[${first.index}] has the same` +
            (first.given && givenName !== undefined
              ? ''
              : " (a destination's default name is its region, after the role's account id and / when roleArn is set)"),
        });
    }
    const ownKey = own(entry, 'kmsKeyId');
    const key = ownKey ?? own(rawDefaults, 'kmsKeyId');
    const keyRegion = typeof key === 'string' ? KMS_ARN.exec(key)?.[1] : undefined;
    if (regionName !== undefined && keyRegion !== undefined && keyRegion !== regionName)
      issues.push({
        path: at('kmsKeyId'),
        rule:
          `expected a key of the destination's region ${regionName}; this key ARN` +
          `${ownKey === undefined ? ' (from defaults)' : ''} is in ${keyRegion}`,
      });
  });
  return issues;
}

const USER_KEYED = new Set<PropertyKey>(['names', 'tags']);

/**
 * `destinations[1] (dr-east).filters[0].transform`, with keys from the document quoted; nothing below a
 * path step's `value` (its keys are part of it).
 */
function renderPath(path: Path, raw: unknown): string {
  let out = '';
  let node = raw;
  for (const [i, segment] of path.entries()) {
    const parent = path[i - 1];
    if (typeof segment === 'number') {
      out += `[${segment}]`;
      const label = i === 1 && parent === 'destinations' ? labelOf(own(node, segment)) : undefined;
      if (label !== undefined) out += ` (${label})`;
    } else {
      const key = String(segment);
      const fromDocument =
        (parent !== undefined && USER_KEYED.has(parent)) || (parent === 'filters' && isObject(node));
      out +=
        !fromDocument && /^[A-Za-z_$][\w$]*$/.test(key)
          ? `${out ? '.' : ''}${key}`
          : `[${renderValue(key, 100)}]`;
      if (key === 'value' && typeof parent === 'number' && path[i - 2] === 'transform') break;
    }
    node = own(node, segment);
  }
  return typeof path[0] === 'number' ? `config${out}` : out || 'config';
}

const SECTIONS: readonly PropertyKey[] = ['defaults', 'exclude', 'destinations'];

/** Issues grouped by section and destination, each group in the order its issues were found. */
function grouped(issues: readonly Issue[]): Issue[] {
  const rank = (issue: Issue): number => SECTIONS.indexOf(issue.path[0] ?? '');
  const index = (issue: Issue): number => (typeof issue.path[1] === 'number' ? issue.path[1] : -1);
  return [...issues].sort((a, b) => rank(a) - rank(b) || index(a) - index(b));
}

/** What `iamScopeOf` needs of a destination: its globs and name mappings. */
export interface DestinationScope {
  readonly name: string;
  readonly region: string;
  readonly roleArn?: string;
  readonly kmsKeyId?: string;
  readonly globs: readonly string[];
  readonly mappings: readonly NameMapping[];
}

const SCOPES = new WeakMap<ReplicatorConfig, readonly DestinationScope[]>();

/** The globs and mappings of each destination of a configuration `parseReplicatorConfig` returned. */
export function destinationScopesOf(config: ReplicatorConfig): readonly DestinationScope[] | undefined {
  return SCOPES.get(config);
}

interface Resolved {
  readonly name: string;
  readonly region: string;
  readonly roleArn: string | undefined;
  readonly externalId: string | undefined;
  readonly kmsKeyId: string | undefined;
  readonly deletePolicy: DeletePolicy;
  readonly twoWay: boolean;
  readonly filters: Filters;
  readonly names: NameMap;
  readonly excluded: (name: string) => boolean;
}

class ConfiguredDestination implements Destination {
  readonly name: string;
  readonly region: string;
  readonly roleArn?: string;
  readonly kmsKeyId?: string;
  readonly deletePolicy: DeletePolicy;
  readonly twoWay: boolean;
  readonly #externalId: string | undefined;
  readonly #filters: Filters;
  readonly #names: NameMap;
  readonly #excluded: (name: string) => boolean;
  readonly #hashes = new Map<string, string>();

  constructor(resolved: Resolved) {
    this.name = resolved.name;
    this.region = resolved.region;
    if (resolved.roleArn !== undefined) this.roleArn = resolved.roleArn;
    if (resolved.kmsKeyId !== undefined) this.kmsKeyId = resolved.kmsKeyId;
    this.deletePolicy = resolved.deletePolicy;
    this.twoWay = resolved.twoWay;
    this.#externalId = resolved.externalId;
    this.#filters = resolved.filters;
    this.#names = resolved.names;
    this.#excluded = resolved.excluded;
  }

  /** Kept off the object's own properties, so that logging a destination does not log it. */
  get externalId(): string | undefined {
    return this.#externalId;
  }

  route(secretName: string, tags: Readonly<Record<string, string>>): Route | undefined {
    if (this.#excluded(secretName)) return undefined;
    const rule = this.#filters.first(secretName, tags);
    if (!rule) return undefined;
    const { name, mapping } = this.#names.map(secretName);
    const key = `${rule.label}\u0000${mapping ? `=${mapping.pattern}` : ''}`;
    let ruleHash = this.#hashes.get(key);
    if (ruleHash === undefined) {
      ruleHash = ruleHashOf(rule, mapping);
      this.#hashes.set(key, ruleHash);
    }
    return { targetName: name, transform: rule.transform, rule: rule.label, ruleHash };
  }

  canonical(): unknown {
    return {
      name: this.name,
      region: this.region,
      roleArn: this.roleArn ?? null,
      externalId: this.#externalId ?? null,
      kmsKeyId: this.kmsKeyId ?? null,
      deletePolicy: this.deletePolicy,
      twoWay: this.twoWay,
      filters: this.#filters.rules.map((r) => ({ rule: r.label, canonical: r.canonical })),
      names: this.#names.mappings
        .map((m) => [m.pattern, m.target])
        .sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1)),
    };
  }

  scope(): DestinationScope {
    return {
      name: this.name,
      region: this.region,
      ...(this.roleArn !== undefined ? { roleArn: this.roleArn } : {}),
      ...(this.kmsKeyId !== undefined ? { kmsKeyId: this.kmsKeyId } : {}),
      globs: this.#filters.rules.map((r) => r.match),
      mappings: this.#names.mappings,
    };
  }
}

function build(doc: Document): ReplicatorConfig {
  const fallback = doc.defaults ?? {};
  const defaultFilters = fallback.filters ? new Filters(fallback.filters, 'defaults.filters') : undefined;
  const exclude = (doc.exclude ?? []).map(globMatcher);
  const excluded = (name: string): boolean => exclude.some((matches) => matches(name));
  const destinations = doc.destinations.map((d: DestinationDoc) => {
    const filtersOfIt = d.filters ? new Filters(d.filters, 'filters') : defaultFilters;
    if (!filtersOfIt) throw new Error('unreachable: a destination without filters passed validation');
    return new ConfiguredDestination({
      name: d.name ?? defaultName(d.region, d.roleArn),
      region: d.region,
      roleArn: d.roleArn,
      externalId: d.externalId,
      kmsKeyId: d.kmsKeyId ?? fallback.kmsKeyId,
      deletePolicy: d.deletePolicy ?? fallback.deletePolicy ?? { kind: 'ignore' },
      twoWay: d.twoWay ?? fallback.twoWay ?? false,
      filters: filtersOfIt,
      names: d.names ?? fallback.names ?? NameMap.EMPTY,
      excluded,
    });
  });
  const canonical = JSON.stringify({
    exclude: doc.exclude ?? [],
    destinations: destinations.map((d) => d.canonical()),
  });
  const config: ReplicatorConfig = {
    destinations,
    hash: createHash('sha256').update(canonical).digest('hex'),
  };
  SCOPES.set(
    config,
    destinations.map((d) => d.scope()),
  );
  return config;
}

/**
 * Reads and validates the replicator's configuration document (described at the top of this file). Throws
 * a `ReplicatorConfigError` listing every problem found.
 */
export function parseReplicatorConfig(text: string): ReplicatorConfig {
  if (typeof text !== 'string')
    throw new ReplicatorConfigError(['config: expected the JSON document as text']);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_CONFIG_BYTES)
    throw new ReplicatorConfigError([
      `config: expected at most ${MAX_CONFIG_BYTES} bytes (a secret's maximum size); the document has ${bytes}`,
    ]);
  const reader = new JsonReader(text);
  let raw: unknown;
  try {
    raw = reader.document();
  } catch (error) {
    if (error instanceof JsonSyntaxError)
      throw new ReplicatorConfigError([
        `config: expected a JSON document; expected ${error.expected} at ${lineAndColumn(text, error.at)}`,
      ]);
    if (error instanceof TooDeep)
      throw new ReplicatorConfigError([
        `${renderPath(error.path, undefined)}: expected at most ${MAX_NESTING} levels of nesting`,
      ]);
    throw error;
  }
  const issues: Issue[] = [...reader.issues];
  const result = document.safeParse(raw);
  if (!result.success) issues.push(...issuesOf(result.error.issues));
  issues.push(...acrossFields(raw));
  if (issues.length > 0 || !result.success)
    throw new ReplicatorConfigError(
      grouped(issues).map((issue) => `${renderPath(issue.path, raw)}: ${issue.rule}`),
    );
  return build(result.data);
}
