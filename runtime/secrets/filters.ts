import { createHash } from 'node:crypto';
import picomatch from 'picomatch';
import { canonicalSteps, transformChain, type TransformStep } from './transform';

/** How globs match secret names: `*` stops at `/`, `**` crosses it, and both match names starting with a dot. */
export const GLOB_OPTIONS = { dot: true } as const;
export const MAX_GLOB_CHARS = 1024;
/** Secrets Manager's limits on a tag key and value (UTF-16 characters). */
export const MAX_TAG_KEY_CHARS = 128;
export const MAX_TAG_VALUE_CHARS = 256;
/** A rule's tag value that matches any value of the tag (the tag must be present). */
export const ANY_TAG_VALUE = '*';

/**
 * Runs of `*` other than a lone `*` standing for a whole segment (between slashes or the glob's ends), whose
 * extent the slashes around it fix. Each such run lets a name split in more ways, and picomatch's regular
 * expressions backtrack through all of them: three on a 500-character name take a tenth of a second, four
 * take seconds.
 */
function freeStarRuns(glob: string): number {
  let runs = 0;
  for (const run of glob.matchAll(/\*+/g)) {
    const before = glob[run.index - 1];
    const after = glob[run.index + run[0].length];
    const wholeSegment =
      run[0].length === 1 &&
      (before === undefined || before === '/') &&
      (after === undefined || after === '/');
    if (!wholeSegment) runs++;
  }
  return runs;
}

/**
 * Why `glob` is refused, or undefined when it is fine: a picomatch glob (compiled with `GLOB_OPTIONS`),
 * non-empty, without a leading `./`, parentheses (extglobs), more than two free `*` runs or two brace
 * groups (the last three bound its matching time).
 */
export function globProblem(glob: string): string | undefined {
  if (glob.length === 0) return 'expected a non-empty glob';
  if (glob.length > MAX_GLOB_CHARS) return `expected a glob of at most ${MAX_GLOB_CHARS} characters`;
  if (glob.startsWith('./'))
    return 'expected no leading ./ (picomatch drops it, so the glob would match names without it)';
  if (/[()]/.test(glob))
    return 'expected no parentheses: extglobs and groups are not supported (their matching time can explode)';
  if (freeStarRuns(glob) > 2)
    return "expected at most 2 * or ** besides a * standing for a whole segment (matching time grows as the name's length to the power of their number)";
  if (glob.split('{').length - 1 > 2) return 'expected at most 2 brace groups {...}';
  try {
    picomatch.scan(glob);
    picomatch.makeRe(glob, { ...GLOB_OPTIONS, debug: true });
  } catch {
    return 'expected a picomatch glob (this one does not compile: an unclosed {, [ or a trailing \\?)';
  }
  return undefined;
}

/** A matcher of secret names for a glob `globProblem` accepts. */
export function globMatcher(glob: string): (name: string) => boolean {
  const matcher = picomatch(glob, GLOB_OPTIONS);
  return (name) => matcher(name);
}

/** A filter rule as configured. */
export interface FilterRule {
  readonly match: string;
  /** Tags the secret must carry, in the order configured; the value `*` is any value. */
  readonly tags: readonly (readonly [string, string])[];
  readonly steps: readonly TransformStep[];
}

/** A rule ready to route with. */
export interface CompiledRule extends FilterRule {
  /** Where the rule is in the configuration, e.g. `filters[0]` or `defaults.filters[2]`. */
  readonly label: string;
  readonly transform: (value: string) => string;
  /** Canonical JSON of the match, the tags (sorted) and the steps. */
  readonly canonical: string;
}

/** The rule as canonical JSON (fixed key order, tags sorted by key). */
export function canonicalRule(rule: FilterRule): string {
  const tags = [...rule.tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({ match: rule.match, tags, transform: canonicalSteps(rule.steps) });
}

/** SHA-256 (hex) of a rule's canonical JSON and the name mapping it was used with. */
export function ruleHashOf(
  rule: CompiledRule,
  mapping: { readonly pattern: string; readonly target: string } | undefined,
): string {
  const names = mapping ? { pattern: mapping.pattern, target: mapping.target } : null;
  return createHash('sha256')
    .update(JSON.stringify({ rule: rule.canonical, names }))
    .digest('hex');
}

const hasTags = (
  wanted: readonly (readonly [string, string])[],
  tags: Readonly<Record<string, string>>,
): boolean =>
  wanted.every(
    ([key, value]) =>
      Object.prototype.hasOwnProperty.call(tags, key) && (value === ANY_TAG_VALUE || tags[key] === value),
  );

/** The filters of a destination: the first rule whose glob matches the name and whose tags all match wins. */
export class Filters {
  private readonly compiled: readonly (CompiledRule & { readonly matches: (name: string) => boolean })[];

  /** `field` is where the rules are in the configuration (`filters` or `defaults.filters`). */
  constructor(rules: readonly FilterRule[], field: string) {
    this.compiled = rules.map((rule, i) => ({
      ...rule,
      label: `${field}[${i}]`,
      transform: transformChain(rule.steps),
      canonical: canonicalRule(rule),
      matches: globMatcher(rule.match),
    }));
  }

  get rules(): readonly CompiledRule[] {
    return this.compiled;
  }

  /** The rule that takes the secret, or undefined when none does. */
  first(name: string, tags: Readonly<Record<string, string>>): CompiledRule | undefined {
    return this.compiled.find((rule) => rule.matches(name) && hasTags(rule.tags, tags));
  }
}
