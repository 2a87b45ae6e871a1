import { CharSet } from './charset';
import { caseFold, classSet, isClassName, toUpper } from './ctype';
import { ScriptError, SourceChar, cp, show } from './source';

/**
 * A bracket expression from just after its `[`, as glibc's parse_bracket_exp reads it in C.UTF-8 (collation in
 * code point order): the characters it matches, and the index just after its `]`.
 */
export function parseBracket(
  text: readonly SourceChar[],
  start: number,
  openAt: number,
  icase: boolean,
): { set: CharSet; end: number } {
  return new BracketParser(text, start, openAt, icase).parse();
}

type BracketTokenType = 'char' | 'end' | 'range' | 'close' | 'negate' | 'collating' | 'equivalence' | 'class';
interface BracketToken {
  type: BracketTokenType;
  cp: number;
  len: number;
}
type Element =
  | { type: 'char'; cp: number; multibyte: boolean; at: number }
  | { type: 'collating' | 'equivalence' | 'class'; name: number[]; at: number };

class BracketParser {
  private set = CharSet.EMPTY;

  constructor(
    private readonly text: readonly SourceChar[],
    private i: number,
    private readonly openAt: number,
    private readonly icase: boolean,
  ) {}

  parse(): { set: CharSet; end: number } {
    let token = this.peek();
    if (token.type === 'end') throw this.unmatched();
    const negate = token.type === 'negate';
    if (negate) {
      this.i += token.len;
      token = this.peek();
      if (token.type === 'end') throw this.unmatched();
    }
    if (token.type === 'close') token = { ...token, type: 'char' };
    for (let first = true; ; first = false) {
      const start = this.element(token, first);
      token = this.peek();
      let end: Element | undefined;
      if (start.type !== 'class' && start.type !== 'equivalence') {
        if (token.type === 'end') throw this.unmatched();
        if (token.type === 'range') {
          this.i += token.len;
          const token2 = this.peek();
          if (token2.type === 'end') throw this.unmatched();
          if (token2.type === 'close') {
            this.i -= token.len;
            token = { ...token, type: 'char' };
          } else {
            end = this.element(token2, true);
            token = this.peek();
          }
        }
      }
      this.add(start, end);
      if (token.type === 'end') throw this.unmatched();
      if (token.type === 'close') break;
    }
    const folded = this.icase ? caseFold(this.set) : this.set;
    return { set: negate ? folded.complement() : folded, end: this.i + 1 };
  }

  private unmatched(): ScriptError {
    return new ScriptError(this.openAt, "unmatched '['");
  }

  private char(index: number): number {
    const c = this.text[index]!.cp;
    return this.icase ? toUpper(c) : c;
  }

  private peek(): BracketToken {
    if (this.i >= this.text.length) return { type: 'end', cp: -1, len: 0 };
    const c = this.char(this.i);
    if (c === cp('[')) {
      const next = this.i + 1 < this.text.length ? this.text[this.i + 1]!.cp : 0;
      const type = ({ '.': 'collating', '=': 'equivalence', ':': 'class' } as const)[
        String.fromCodePoint(next)
      ];
      if (type) return { type, cp: next, len: 2 };
    }
    const type = ({ '-': 'range', ']': 'close', '^': 'negate' } as const)[String.fromCodePoint(c)];
    return { type: type ?? 'char', cp: c, len: 1 };
  }

  private element(token: BracketToken, acceptHyphen: boolean): Element {
    const at = this.text[this.i]!.at;
    const c = this.char(this.i);
    if (c >= 0x80) {
      this.i++;
      return { type: 'char', cp: c, multibyte: true, at };
    }
    this.i += token.len;
    if (token.type === 'collating' || token.type === 'equivalence' || token.type === 'class') {
      return { type: token.type, name: this.symbol(token), at };
    }
    if (token.type === 'range' && !acceptHyphen && this.peek().type !== 'close') {
      throw new ScriptError(at, "invalid range end: '-' must be first, last or a range's end");
    }
    return { type: 'char', cp: token.cp, multibyte: false, at };
  }

  /** The name of [:name:], [.name.] or [=name=], read up to the delimiter followed by ']'. */
  private symbol(token: BracketToken): number[] {
    const name: number[] = [];
    let bytes = 0;
    if (this.i >= this.text.length) throw this.unmatched();
    for (;;) {
      if (bytes >= 32) throw this.unmatched();
      const typed = this.text[this.i]!.cp;
      const c = token.type === 'class' ? typed : this.char(this.i);
      this.i++;
      if (this.i >= this.text.length) throw this.unmatched();
      if (c === token.cp && this.text[this.i]!.cp === cp(']')) break;
      name.push(c);
      bytes += Buffer.byteLength(String.fromCodePoint(c));
    }
    this.i++;
    return name;
  }

  private add(start: Element, end: Element | undefined): void {
    if (end) {
      const lo = this.endpoint(start);
      const hi = this.endpoint(end);
      if (lo > hi) {
        throw new ScriptError(start.at, `invalid range end: '${show(lo)}-${show(hi)}' goes backwards`);
      }
      this.set = this.set.union(CharSet.range(lo, hi));
      return;
    }
    switch (start.type) {
      case 'char':
        this.set = this.set.union(CharSet.of(start.cp));
        return;
      case 'collating':
      case 'equivalence':
        this.set = this.set.union(CharSet.of(this.singleByte(start)));
        return;
      case 'class': {
        const name = String.fromCodePoint(...start.name);
        if (!isClassName(name)) throw new ScriptError(start.at, `unknown character class [:${name}:]`);
        // glibc: under I, [:upper:] and [:lower:] are [:alpha:].
        const folded = this.icase && (name === 'upper' || name === 'lower') ? 'alpha' : name;
        this.set = this.set.union(classSet(folded));
      }
    }
  }

  /** A range's end: a single-byte character ([.c.] included); in C.UTF-8 other characters have no collation. */
  private endpoint(element: Element): number {
    if (element.type !== 'char') {
      if (element.type === 'collating') return this.singleByte(element);
      throw new ScriptError(element.at, 'invalid range end: a range cannot start or end with a class');
    }
    if (!element.multibyte) return element.cp;
    throw new ScriptError(
      element.at,
      `invalid collation character '${show(element.cp)}': range ends must be ASCII characters in C.UTF-8`,
    );
  }

  private singleByte(element: Element & { name: number[] }): number {
    const [c] = element.name;
    if (element.name.length !== 1 || c === undefined || c >= 0x80) {
      const name = String.fromCodePoint(...element.name);
      throw new ScriptError(
        element.at,
        `invalid collation character '${name}': only one ASCII character is allowed`,
      );
    }
    return c;
  }
}
