import { CharSet } from './charset';
import { CLASS_RANGES, TO_LOWER, TO_UPPER } from './ctype-data';

// GNU sed's character classes and case mappings in C.UTF-8 (glibc's tables, not JavaScript's: they differ
// in Unicode version and in letters such as U+0130 or U+1F80 whose full case mapping has several characters).

export const CLASS_NAMES = [
  'alpha',
  'upper',
  'lower',
  'digit',
  'xdigit',
  'alnum',
  'space',
  'blank',
  'punct',
  'print',
  'graph',
  'cntrl',
] as const;
export type ClassName = (typeof CLASS_NAMES)[number];

export function isClassName(name: string): name is ClassName {
  return (CLASS_NAMES as readonly string[]).includes(name);
}

const classes = new Map<string, CharSet>();

export function classSet(name: ClassName | 'word'): CharSet {
  let set = classes.get(name);
  if (!set) {
    set = name === 'word' ? classSet('alnum').union(CharSet.of(0x5f)) : decodeRanges(CLASS_RANGES[name]!);
    classes.set(name, set);
  }
  return set;
}

function decodeRanges(encoded: string): CharSet {
  const numbers = encoded.split(',').map((n) => parseInt(n, 36));
  const ranges: Array<[number, number]> = [];
  let next = 0;
  for (let i = 0; i < numbers.length; i += 2) {
    const lo = next + numbers[i]!;
    const hi = lo + numbers[i + 1]!;
    ranges.push([lo, hi]);
    next = hi + 1;
  }
  return CharSet.fromRanges(ranges);
}

function decodeMapping(encoded: string): Map<number, number> {
  const numbers = encoded.split(',').map((n) => parseInt(n, 36));
  const map = new Map<number, number>();
  let next = 0;
  for (let i = 0; i < numbers.length; i += 4) {
    const start = next + numbers[i]!;
    const [count, stride, delta] = [numbers[i + 1]!, numbers[i + 2]!, numbers[i + 3]!];
    for (let k = 0; k < count; k++) map.set(start + k * stride, start + k * stride + delta);
    next = start + (count - 1) * stride + 1;
  }
  return map;
}

let upper: Map<number, number> | undefined;
let lower: Map<number, number> | undefined;

/** towupper */
export function toUpper(cp: number): number {
  upper ??= decodeMapping(TO_UPPER);
  return upper.get(cp) ?? cp;
}

/** towlower */
export function toLower(cp: number): number {
  lower ??= decodeMapping(TO_LOWER);
  return lower.get(cp) ?? cp;
}

let changedByUpper: CharSet | undefined;

/**
 * The characters that match under the I flag a pattern element matching `set`. glibc's regex upper-cases
 * the pattern and every input character (towupper) before comparing, so that is {x : towupper(x) in set}.
 */
export function caseFold(set: CharSet): CharSet {
  upper ??= decodeMapping(TO_UPPER);
  changedByUpper ??= CharSet.of(...upper.keys());
  const folded = [...upper].filter(([, to]) => set.has(to)).map(([from]) => from);
  return set.minus(changedByUpper).union(CharSet.of(...folded));
}
