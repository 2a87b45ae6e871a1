import {
  compareDots,
  contains,
  contextOf,
  dotKey,
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
  const entries = new Map<string, readonly Dot[]>();
  for (const [element, dotsA] of a.entries) {
    const dotsB = b.entries.get(element);
    const kept = dotsB
      ? mergeDots(dotsA, a.context, dotsB, b.context)
      : dotsA.filter((dot) => !contains(b.context, dot));
    if (kept.length > 0) entries.set(element, kept);
  }
  for (const [element, dotsB] of b.entries) {
    if (a.entries.has(element)) continue;
    const kept = dotsB.filter((dot) => !contains(a.context, dot));
    if (kept.length > 0) entries.set(element, kept);
  }
  return { entries, context: union(a.context, b.context) };
}

function mergeDots(
  dotsA: readonly Dot[],
  contextA: CausalContext,
  dotsB: readonly Dot[],
  contextB: CausalContext,
): Dot[] {
  const inA = new Set(dotsA.map(dotKey));
  const inB = new Set(dotsB.map(dotKey));
  const kept = dotsA.filter((dot) => inB.has(dotKey(dot)) || !contains(contextB, dot));
  for (const dot of dotsB) if (!inA.has(dotKey(dot)) && !contains(contextA, dot)) kept.push(dot);
  return kept.sort(compareDots);
}
