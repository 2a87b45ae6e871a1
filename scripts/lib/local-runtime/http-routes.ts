/**
 * HTTP API route selection as API Gateway does it: a route key `METHOD /path` (`ANY` for every method) with
 * `{name}` segments (one segment each) and a final greedy `{name+}` (one or more segments), or `$default`.
 * The most specific match wins: literal segments over parameters over a greedy tail, an exact method over
 * `ANY`, and `$default` last. Pure.
 */

export interface RouteKey {
  readonly routeKey: string;
  /** Upper case, or `ANY`; undefined for `$default`. */
  readonly method?: string;
  readonly segments: readonly Segment[];
}

type Segment =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'parameter'; readonly name: string }
  | { readonly kind: 'greedy'; readonly name: string };

export class RouteKeyError extends Error {}

export function parseRouteKey(routeKey: string): RouteKey {
  if (routeKey === '$default') return { routeKey, segments: [] };
  const match = /^([A-Z]+) (\/[^\s]*)$/.exec(routeKey);
  if (!match)
    throw new RouteKeyError(
      `route key ${JSON.stringify(routeKey.slice(0, 80))}: expected "METHOD /path" or $default`,
    );
  const path = match[2] as string;
  const parts = path === '/' ? [] : path.slice(1).split('/');
  const segments = parts.map((part, i): Segment => {
    const greedy = /^\{([A-Za-z0-9_.-]+)\+\}$/.exec(part);
    if (greedy) {
      if (i !== parts.length - 1)
        throw new RouteKeyError(`route key ${routeKey}: a greedy {${greedy[1]}+} must be the last segment`);
      return { kind: 'greedy', name: greedy[1] as string };
    }
    const parameter = /^\{([A-Za-z0-9_.-]+)\}$/.exec(part);
    if (parameter) return { kind: 'parameter', name: parameter[1] as string };
    if (part === '' || /[{}]/.test(part))
      throw new RouteKeyError(`route key ${routeKey}: segment ${i + 1} is empty or malformed`);
    return { kind: 'literal', value: part };
  });
  return { routeKey, method: match[1] as string, segments };
}

export interface RouteMatch<R> {
  readonly route: R;
  readonly key: RouteKey;
  /** Decoded path parameters; undefined when the route has none. */
  readonly pathParameters?: Readonly<Record<string, string>>;
}

const decode = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/** The path parameters of `path` (split on `/`, still encoded) under `key`, or undefined when it does not match. */
function matchPath(key: RouteKey, parts: readonly string[]): Record<string, string> | undefined {
  const parameters: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < key.segments.length; i++) {
    const segment = key.segments[i] as Segment;
    if (segment.kind === 'greedy') {
      const rest = parts.slice(i);
      if (rest.length === 0 || rest.every((part) => part === '')) return undefined;
      parameters[segment.name] = rest.map(decode).join('/');
      return parameters;
    }
    const part = parts[i];
    if (part === undefined || part === '') return undefined;
    if (segment.kind === 'literal' && part !== segment.value) return undefined;
    if (segment.kind === 'parameter') parameters[segment.name] = decode(part);
  }
  return parts.length === key.segments.length ? parameters : undefined;
}

/** Orders matches: literal (3) > parameter (2) > greedy (1) segment by segment, then exact method over ANY. */
function specificity(key: RouteKey): number[] {
  return [
    ...key.segments.map((segment) => (segment.kind === 'literal' ? 3 : segment.kind === 'parameter' ? 2 : 1)),
    0,
    key.method === 'ANY' ? 0 : 1,
  ];
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** A compiled table of routes. */
export class RouteTable<R extends { readonly routeKey: string }> {
  private readonly keys: ReadonlyArray<{ route: R; key: RouteKey }>;

  constructor(routes: readonly R[]) {
    this.keys = routes.map((route) => ({ route, key: parseRouteKey(route.routeKey) }));
  }

  /** The route serving `method` on `path` (the URL path without its query, still percent-encoded). */
  select(method: string, path: string): RouteMatch<R> | undefined {
    const parts = path === '/' || path === '' ? [] : path.replace(/^\//, '').split('/');
    let best: { route: R; key: RouteKey; parameters: Record<string, string>; rank: number[] } | undefined;
    for (const { route, key } of this.keys) {
      if (key.method === undefined) continue;
      if (key.method !== 'ANY' && key.method !== method.toUpperCase()) continue;
      const parameters = matchPath(key, parts);
      if (!parameters) continue;
      const rank = specificity(key);
      if (!best || compare(rank, best.rank) > 0) best = { route, key, parameters, rank };
    }
    if (best) {
      const names = Object.keys(best.parameters);
      return {
        route: best.route,
        key: best.key,
        ...(names.length > 0 ? { pathParameters: { ...best.parameters } } : {}),
      };
    }
    const fallback = this.keys.find(({ key }) => key.method === undefined);
    return fallback ? { route: fallback.route, key: fallback.key } : undefined;
  }
}
