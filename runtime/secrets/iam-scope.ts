import { destinationScopesOf, parseReplicatorConfig, type ReplicatorConfig } from './config';

/** The random suffix Secrets Manager appends to a secret's name in its ARN (`-` and six characters). */
export const ARN_SUFFIX_WILDCARD = '-??????';

export interface IamDestinationScope {
  readonly name: string;
  readonly region: string;
  readonly roleArn?: string;
  readonly kmsKeyId?: string;
  /** Wildcards of the secret names the replicator may write there. */
  readonly names: readonly string[];
}

export interface IamScope {
  /** Wildcards of the secret names the replicator may read in its own region. */
  readonly sourceNames: readonly string[];
  readonly destinations: readonly IamDestinationScope[];
}

/** Characters a glob can hold that stand for themselves (Secrets Manager's name characters). */
const LITERAL = /[A-Za-z0-9/_+=.@-]/;

/**
 * An IAM wildcard (`*`, `?`) of the secret names part of an ARN that matches every name the picomatch glob
 * matches (with `{ dot: true }`), and perhaps more. Literal characters, `*` and `?` carry over (IAM's `*` and
 * `?` also match `/`, so they only widen); `**` takes the slashes around it along (`a/**` matches `a`); from
 * the first character IAM cannot express (braces, classes, escapes, extglobs, a leading `!`), the rest
 * becomes `*`.
 */
export function globWildcard(glob: string): string {
  if (glob.startsWith('!')) return '*';
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    const next = glob[i + 1];
    if (c === '*') {
      let end = i;
      while (glob[end + 1] === '*') end++;
      if (end > i) {
        if (out.endsWith('/')) out = out.slice(0, -1);
        if (glob[end + 1] === '/') end++;
      }
      if (!out.endsWith('*')) out += '*';
      i = end;
    } else if (c === '?' && next !== '(') {
      out += '?';
    } else if (LITERAL.test(c) && !((c === '+' || c === '@') && next === '(')) {
      out += c;
    } else {
      return out.endsWith('*') ? out : `${out}*`;
    }
  }
  return out;
}

/** As an ARN's wildcard: a wildcard that does not end in `*` gets the ARN suffix Secrets Manager appends. */
export function arnWildcard(nameWildcard: string): string {
  return nameWildcard.endsWith('*') ? nameWildcard : `${nameWildcard}${ARN_SUFFIX_WILDCARD}`;
}

/** Whether an IAM wildcard (`*` any run of characters, `?` any one character) matches `text`. */
export function wildcardMatches(wildcard: string, text: string): boolean {
  let w = 0;
  let t = 0;
  let starW = -1;
  let starT = 0;
  while (t < text.length) {
    if (w < wildcard.length && (wildcard[w] === '?' || wildcard[w] === text[t])) {
      w++;
      t++;
    } else if (w < wildcard.length && wildcard[w] === '*') {
      starW = w++;
      starT = t;
    } else if (starW >= 0) {
      w = starW + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (wildcard[w] === '*') w++;
  return w === wildcard.length;
}

const sortedUnique = (items: readonly string[]): string[] => [...new Set(items)].sort();

/**
 * For IAM: what the replicator may read at the source and write at each destination, as IAM ARN wildcards
 * of secret names (`*` and `?` only, to follow `arn:aws:secretsmanager:<region>:<account>:secret:`). A
 * superset: the source names are every destination's filter globs; a destination's names are its filter
 * globs (a name no mapping changes keeps it) and every mapping target, `*` included. A glob feature IAM
 * cannot express widens to a prefix and `*`; an exact name gets the `-??????` suffix of secret ARNs. The
 * excludes narrow nothing.
 */
export function iamScopeOf(config: ReplicatorConfig | string): IamScope {
  const parsed = typeof config === 'string' ? parseReplicatorConfig(config) : config;
  const scopes = destinationScopesOf(parsed);
  if (!scopes) throw new TypeError('iamScopeOf: expected a configuration returned by parseReplicatorConfig');
  const destinations = scopes.map((scope): IamDestinationScope => ({
    name: scope.name,
    region: scope.region,
    ...(scope.roleArn !== undefined ? { roleArn: scope.roleArn } : {}),
    ...(scope.kmsKeyId !== undefined ? { kmsKeyId: scope.kmsKeyId } : {}),
    names: sortedUnique([
      ...scope.globs.map((glob) => arnWildcard(globWildcard(glob))),
      ...scope.mappings.map((mapping) => arnWildcard(mapping.target)),
    ]),
  }));
  return {
    sourceNames: sortedUnique(
      scopes.flatMap((scope) => scope.globs.map((glob) => arnWildcard(globWildcard(glob)))),
    ),
    destinations,
  };
}
