import { toLower, toUpper } from './ctype';
import { BACKSLASH, SourceChar, cp } from './source';

// The right-hand side of s, as GNU sed's setup_replacement and append_replacement read and expand it,
// quirks of the case conversions included (e.g. \u\L, or \u before an empty group).

const ASIS = 0;
const UPPER = 1;
const LOWER = 2;
const UPPER_FIRST = 4;
const LOWER_FIRST = 8;
const FIRST = UPPER_FIRST | LOWER_FIRST;

interface Piece {
  /** Literal text before the reference, converted with `type`. */
  text: string;
  /** 0 for &, 1-9 for \1-\9, -1 for none. */
  group: number;
  type: number;
}

export interface Replacement {
  readonly pieces: readonly Piece[];
  /** The highest group referenced, with where in the script (or -1). */
  readonly maxGroup: number;
  readonly maxGroupAt: number;
}

export function parseReplacement(text: readonly SourceChar[]): Replacement {
  const pieces: Piece[] = [];
  let type = ASIS;
  let saved = ASIS;
  let literal = '';
  let maxGroup = -1;
  let maxGroupAt = -1;
  const cut = (group: number): Piece => {
    const piece = { text: literal, group, type };
    pieces.push(piece);
    literal = '';
    type = saved;
    return piece;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!.cp;
    if (c === cp('&')) {
      cut(0);
    } else if (c !== BACKSLASH) {
      literal += String.fromCodePoint(c);
    } else if (i + 1 === text.length) {
      cut(-1).text += '\\';
    } else {
      const piece = cut(-1);
      const next = text[++i]!.cp;
      const letter = String.fromCodePoint(next);
      if (next >= cp('0') && next <= cp('9')) {
        piece.group = next - cp('0');
        if (piece.group > maxGroup) [maxGroup, maxGroupAt] = [piece.group, text[i - 1]!.at];
      } else if (letter === 'L' || letter === 'U' || letter === 'E') {
        type = saved = letter === 'L' ? LOWER : letter === 'U' ? UPPER : ASIS;
      } else if (letter === 'l' || letter === 'u') {
        saved = type;
        type |= letter === 'l' ? LOWER_FIRST : UPPER_FIRST;
      } else {
        piece.text += letter;
      }
    }
  }
  if (literal !== '') cut(-1);
  return { pieces, maxGroup, maxGroupAt };
}

/** Expands the replacement for one match; `bounds` as a Search returns them (groups past its end are unset). */
export function expand(replacement: Replacement, line: string, bounds: Int32Array): string {
  let out = '';
  let pending = 0;
  for (const piece of replacement.pieces) {
    // A \u or \l whose group was empty applies to the next piece, unless that one has its own.
    let type = piece.type & FIRST ? piece.type : piece.type | pending;
    pending = 0;
    if (piece.text !== '') {
      out += convert(piece.text, type);
      type &= ~FIRST;
    }
    if (piece.group < 0 || 2 * piece.group >= bounds.length) continue;
    const [start, end] = [bounds[2 * piece.group]!, bounds[2 * piece.group + 1]!];
    if (start === end) {
      if (piece.type & FIRST) pending = type & FIRST;
    } else {
      out += convert(line.slice(start, end), type);
    }
  }
  return out;
}

/** str_append_modified: towupper/towlower per character; a NUL character ends the conversion. */
function convert(text: string, type: number): string {
  if (type === ASIS) return text;
  let out = '';
  for (let i = 0; i < text.length;) {
    const c = text.codePointAt(i)!;
    if (c === 0) return out + text.slice(i);
    const width = c > 0xffff ? 2 : 1;
    if (type & FIRST) {
      out += String.fromCodePoint(type & UPPER_FIRST ? toUpper(c) : toLower(c));
      type &= ~FIRST;
      if (type === ASIS) return out + text.slice(i + width);
    } else {
      out += String.fromCodePoint(type & UPPER ? toUpper(c) : toLower(c));
    }
    i += width;
  }
  return out;
}
