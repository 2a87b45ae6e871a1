import {
  compareDots,
  contains,
  contextOf,
  EMPTY_CONTEXT,
  nextDot,
  union,
  type CausalContext,
  type Dot,
} from './causal-context';

/**
 * An add-wins observed-remove set without tombstones (the optimized OR-Set, in its delta-state form):
 * each present element carries the dots of the adds that put it there; a causal context records every dot
 * the replica has seen. Removing an element forgets its dots (they stay covered by the context), so a
 * remove only defeats the adds it observed, and a concurrent add wins. Metadata is O(live elements +
 * replicas) once the context is compact.
 */
export interface ORSet {
  readonly entries: ReadonlyMap<string, readonly Dot[]>;
  readonly context: CausalContext;
}

export const emptyORSet = (): ORSet => ({ entries: new Map(), context: EMPTY_CONTEXT });

export const orsetHas = (set: ORSet, element: string): boolean => set.entries.has(element);

export const orsetValues = (set: ORSet): string[] => [...set.entries.keys()].sort();

/** The delta of adding `element` at `replica`: a fresh dot for it, superseding the dots it had. */
export function orsetAdd(set: ORSet, replica: string, element: string): ORSet {
  const dot = nextDot(set.context, replica);
  const previous = set.entries.get(element) ?? [];
  return { entries: new Map([[element, [dot]]]), context: contextOf([dot, ...previous]) };
}

/** The delta of removing `element`: the dots it was observed with, and no entry. */
export function orsetRemove(set: ORSet, element: string): ORSet {
  return { entries: new Map(), context: contextOf(set.entries.get(element) ?? []) };
}

/**
 * Keeps a dot when both sides have it, or when one side has it and the other has not seen it; a dot one
 * side has seen but no longer holds was removed there.
 */
export function orsetMerge(a: ORSet, b: ORSet): ORSet {
  // Start from a bulk copy of one side and touch only the entries the merge changes.
  const entries = new Map(a.entries);
  b.entries.forEach((dotsB, element) => {
    const dotsA = a.entries.get(element);
    let kept: readonly Dot[];
    if (dotsA === undefined) kept = unseenBy(dotsB, a.context);
    else if (sameDots(dotsA, dotsB)) return;
    else kept = mergeDots(dotsA, a.context, dotsB, b.context);
    if (kept.length > 0) entries.set(element, kept);
    else entries.delete(element);
  });
  // Elements only in a lose the dots b has seen (b removed them); most have none, which costs no lookup.
  a.entries.forEach((dotsA, element) => {
    const kept = unseenBy(dotsA, b.context);
    if (kept === dotsA || b.entries.has(element)) return;
    if (kept.length > 0) entries.set(element, kept);
    else entries.delete(element);
  });
  return { entries, context: union(a.context, b.context) };
}

/** The dots the other side has not seen (the same array when that is all of them: merges stay cheap). */
function unseenBy(dots: readonly Dot[], context: CausalContext): readonly Dot[] {
  for (const dot of dots) {
    if (contains(context, dot)) return dots.filter((d) => !contains(context, d));
  }
  return dots;
}

function sameDots(a: readonly Dot[], b: readonly Dot[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((dot, i) => dot[0] === b[i]?.[0] && dot[1] === b[i]?.[1]);
}

function mergeDots(
  dotsA: readonly Dot[],
  contextA: CausalContext,
  dotsB: readonly Dot[],
  contextB: CausalContext,
): Dot[] {
  // Dot lists are short (one per concurrent add): linear scans beat building sets.
  const kept: Dot[] = [];
  for (const dot of dotsA) if (includesDot(dotsB, dot) || !contains(contextB, dot)) kept.push(dot);
  for (const dot of dotsB) if (!includesDot(dotsA, dot) && !contains(contextA, dot)) kept.push(dot);
  return kept.length > 1 ? kept.sort(compareDots) : kept;
}

const includesDot = (dots: readonly Dot[], dot: Dot): boolean =>
  dots.some((d) => d[0] === dot[0] && d[1] === dot[1]);
