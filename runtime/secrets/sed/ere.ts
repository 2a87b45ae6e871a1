import { parseBracket } from './bracket';
import { CharSet } from './charset';
import { caseFold, classSet, toUpper } from './ctype';
import { BACKSLASH, ScriptError, SourceChar, cp, show } from './source';

// A parser of POSIX extended regular expressions with GNU's extensions, following glibc's regcomp.c (the
// engine of GNU sed) decision for decision, so that what it accepts, refuses and means is what sed does.

export type Assertion = 'begin' | 'end' | 'word-boundary' | 'not-word-boundary' | 'word-start' | 'word-end';

export type Ast =
  /** glibc's NULL tree: an empty branch, or an element repeated {0}; `groups` are the groups that vanished. */
  | { kind: 'empty'; groups: number[] }
  | { kind: 'set'; set: CharSet }
  | { kind: 'assert'; what: Assertion }
  | { kind: 'group'; index: number; body: Ast }
  | { kind: 'concat'; items: Ast[] }
  | { kind: 'alt'; items: Ast[] }
  | { kind: 'repeat'; body: Ast; min: number; max: number /* -1: unbounded */; at: number };

export interface ParsedPattern {
  ast: Ast;
  groups: number;
  wordAssertions: boolean;
}

/** RE2's cap on a repeat count (and on the product of nested ones). */
export const REPEAT_LIMIT = 1000;
const RE_DUP_MAX = 0x7fff;

type TokenType =
  | 'char'
  | 'end'
  | 'trailing-backslash'
  | 'alt'
  | 'star'
  | 'plus'
  | 'question'
  | 'open-interval'
  | 'close-interval'
  | 'open-group'
  | 'close-group'
  | 'bracket'
  | 'period'
  | 'anchor'
  | 'backref'
  | 'word'
  | 'not-word'
  | 'space'
  | 'not-space';

interface Token {
  type: TokenType;
  /** The character of a 'char' token (upper-cased under I, as glibc reads it). */
  cp: number;
  anchor?: Assertion;
  len: number;
  at: number;
}

const SINGLE: Readonly<Record<string, TokenType>> = {
  '|': 'alt',
  '*': 'star',
  '+': 'plus',
  '?': 'question',
  '{': 'open-interval',
  '}': 'close-interval',
  '(': 'open-group',
  ')': 'close-group',
  '[': 'bracket',
  '.': 'period',
};
const ESCAPED: Readonly<Record<string, Partial<Token>>> = {
  '<': { type: 'anchor', anchor: 'word-start' },
  '>': { type: 'anchor', anchor: 'word-end' },
  b: { type: 'anchor', anchor: 'word-boundary' },
  B: { type: 'anchor', anchor: 'not-word-boundary' },
  '`': { type: 'anchor', anchor: 'begin' },
  "'": { type: 'anchor', anchor: 'end' },
  w: { type: 'word' },
  W: { type: 'not-word' },
  s: { type: 'space' },
  S: { type: 'not-space' },
};

export function parseEre(text: readonly SourceChar[], icase: boolean): ParsedPattern {
  return new EreParser(text, icase).parse();
}

class EreParser {
  private i = 0;
  private token!: Token;
  private groups = 0;
  private wordAssertions = false;

  constructor(
    private readonly text: readonly SourceChar[],
    private readonly icase: boolean,
  ) {}

  parse(): ParsedPattern {
    this.fetch();
    const ast = this.parseRegExp(0);
    return { ast, groups: this.groups, wordAssertions: this.wordAssertions };
  }

  private at(index: number): number {
    return this.text[index]?.at ?? this.text[this.text.length - 1]?.at ?? 0;
  }

  private fold(set: CharSet): CharSet {
    return this.icase ? caseFold(set) : set;
  }

  private upper(codePoint: number): number {
    return this.icase ? toUpper(codePoint) : codePoint;
  }

  private peek(): Token {
    const at = this.at(this.i);
    if (this.i >= this.text.length) return { type: 'end', cp: -1, len: 0, at };
    const c = this.text[this.i]!.cp;
    if (c === BACKSLASH) {
      if (this.i + 1 >= this.text.length) return { type: 'trailing-backslash', cp: c, len: 1, at };
      const next = this.text[this.i + 1]!.cp;
      if (next >= cp('1') && next <= cp('9')) return { type: 'backref', cp: next, len: 2, at };
      const special = ESCAPED[String.fromCodePoint(next)];
      if (special) return { type: 'char', cp: next, len: 2, at, ...special };
      return { type: 'char', cp: this.escapedLiteral(next, at), len: 2, at };
    }
    if (c === cp('^')) return { type: 'anchor', anchor: 'begin', cp: c, len: 1, at };
    if (c === cp('$')) return { type: 'anchor', anchor: 'end', cp: c, len: 1, at };
    const type = c < 0x80 ? SINGLE[String.fromCharCode(c)] : undefined;
    return { type: type ?? 'char', cp: type ? c : this.upper(c), len: 1, at };
  }

  /**
   * glibc reads the character after a backslash from the pattern as typed, not upper-cased: under I, `\q`
   * matches nothing (input characters are upper-cased) while `\Q` matches q and Q. A multibyte character
   * keeps its first byte as typed and takes the rest upper-cased; we take it only when that is a character.
   */
  private escapedLiteral(c: number, at: number): number {
    if (!this.icase || c < 0x80) return c;
    const typed = Buffer.from(String.fromCodePoint(c));
    const upper = Buffer.from(String.fromCodePoint(toUpper(c)));
    if (typed.length !== upper.length || typed[0] !== upper[0]) {
      throw new ScriptError(at, `escaped non-ASCII character '\\${show(c)}' with the I flag: not supported`);
    }
    return toUpper(c);
  }

  private fetch(): void {
    this.token = this.peek();
    this.i += this.token.len;
  }

  private parseRegExp(nest: number): Ast {
    const branches = [this.parseBranch(nest)];
    while (this.token.type === 'alt') {
      this.fetch();
      const t = this.token.type;
      const ends = t === 'alt' || t === 'end' || (nest > 0 && t === 'close-group');
      branches.push(ends ? { kind: 'empty', groups: [] } : this.parseBranch(nest));
    }
    return branches.length === 1 ? branches[0]! : { kind: 'alt', items: branches };
  }

  private parseBranch(nest: number): Ast {
    const items = [this.parseExpression(nest)];
    for (;;) {
      const t = this.token.type;
      if (t === 'alt' || t === 'end' || (nest > 0 && t === 'close-group')) break;
      items.push(this.parseExpression(nest));
    }
    const kept = items.filter((item) => item.kind !== 'empty' || item.groups.length > 0);
    if (kept.length === 0) return { kind: 'empty', groups: [] };
    return kept.length === 1 ? kept[0]! : { kind: 'concat', items: kept };
  }

  private parseExpression(nest: number): Ast {
    const token = this.token;
    let tree: Ast;
    switch (token.type) {
      case 'char':
      case 'close-interval':
        tree = { kind: 'set', set: this.fold(CharSet.of(token.cp)) };
        break;
      case 'open-group':
        tree = this.parseGroup(nest + 1, token);
        break;
      case 'bracket':
        tree = { kind: 'set', set: this.parseBracket(token) };
        break;
      case 'backref':
        throw new ScriptError(
          token.at,
          `backreference \\${String.fromCodePoint(token.cp)} in a pattern needs backtracking; not supported`,
        );
      case 'open-interval':
      case 'star':
      case 'plus':
      case 'question':
        throw new ScriptError(
          token.at,
          `invalid preceding regular expression: '${show(token.cp)}' has nothing to repeat`,
        );
      case 'close-group':
        throw new ScriptError(token.at, "unmatched ')'");
      case 'anchor':
        if (token.anchor!.startsWith('word') || token.anchor!.startsWith('not-word'))
          this.wordAssertions = true;
        // An anchor is never repeated: `^*` is an error, the `*` being read as a new expression.
        this.fetch();
        return { kind: 'assert', what: token.anchor! };
      case 'period':
        tree = { kind: 'set', set: CharSet.ALL };
        break;
      case 'word':
      case 'not-word':
      case 'space':
      case 'not-space': {
        const set = this.fold(classSet(token.type.endsWith('word') ? 'word' : 'space'));
        tree = { kind: 'set', set: token.type.startsWith('not') ? set.complement() : set };
        break;
      }
      case 'alt':
      case 'end':
        return { kind: 'empty', groups: [] };
      case 'trailing-backslash':
        throw new ScriptError(token.at, 'trailing backslash');
    }
    this.fetch();
    while (['star', 'plus', 'question', 'open-interval'].includes(this.token.type)) {
      tree = this.parseRepeat(tree, this.token);
    }
    return tree;
  }

  private parseGroup(nest: number, open: Token): Ast {
    const index = ++this.groups;
    this.fetch();
    let body: Ast = { kind: 'empty', groups: [] };
    if (this.token.type !== 'close-group') {
      body = this.parseRegExp(nest);
      if (!this.closesGroup()) throw new ScriptError(open.at, "unmatched '('");
    }
    return { kind: 'group', index, body };
  }

  private parseRepeat(elem: Ast, op: Token): Ast {
    let min: number;
    let max: number;
    if (op.type === 'open-interval') {
      min = this.fetchNumber();
      if (min === -1) {
        if (this.isComma()) min = 0;
        else throw this.badInterval(op);
      }
      max = -2;
      if (min !== -2) {
        if (this.token.type === 'close-interval') max = min;
        else if (this.isComma()) max = this.fetchNumber();
      }
      if (min === -2 || max === -2) {
        if (this.token.type === 'end') throw new ScriptError(op.at, "unmatched '{'");
        throw this.badInterval(op);
      }
      if ((max !== -1 && min > max) || this.token.type !== 'close-interval') throw this.badInterval(op);
      if ((max === -1 ? min : max) > RE_DUP_MAX) {
        throw new ScriptError(op.at, `repeat count over ${RE_DUP_MAX}: regular expression too big`);
      }
    } else {
      min = op.type === 'plus' ? 1 : 0;
      max = op.type === 'question' ? 1 : -1;
    }
    this.fetch();
    if (elem.kind === 'empty') return elem;
    if (min === 0 && max === 0) return { kind: 'empty', groups: groupsIn(elem) };
    if (Math.max(min, max) > REPEAT_LIMIT) {
      throw new ScriptError(
        op.at,
        `repeat count ${Math.max(min, max)} is over ${REPEAT_LIMIT}, the limit of the linear-time matcher`,
      );
    }
    return { kind: 'repeat', body: elem, min, max, at: op.at };
  }

  private closesGroup(): boolean {
    return this.token.type === 'close-group';
  }

  private isComma(): boolean {
    return this.token.type === 'char' && this.token.cp === cp(',');
  }

  private badInterval(op: Token): ScriptError {
    return new ScriptError(op.at, 'invalid content of \\{\\}: expected {n}, {n,}, {,m} or {n,m} with n <= m');
  }

  /** glibc's fetch_number: -1 for no digits, -2 for anything else than digits before ',' or '}'. */
  private fetchNumber(): number {
    let num = -1;
    for (;;) {
      this.fetch();
      const t = this.token;
      if (t.type === 'end') return -2;
      if (t.type === 'close-interval' || this.isComma()) return num;
      const digit = t.type === 'char' && t.cp >= cp('0') && t.cp <= cp('9') ? t.cp - cp('0') : -1;
      num = digit < 0 || num === -2 ? -2 : num === -1 ? digit : Math.min(RE_DUP_MAX + 1, num * 10 + digit);
    }
  }

  private parseBracket(open: Token): CharSet {
    const { set, end } = parseBracket(this.text, this.i, open.at, this.icase);
    this.i = end;
    return set;
  }
}

function groupsIn(ast: Ast): number[] {
  switch (ast.kind) {
    case 'empty':
      return ast.groups;
    case 'group':
      return [ast.index, ...groupsIn(ast.body)];
    case 'concat':
    case 'alt':
      return ast.items.flatMap(groupsIn);
    case 'repeat':
      return groupsIn(ast.body);
    default:
      return [];
  }
}
