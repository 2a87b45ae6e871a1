/** A character of a sed script after some rewriting, with the index in the script of the text it came from. */
export interface SourceChar {
  readonly cp: number;
  readonly at: number;
}

/** A script error at a code point index of the script (the script's length for its end). */
export class ScriptError extends Error {
  constructor(
    readonly at: number,
    readonly rule: string,
  ) {
    super(rule);
  }
}

export const BACKSLASH = 0x5c;
export const NEWLINE = 0x0a;

export function cp(char: string): number {
  return char.codePointAt(0)!;
}

export function show(codePoint: number): string {
  if (codePoint < 0x20 || codePoint === 0x7f) return `\\x${codePoint.toString(16).padStart(2, '0')}`;
  return String.fromCodePoint(codePoint);
}
