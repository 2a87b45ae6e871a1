/** The union of two maps, keeping per key the value `wins` prefers (the same map when one side is empty). */
export function joinMaps<V>(
  a: ReadonlyMap<string, V>,
  b: ReadonlyMap<string, V>,
  wins: (candidate: V, current: V) => boolean,
): ReadonlyMap<string, V> {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const joined = new Map(a);
  for (const [key, value] of b) {
    const current = joined.get(key);
    if (current === undefined || wins(value, current)) joined.set(key, value);
  }
  return joined;
}
