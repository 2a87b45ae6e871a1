export const MAX_CODE_POINT = 0x10ffff;

/** An immutable set of code points: sorted, disjoint, non-adjacent [lo, hi] ranges, flattened. */
export class CharSet {
  private constructor(private readonly bounds: readonly number[]) {}

  static readonly EMPTY = new CharSet([]);
  static readonly ALL = new CharSet([0, MAX_CODE_POINT]);

  static of(...codePoints: number[]): CharSet {
    return CharSet.fromRanges(codePoints.map((cp) => [cp, cp]));
  }

  static range(lo: number, hi: number): CharSet {
    return CharSet.fromRanges([[lo, hi]]);
  }

  static fromRanges(ranges: ReadonlyArray<readonly [number, number]>): CharSet {
    const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
    const bounds: number[] = [];
    for (const [lo, hi] of sorted) {
      const last = bounds.length - 1;
      if (last > 0 && lo <= bounds[last]! + 1) bounds[last] = Math.max(bounds[last]!, hi);
      else bounds.push(lo, hi);
    }
    return new CharSet(bounds);
  }

  get isEmpty(): boolean {
    return this.bounds.length === 0;
  }

  has(cp: number): boolean {
    let lo = 0;
    let hi = this.bounds.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (cp < this.bounds[2 * mid]!) hi = mid - 1;
      else if (cp > this.bounds[2 * mid + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  ranges(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.bounds.length; i += 2) out.push([this.bounds[i]!, this.bounds[i + 1]!]);
    return out;
  }

  union(other: CharSet): CharSet {
    return CharSet.fromRanges([...this.ranges(), ...other.ranges()]);
  }

  complement(): CharSet {
    const out: Array<[number, number]> = [];
    let next = 0;
    for (const [lo, hi] of this.ranges()) {
      if (lo > next) out.push([next, lo - 1]);
      next = hi + 1;
    }
    if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
    return CharSet.fromRanges(out);
  }

  minus(other: CharSet): CharSet {
    return this.complement().union(other).complement();
  }

  /** RE2 syntax for the set, one character wide; the empty set never matches. */
  toRe2(): string {
    if (this.isEmpty) return `[^\\x{0}-\\x{${MAX_CODE_POINT.toString(16)}}]`;
    const inverse = this.complement();
    if (!inverse.isEmpty && inverse.bounds.length < this.bounds.length) {
      return `[^${inverse.ranges().map(rangeText).join('')}]`;
    }
    return `[${this.ranges().map(rangeText).join('')}]`;
  }
}

function rangeText([lo, hi]: [number, number]): string {
  const cp = (n: number): string => `\\x{${n.toString(16)}}`;
  return lo === hi ? cp(lo) : `${cp(lo)}-${cp(hi)}`;
}
