import { normalizeEscapes } from './escapes';
import { CompiledRegex } from './regex';
import { Replacement, parseReplacement } from './replacement';
import { BACKSLASH, NEWLINE, ScriptError, SourceChar, cp, show } from './source';

// The script reader of GNU sed's compile.c (compile_program, match_slash, snarf_char_class, mark_subst_opts),
// restricted to s commands.

export interface Command {
  readonly regex: CompiledRegex;
  readonly replacement: Replacement;
  readonly global: boolean;
  /** Replace the Nth match (and, with g, every later one); 1 without a number. */
  readonly occurrence: number;
}

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r'].map(cp));
const BLANK = new Set([' ', '\t'].map(cp));
const ADDRESS_START = new Set([...'0123456789/\\$,+~!'].map(cp));
const UNSUPPORTED_FLAGS: Readonly<Record<string, string>> = {
  p: 'flag p (print): not supported',
  w: 'flag w (write to a file): not supported',
  e: 'flag e (execute the pattern space): not supported',
  m: 'flag m (multiline mode): not supported',
  M: 'flag M (multiline mode): not supported',
};

export function parseScript(script: string): Command[] {
  return new ScriptReader([...script].map((c) => c.codePointAt(0)!)).read();
}

class ScriptReader {
  private i = 0;
  private readonly commands: Command[] = [];

  constructor(private readonly chars: readonly number[]) {}

  read(): Command[] {
    const { chars } = this;
    if (chars[0] === cp('#') && chars[1] === cp('n')) {
      throw new ScriptError(0, "a script starting with '#n' means sed -n (print nothing): not supported");
    }
    for (;;) {
      while (this.i < chars.length && (chars[this.i] === cp(';') || SPACE.has(chars[this.i]!))) this.i++;
      if (this.i >= chars.length) return this.commands;
      const c = chars[this.i]!;
      if (c === cp('#')) {
        while (this.i < chars.length && chars[this.i] !== NEWLINE) this.i++;
      } else if (c === cp('s')) {
        this.commands.push(this.substitution());
      } else if (ADDRESS_START.has(c)) {
        throw new ScriptError(this.i, 'addresses are not supported: an s command applies to every line');
      } else {
        throw new ScriptError(this.i, `unknown command '${show(c)}': only s commands are allowed`);
      }
    }
  }

  private substitution(): Command {
    const start = this.i++;
    if (this.i >= this.chars.length) throw this.unterminated(this.i);
    const delimiter = this.chars[this.i++]!;
    if (delimiter >= 0x80)
      throw new ScriptError(this.i - 1, 'delimiter character is not a single-byte character');
    const pattern = this.delimited(delimiter, true);
    const replacement = parseReplacement(normalizeEscapes(this.delimited(delimiter, false), 'replacement'));
    const flags = this.flags();
    let regex: CompiledRegex;
    if (pattern.length > 0) {
      regex = new CompiledRegex(normalizeEscapes(pattern, 'regex'), flags.icaseAt >= 0);
    } else {
      // GNU sed reuses the last regex it matched with. Every command runs on every line, so that is the
      // regex of the nearest s command before this one; with none, sed fails on the first line.
      if (flags.icaseAt >= 0)
        throw new ScriptError(flags.icaseAt, 'cannot specify modifiers on empty regexp');
      const previous = this.commands[this.commands.length - 1];
      if (!previous) throw new ScriptError(start, 'empty regex with no previous regex to reuse');
      regex = previous.regex;
    }
    if (replacement.maxGroup > regex.groups) {
      throw new ScriptError(
        replacement.maxGroupAt,
        `invalid reference \\${replacement.maxGroup} on s command's RHS`,
      );
    }
    return { regex, replacement, global: flags.global, occurrence: flags.occurrence };
  }

  private unterminated(at: number): ScriptError {
    return new ScriptError(at, 'unterminated s command');
  }

  /** match_slash: the text up to the delimiter; `\` + delimiter is the delimiter itself (`\&` stays in a replacement). */
  private delimited(delimiter: number, regex: boolean): SourceChar[] {
    const { chars } = this;
    const text: SourceChar[] = [];
    for (;;) {
      if (this.i >= chars.length || chars[this.i] === NEWLINE) throw this.unterminated(this.i);
      const c = chars[this.i]!;
      const at = this.i++;
      if (c === delimiter) return text;
      if (c === BACKSLASH) {
        if (this.i >= chars.length) throw this.unterminated(this.i);
        const next = chars[this.i++]!;
        const kept = next !== NEWLINE && (next !== delimiter || (!regex && next === cp('&')));
        if (kept) text.push({ cp: BACKSLASH, at });
        text.push({ cp: next, at: kept ? at + 1 : at });
      } else {
        text.push({ cp: c, at });
        if (c === cp('[') && regex) this.bracket(text);
      }
    }
  }

  /** snarf_char_class: a bracket expression is copied as is, the delimiter included, up to its `]`. */
  private bracket(text: SourceChar[]): void {
    const { chars } = this;
    const take = (): void => {
      text.push({ cp: chars[this.i]!, at: this.i });
      this.i++;
    };
    if (chars[this.i] === cp('^')) take();
    if (chars[this.i] === cp(']')) take();
    // 0: plain, 1: after '[', 2: inside [: [. [= up to their closing delimiter, 3: after it.
    let state = 0;
    let symbol = -1;
    for (;;) {
      const c = chars[this.i];
      if (c === undefined || c === NEWLINE) throw this.unterminated(this.i);
      if (c === cp('.') || c === cp(':') || c === cp('=')) {
        if (state === 1) [symbol, state] = [c, 2];
        else if (state === 2 && c === symbol) state = 3;
        else state &= ~1;
      } else if (c === cp('[')) {
        if (state === 0) state = 1;
      } else if (c === cp(']')) {
        if (state === 0 || state === 1) return take();
        state = state === 3 ? 0 : state & ~1;
      } else {
        state &= ~1;
      }
      take();
    }
  }

  private flags(): { global: boolean; occurrence: number; icaseAt: number } {
    const { chars } = this;
    let global = false;
    let occurrence = 0;
    let icaseAt = -1;
    for (;;) {
      while (this.i < chars.length && BLANK.has(chars[this.i]!)) this.i++;
      if (this.i >= chars.length) break;
      const c = chars[this.i]!;
      const flag = String.fromCodePoint(c);
      if (flag === 'i' || flag === 'I') {
        icaseAt = this.i++;
      } else if (UNSUPPORTED_FLAGS[flag]) {
        throw new ScriptError(this.i, UNSUPPORTED_FLAGS[flag]!);
      } else if (flag === 'g') {
        if (global) throw new ScriptError(this.i, "multiple 'g' options to s command");
        global = true;
        this.i++;
      } else if (c >= cp('0') && c <= cp('9')) {
        if (occurrence) throw new ScriptError(this.i, 'multiple number options to s command');
        const at = this.i;
        let n = 0n;
        while (chars[this.i]! >= cp('0') && chars[this.i]! <= cp('9'))
          n = n * 10n + BigInt(chars[this.i++]! - cp('0'));
        // sed keeps the number in an unsigned long: it wraps.
        n = BigInt.asUintN(64, n);
        if (n === 0n) throw new ScriptError(at, 'number option to s command may not be zero');
        occurrence = n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
      } else if (flag === '}') {
        throw new ScriptError(this.i, "unexpected '}': only s commands are allowed");
      } else if (flag === '#') {
        break;
      } else if (flag === '\n' || flag === ';') {
        this.i++;
        break;
      } else if (flag === '\r' && chars[this.i + 1] === NEWLINE) {
        this.i += 2;
        break;
      } else {
        throw new ScriptError(this.i, `unknown option to s command: '${show(c)}'`);
      }
    }
    return { global, occurrence: occurrence || 1, icaseAt };
  }
}
