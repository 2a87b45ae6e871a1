import {
  compareDots,
  contains,
  contextOf,
  EMPTY_CONTEXT,
  foldContext,
  nextDot,
  union,
  type CausalContext,
  type Dot,
} from './causal-context';

/** One present element and the dots of the adds that put it there (sorted: replica, then counter). */
export type ORSetEntry = readonly [element: string, dots: readonly Dot[]];

/**
 * An add-wins observed-remove set without tombstones (the optimized OR-Set, in its delta-state form):
 * each present element carries the dots of the adds that put it there; a causal context records every dot
 * the replica has seen. Removing an element forgets its dots (they stay covered by the context), so a
 * remove only defeats the adds it observed, and a concurrent add wins. Metadata is O(live elements +
 * replicas) once the context is compact. Entries are kept sorted by element, so a merge is one linear
 * pass over both sides.
 */
export interface ORSet {
  readonly entries: readonly ORSetEntry[];
  readonly context: CausalContext;
  /**
   * The elements this state speaks for (sorted, distinct), when it speaks only for some: a delta's (its
   * context holds only dots of these elements), so a store keeping one item per element knows which items
   * it touches. Undefined in a full state, which speaks for every element.
   */
  readonly scope?: readonly string[];
}

export const emptyORSet = (): ORSet => ({ entries: [], context: EMPTY_CONTEXT });

const byString = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** Builds a set from entries in whatever order (sorted here), e.g. when decoding; `scope` as `ORSet.scope`. */
export function orsetFromEntries(
  entries: Iterable<ORSetEntry>,
  context: CausalContext,
  scope?: readonly string[],
): ORSet {
  const sorted = [...entries].sort(([x], [y]) => byString(x, y));
  return scope === undefined ? { entries: sorted, context } : { entries: sorted, context, scope };
}

function indexOf(set: ORSet, element: string): number {
  let low = 0;
  let high = set.entries.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const candidate = (set.entries[middle] as ORSetEntry)[0];
    if (candidate === element) return middle;
    if (candidate < element) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

/** The dots an element is present with (none when absent). */
export function orsetDots(set: ORSet, element: string): readonly Dot[] {
  const index = indexOf(set, element);
  return index < 0 ? [] : (set.entries[index] as ORSetEntry)[1];
}

export const orsetHas = (set: ORSet, element: string): boolean => indexOf(set, element) >= 0;

export const orsetValues = (set: ORSet): string[] => set.entries.map(([element]) => element);

export const orsetSize = (set: ORSet): number => set.entries.length;

/** The delta of adding `element` at `replica`: a fresh dot for it, superseding the dots it had. */
export function orsetAdd(set: ORSet, replica: string, element: string): ORSet {
  const dot = nextDot(set.context, replica);
  return {
    entries: [[element, [dot]]],
    context: contextOf([dot, ...orsetDots(set, element)]),
    scope: [element],
  };
}

/** The delta of removing `element`: the dots it was observed with, and no entry. */
export function orsetRemove(set: ORSet, element: string): ORSet {
  return { entries: [], context: contextOf(orsetDots(set, element)), scope: [element] };
}

/**
 * Folds `group`'s replicas with epochs before `beforeMs`: the context stops listing them and counts all
 * their dots as seen. Present elements keep their dots. Only the group's own region folds, once its state
 * holds everything those replicas did (see the sync service).
 */
export function orsetFold(set: ORSet, group: string, beforeMs: number): ORSet {
  const context = foldContext(set.context, group, beforeMs);
  return context === set.context ? set : { ...set, context };
}

/**
 * Keeps a dot when both sides have it, or when one side has it and the other has not seen it; a dot one
 * side has seen but no longer holds was removed there. One pass over both sorted entry lists.
 */
export function orsetMerge(a: ORSet, b: ORSet): ORSet {
  const left = a.entries;
  const right = b.entries;
  const merged: ORSetEntry[] = [];
  let i = 0;
  let j = 0;
  const keep = (entry: ORSetEntry, dots: readonly Dot[]) => {
    if (dots.length > 0) merged.push(dots === entry[1] ? entry : [entry[0], dots]);
  };
  while (i < left.length || j < right.length) {
    const fromA = left[i];
    const fromB = right[j];
    if (fromB === undefined || (fromA !== undefined && fromA[0] < fromB[0])) {
      keep(fromA as ORSetEntry, unseenBy((fromA as ORSetEntry)[1], b.context));
      i++;
    } else if (fromA === undefined || fromB[0] < fromA[0]) {
      keep(fromB, unseenBy(fromB[1], a.context));
      j++;
    } else {
      keep(
        fromA,
        sameDots(fromA[1], fromB[1]) ? fromA[1] : mergeDots(fromA[1], a.context, fromB[1], b.context),
      );
      i++;
      j++;
    }
  }
  const context = union(a.context, b.context);
  if (a.scope === undefined || b.scope === undefined) return { entries: merged, context };
  return { entries: merged, context, scope: unionOfSorted(a.scope, b.scope) };
}

/** The sorted union of two sorted lists of distinct elements (the same array when one holds the other). */
function unionOfSorted(a: readonly string[], b: readonly string[]): readonly string[] {
  if (a === b) return a;
  const joined: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x < y)) {
      joined.push(x as string);
      i++;
    } else if (x === undefined || y < x) {
      joined.push(y);
      j++;
    } else {
      joined.push(x);
      i++;
      j++;
    }
  }
  return joined.length === a.length ? a : joined.length === b.length ? b : joined;
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
