import { BACKSLASH, ScriptError, SourceChar, cp } from './source';

const SIMPLE: ReadonlyMap<number, number> = new Map([
  [cp('a'), 0x07],
  [cp('f'), 0x0c],
  [cp('\n'), 0x0a],
  [cp('n'), 0x0a],
  [cp('r'), 0x0d],
  [cp('t'), 0x09],
  [cp('v'), 0x0b],
]);
const BASES: ReadonlyMap<number, number> = new Map([
  [cp('d'), 10],
  [cp('x'), 16],
  [cp('o'), 8],
]);

/**
 * GNU sed's first pass over a pattern or a replacement (normalize_text): \a \f \n \r \t \v, \dNNN \oNNN \xHH
 * and \cX become the character itself, which the regex parser then reads as it would read it typed
 * (`\x2e` is `.`, any character); in a replacement a produced `&` or `\` stays literal. Other escapes pass.
 */
export function normalizeEscapes(text: readonly SourceChar[], kind: 'regex' | 'replacement'): SourceChar[] {
  const out: SourceChar[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c.cp !== BACKSLASH || i + 1 >= text.length) {
      out.push(c);
      i++;
      continue;
    }
    const letter = text[i + 1]!.cp;
    const simple = SIMPLE.get(letter);
    const base = BASES.get(letter);
    if (simple !== undefined) {
      out.push({ cp: simple, at: c.at });
      i += 2;
    } else if (base !== undefined) {
      let value = 0;
      let j = i + 2;
      for (let max = 1; j < text.length && max <= 255; j++, max *= base) {
        const digit = parseInt(String.fromCodePoint(text[j]!.cp), 16);
        if (!(digit < base)) break;
        value = value * base + digit;
      }
      if (j === i + 2) {
        out.push({ cp: letter, at: c.at });
      } else {
        value &= 0xff;
        if (value >= 0x80) {
          throw new ScriptError(
            c.at,
            `\\${String.fromCodePoint(letter)} escape producing byte 0x${value.toString(16)}: only values below 0x80 (ASCII) are supported`,
          );
        }
        if (kind === 'replacement' && (value === cp('&') || value === BACKSLASH))
          out.push({ cp: BACKSLASH, at: c.at });
        out.push({ cp: value, at: c.at });
      }
      i = j;
    } else if (letter === cp('c')) {
      if (i + 2 >= text.length) {
        out.push({ cp: BACKSLASH, at: c.at });
        i += 2;
        continue;
      }
      const x = text[i + 2]!.cp;
      if (x >= 0x80) throw new ScriptError(text[i + 2]!.at, '\\c must be followed by an ASCII character');
      if (x === BACKSLASH && text[i + 3]?.cp !== BACKSLASH) {
        throw new ScriptError(c.at, 'recursive escaping after \\c not allowed');
      }
      out.push({ cp: (x >= 0x61 && x <= 0x7a ? x - 0x20 : x) ^ 0x40, at: c.at });
      i += x === BACKSLASH ? 4 : 3;
    } else {
      out.push(c, text[i + 1]!);
      i += 2;
    }
  }
  return out;
}
