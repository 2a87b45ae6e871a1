// Where an apply's time went: each resource's start and end from `terraform apply -json`'s lines, and the
// chain of resources that decided when the apply ended (its critical path), from the stack's references.

export interface ResourceSpan {
  readonly address: string;
  /** Seconds from the apply's first line. */
  readonly start: number;
  readonly end: number;
}

export interface ApplyTimeline {
  /** Seconds from the apply's first line to its first change: init of the providers, validation, the plan. */
  readonly planSeconds: number;
  readonly totalSeconds: number;
  readonly spans: ReadonlyMap<string, ResourceSpan>;
}

interface Line {
  readonly type?: string;
  readonly '@timestamp'?: string;
  readonly hook?: { readonly resource?: { readonly addr?: string }; readonly action?: string };
}

/** The timeline of one apply from its JSON lines (data-source reads are not changes and are left out). */
export function applyTimeline(lines: readonly string[]): ApplyTimeline {
  const parsed = lines.flatMap((line): Line[] => {
    try {
      return [JSON.parse(line) as Line];
    } catch {
      return [];
    }
  });
  const times = parsed.map((line) => Date.parse(line['@timestamp'] ?? '')).filter(Number.isFinite);
  const first = Math.min(...times);
  const last = Math.max(...times);
  const starts = new Map<string, number>();
  const spans = new Map<string, ResourceSpan>();
  for (const line of parsed) {
    const address = line.hook?.resource?.addr;
    const at = (Date.parse(line['@timestamp'] ?? '') - first) / 1000;
    if (!address || line.hook?.action === 'read' || !Number.isFinite(at)) continue;
    if (line.type === 'apply_start') starts.set(address, at);
    if (line.type === 'apply_complete')
      spans.set(address, { address, start: starts.get(address) ?? at, end: at });
  }
  const firstChange = Math.min(...[...spans.values()].map((span) => span.start));
  return {
    planSeconds: spans.size > 0 ? firstChange : 0,
    totalSeconds: times.length > 0 ? (last - first) / 1000 : 0,
    spans,
  };
}

const REFERENCE = /\$\{(?:data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)[.}[]/g;

/** The resources each resource of a synthesized stack refers to (`${type.name...}` and `depends_on`). */
export function resourceDependencies(config: unknown): Map<string, Set<string>> {
  const resources = (config as { resource?: Record<string, Record<string, Record<string, unknown>>> })
    .resource;
  const dependencies = new Map<string, Set<string>>();
  for (const [type, byName] of Object.entries(resources ?? {})) {
    for (const [name, body] of Object.entries(byName)) {
      const found = new Set<string>();
      for (const match of JSON.stringify(body).matchAll(REFERENCE)) found.add(`${match[1]}.${match[2]}`);
      for (const dependency of (body.depends_on as string[] | undefined) ?? []) found.add(dependency);
      found.delete(`${type}.${name}`);
      dependencies.set(`${type}.${name}`, found);
    }
  }
  return dependencies;
}

/**
 * The chain that ended the apply: from the change that finished last, back through the dependency that
 * finished last before it started, to a change that waited on nothing of the stack. Earliest first.
 */
export function criticalPath(
  timeline: ApplyTimeline,
  dependencies: ReadonlyMap<string, ReadonlySet<string>>,
): ResourceSpan[] {
  const spans = [...timeline.spans.values()];
  let current = spans.reduce<ResourceSpan | undefined>((a, b) => (a && a.end >= b.end ? a : b), undefined);
  const chain: ResourceSpan[] = [];
  while (current) {
    chain.unshift(current);
    const before: ResourceSpan[] = [...(dependencies.get(current.address) ?? [])].flatMap((address) => {
      const span = timeline.spans.get(address);
      return span ? [span] : [];
    });
    current = before.reduce<ResourceSpan | undefined>((a, b) => (a && a.end >= b.end ? a : b), undefined);
  }
  return chain;
}
