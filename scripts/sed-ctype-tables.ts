// Regenerates runtime/secrets/sed/ctype-data.ts: the character classes and case mappings of GNU sed in the
// C.UTF-8 locale, read from the sed on this machine (one line per code point through `sed -E`).
// Usage: npx tsx scripts/sed-ctype-tables.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLASS_NAMES } from '../runtime/secrets/sed/ctype';

const CLASSES = CLASS_NAMES;
const NEWLINE = 0x0a;

/** Every scalar value but the newline (the line separator; classified by hand below). */
function codePoints(): number[] {
  const all: number[] = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) if (cp !== NEWLINE && (cp < 0xd800 || cp > 0xdfff)) all.push(cp);
  return all;
}

function sedLines(script: string, input: string): string[] {
  const out = execFileSync('sed', ['-E', script, input], {
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
    maxBuffer: 1 << 28,
    encoding: 'utf8',
  });
  return out.split('\n');
}

function ranges(members: number[]): number[][] {
  const out: number[][] = [];
  for (const cp of members) {
    const last = out[out.length - 1];
    if (last && last[1] === cp - 1) last[1] = cp;
    else out.push([cp, cp]);
  }
  return out;
}

/** "gap,length" pairs in base 36: gap from the previous range's end, then the range's length minus one. */
function encodeRanges(rs: number[][]): string {
  let next = 0;
  const parts: string[] = [];
  for (const [lo, hi] of rs) {
    parts.push((lo! - next).toString(36), (hi! - lo!).toString(36));
    next = hi! + 1;
  }
  return parts.join(',');
}

/** Runs of "gap,count,stride,delta": count code points from the gap on, stride apart, each mapped to cp + delta. */
function encodeMapping(pairs: Array<[number, number]>): string {
  const runs: Array<{ start: number; count: number; stride: number; delta: number }> = [];
  for (const [from, to] of pairs) {
    const run = runs[runs.length - 1];
    if (run && run.delta === to - from) {
      if (run.count === 1 && from - run.start <= 2) {
        run.stride = from - run.start;
        run.count = 2;
        continue;
      }
      if (from === run.start + run.count * run.stride) {
        run.count++;
        continue;
      }
    }
    runs.push({ start: from, count: 1, stride: 1, delta: to - from });
  }
  let next = 0;
  const parts: string[] = [];
  for (const { start, count, stride, delta } of runs) {
    parts.push((start - next).toString(36), count.toString(36), stride.toString(36), delta.toString(36));
    next = start + (count - 1) * stride + 1;
  }
  return parts.join(',');
}

function decodeMapping(encoded: string): Array<[number, number]> {
  const n = encoded.split(',').map((x) => parseInt(x, 36));
  const out: Array<[number, number]> = [];
  let next = 0;
  for (let i = 0; i < n.length; i += 4) {
    const start = next + n[i]!;
    for (let k = 0; k < n[i + 1]!; k++) out.push([start + k * n[i + 2]!, start + k * n[i + 2]! + n[i + 3]!]);
    next = start + (n[i + 1]! - 1) * n[i + 2]! + 1;
  }
  return out;
}

if (require.main === module) {
  const dir = mkdtempSync(join(tmpdir(), 'sed-ctype-'));
  const input = join(dir, 'code-points.txt');
  const all = codePoints();
  writeFileSync(input, all.map((cp) => String.fromCodePoint(cp)).join('\n') + '\n');
  const classes: Record<string, string> = {};
  for (const name of [...CLASSES, 'w']) {
    const pattern = name === 'w' ? '\\w' : `[[:${name}:]]`;
    const flags = sedLines(`s/^${pattern}$/1/;t;s/.*/0/`, input);
    const members = all.filter((_, i) => flags[i] === '1');
    // The newline is a control and a space character (isspace/iscntrl), nothing else.
    if (name === 'space' || name === 'cntrl') members.push(NEWLINE);
    members.sort((a, b) => a - b);
    classes[name] = encodeRanges(ranges(members));
  }
  if (classes.w !== encodeRanges(ranges([...decodeForCheck(classes.alnum!), 0x5f].sort((a, b) => a - b)))) {
    throw new Error('\\w is not [[:alnum:]_] in this sed: the matcher assumes it is');
  }
  delete classes.w;
  const mapping = (script: string): Array<[number, number]> => {
    const mapped = sedLines(script, input);
    const pairs: Array<[number, number]> = [];
    all.forEach((cp, i) => {
      const to = mapped[i]!.codePointAt(0)!;
      if ([...mapped[i]!].length !== 1)
        throw new Error(`case mapping of U+${cp.toString(16)} is not one character`);
      if (to !== cp) pairs.push([cp, to]);
    });
    return pairs;
  };
  const upperPairs = mapping('s/.*/\\U&/');
  const lowerPairs = mapping('s/.*/\\L&/');
  const upper = encodeMapping(upperPairs);
  const lower = encodeMapping(lowerPairs);
  if (JSON.stringify(decodeMapping(upper)) !== JSON.stringify(upperPairs))
    throw new Error('upper map round trip');
  if (JSON.stringify(decodeMapping(lower)) !== JSON.stringify(lowerPairs))
    throw new Error('lower map round trip');
  rmSync(dir, { recursive: true });
  const version = execFileSync('sed', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const libc = execFileSync('ldd', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const body = [
    `// Generated by scripts/sed-ctype-tables.ts from ${version} with ${libc}, LC_ALL=C.UTF-8. Do not edit.`,
    '// Classes: base-36 "gap,length-1" pairs of code point ranges. Case maps: base-36 "gap,count,stride,delta" runs.',
    'export const CLASS_RANGES: Readonly<Record<string, string>> = {',
    ...CLASSES.map((name) => `  ${name}: '${classes[name]}',`),
    '};',
    `export const TO_UPPER = '${upper}';`,
    `export const TO_LOWER = '${lower}';`,
    '',
  ].join('\n');
  writeFileSync(join(__dirname, '..', 'runtime', 'secrets', 'sed', 'ctype-data.ts'), body);
  console.log('runtime/secrets/sed/ctype-data.ts written');
}

function decodeForCheck(encoded: string): number[] {
  const numbers = encoded.split(',').map((n) => parseInt(n, 36));
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < numbers.length; i += 2) {
    const lo = next + numbers[i]!;
    const hi = lo + numbers[i + 1]!;
    for (let cp = lo; cp <= hi; cp++) out.push(cp);
    next = hi + 1;
  }
  return out;
}
