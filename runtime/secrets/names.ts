import { PermanentError } from '../lib/failures';
import { renderValue } from '../lib/redact';

/** Longest Secrets Manager secret name. */
export const MAX_SECRET_NAME_CHARS = 512;

const SECRET_NAME_CHARS = /^[A-Za-z0-9/_+=.@-]*$/;
/**
 * Secrets Manager appends `-` and six random characters to a secret's name in its ARN, and resolves a
 * partial ARN by that shape: a name that ends the same way is taken for a partial ARN of another name.
 */
const ARN_SUFFIX_SHAPE = /-[A-Za-z0-9/_+=.@-]{6}$/;

/**
 * Why `name` cannot be a Secrets Manager secret name (what a valid name is), or undefined when it can:
 * 1-512 ASCII letters, digits and `/_+=.@-`, not ending in a hyphen and six characters.
 */
export function secretNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > MAX_SECRET_NAME_CHARS || !SECRET_NAME_CHARS.test(name))
    return 'expected a Secrets Manager name: 1 to 512 ASCII letters, digits and /_+=.@-';
  if (ARN_SUFFIX_SHAPE.test(name))
    return 'expected a name not ending in a hyphen and six characters (Secrets Manager takes them for the random suffix of an ARN)';
  return undefined;
}

/** A `names` entry: an exact name or a pattern with one `*`, and its target (a `*` there is what it matched). */
export interface NameMapping {
  readonly pattern: string;
  readonly target: string;
}

export interface MappedName {
  readonly name: string;
  /** The entry that gave the name, or undefined when no entry maps it (it keeps its name). */
  readonly mapping: NameMapping | undefined;
}

/** A name that a wildcard mapping turned into an invalid Secrets Manager name. */
export class NameMappingError extends PermanentError {
  constructor(
    readonly pattern: string,
    readonly secretName: string,
    readonly rule: string,
  ) {
    const message = `names[${renderValue(pattern, 100)}]: ${renderValue(secretName, 100)} maps to an invalid name: ${rule}`;
    super('secret-name-mapping', message);
    this.name = 'NameMappingError';
    this.message = message;
  }
}

/** A problem of a `names` object: `key` is the entry it is about, undefined when it is about several. */
export interface NameMapProblem {
  readonly key: string | undefined;
  readonly rule: string;
}

interface Wildcard {
  readonly mapping: NameMapping;
  readonly prefix: string;
  readonly suffix: string;
  readonly targetPrefix: string;
  readonly targetSuffix: string | undefined;
}

const literalLength = (w: Wildcard): number => w.prefix.length + w.suffix.length;

function wildcardOf(mapping: NameMapping): Wildcard {
  const star = mapping.pattern.indexOf('*');
  const targetStar = mapping.target.indexOf('*');
  return {
    mapping,
    prefix: mapping.pattern.slice(0, star),
    suffix: mapping.pattern.slice(star + 1),
    targetPrefix: targetStar < 0 ? mapping.target : mapping.target.slice(0, targetStar),
    targetSuffix: targetStar < 0 ? undefined : mapping.target.slice(targetStar + 1),
  };
}

const matches = (w: Wildcard, name: string): boolean =>
  name.length >= literalLength(w) && name.startsWith(w.prefix) && name.endsWith(w.suffix);

/**
 * The name mappings of a destination. An exact entry wins; otherwise the wildcard entry with the longest
 * literal part (prefix and suffix around its `*`), which `*` matches any text, empty included. Unmapped
 * names keep their name.
 */
export class NameMap {
  private constructor(
    private readonly exact: ReadonlyMap<string, NameMapping>,
    private readonly wildcards: readonly Wildcard[],
  ) {}

  static readonly EMPTY = new NameMap(new Map(), []);

  /**
   * Compiles a `names` object given as its entries; every problem is returned (an entry that has one is
   * left out of the map).
   */
  static compile(entries: readonly (readonly [string, string])[]): {
    readonly map: NameMap;
    readonly problems: readonly NameMapProblem[];
  } {
    const problems: NameMapProblem[] = [];
    const exact = new Map<string, NameMapping>();
    const wildcards: Wildcard[] = [];
    for (const [pattern, target] of entries) {
      const rule = entryProblem(pattern, target);
      if (rule !== undefined) problems.push({ key: pattern, rule });
      else if (pattern.includes('*')) wildcards.push(wildcardOf({ pattern, target }));
      else exact.set(pattern, { pattern, target });
    }
    wildcards.sort(
      (a, b) => literalLength(b) - literalLength(a) || (a.mapping.pattern < b.mapping.pattern ? -1 : 1),
    );
    for (let i = 0; i < wildcards.length; i++)
      for (let j = i + 1; j < wildcards.length; j++) {
        const [a, b] = [wildcards[i] as Wildcard, wildcards[j] as Wildcard];
        if (literalLength(a) !== literalLength(b)) break;
        const example = commonMatch(a, b);
        if (example !== undefined)
          problems.push({
            key: undefined,
            rule:
              `expected wildcard patterns that no name matches equally well: ${renderValue(a.mapping.pattern, 100)} ` +
              `and ${renderValue(b.mapping.pattern, 100)} both match ${renderValue(example, 100)} with ` +
              `${literalLength(a)} literal characters each (make one of them more specific)`,
          });
      }
    return { map: new NameMap(exact, wildcards), problems };
  }

  /** Every entry, exact ones first. */
  get mappings(): readonly NameMapping[] {
    return [...this.exact.values(), ...this.wildcards.map((w) => w.mapping)];
  }

  /** The destination name of `name`. Throws a `NameMappingError` when a wildcard gives an invalid name. */
  map(name: string): MappedName {
    const exact = this.exact.get(name);
    if (exact) return { name: exact.target, mapping: exact };
    const wildcard = this.wildcards.find((w) => matches(w, name));
    if (!wildcard) return { name, mapping: undefined };
    const middle = name.slice(wildcard.prefix.length, name.length - wildcard.suffix.length);
    const mapped =
      wildcard.targetSuffix === undefined
        ? wildcard.targetPrefix
        : `${wildcard.targetPrefix}${middle}${wildcard.targetSuffix}`;
    const rule = secretNameProblem(mapped);
    if (rule !== undefined) throw new NameMappingError(wildcard.mapping.pattern, name, rule);
    return { name: mapped, mapping: wildcard.mapping };
  }
}

const stars = (text: string): number => text.split('*').length - 1;

function entryProblem(pattern: string, target: string): string | undefined {
  const patternStars = stars(pattern);
  const literal = pattern.replace('*', '');
  if (
    patternStars > 1 ||
    literal.length > MAX_SECRET_NAME_CHARS ||
    (patternStars === 0 && literal.length === 0) ||
    !SECRET_NAME_CHARS.test(literal)
  )
    return 'expected a secret name or a pattern with one * (1 to 512 ASCII letters, digits and /_+=.@- besides it)';
  const targetStars = stars(target);
  if (targetStars === 0 && patternStars > 0)
    return 'target: expected a * (a pattern mapped onto one name would make its secrets overwrite each other)';
  if (targetStars === 0) {
    const rule = secretNameProblem(target);
    return rule === undefined ? undefined : `target: ${rule}`;
  }
  if (patternStars === 0) return 'target: expected no * (the pattern has none to fill it with)';
  if (targetStars > 1) return 'target: expected at most one *, which is what the pattern matched';
  const targetLiteral = target.replace('*', '');
  if (targetLiteral.length >= MAX_SECRET_NAME_CHARS || !SECRET_NAME_CHARS.test(targetLiteral))
    return 'target: expected at most 511 ASCII letters, digits and /_+=.@- besides its *';
  return undefined;
}

/**
 * The shortest name both wildcards match, or undefined when none exists: one prefix must start the other
 * and one suffix must end the other; the longer prefix and the longer suffix, overlapping as much as they
 * can while leaving each wildcard its literal length, are then matched by both.
 */
function commonMatch(a: Wildcard, b: Wildcard): string | undefined {
  const [shortPrefix, longPrefix] =
    a.prefix.length <= b.prefix.length ? [a.prefix, b.prefix] : [b.prefix, a.prefix];
  const [shortSuffix, longSuffix] =
    a.suffix.length <= b.suffix.length ? [a.suffix, b.suffix] : [b.suffix, a.suffix];
  if (!longPrefix.startsWith(shortPrefix) || !longSuffix.endsWith(shortSuffix)) return undefined;
  const minLength = Math.max(literalLength(a), literalLength(b));
  for (let overlap = Math.min(longPrefix.length, longSuffix.length); overlap > 0; overlap--) {
    const candidate = longPrefix + longSuffix.slice(overlap);
    if (candidate.length >= minLength && longPrefix.endsWith(longSuffix.slice(0, overlap))) return candidate;
  }
  return longPrefix + longSuffix;
}
