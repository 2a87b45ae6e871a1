/** A grow-only counter: one non-decreasing entry per replica; the value is their sum. */
export type GCounter = Readonly<Record<string, number>>;

export const emptyGCounter = (): GCounter => ({});

export function gcounterValue(counter: GCounter): number {
  return Object.values(counter).reduce((sum, n) => sum + n, 0);
}

/** The delta of adding `by` (>= 0) at `replica`: that replica's new entry. */
export function gcounterIncrement(counter: GCounter, replica: string, by: number): GCounter {
  if (!Number.isSafeInteger(by) || by < 0)
    throw new RangeError(`increment must be a non-negative integer, got ${by}`);
  return { [replica]: (counter[replica] ?? 0) + by };
}

/** Pointwise maximum: commutative, associative, idempotent. */
export function gcounterMerge(a: GCounter, b: GCounter): GCounter {
  const merged: Record<string, number> = { ...a };
  for (const [replica, n] of Object.entries(b)) if (n > (merged[replica] ?? 0)) merged[replica] = n;
  return merged;
}
