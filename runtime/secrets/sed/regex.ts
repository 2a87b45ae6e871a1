import { RE2JS } from 're2js';
import { CharSet, MAX_CODE_POINT } from './charset';
import { caseFold, classSet } from './ctype';
import { Ast, REPEAT_LIMIT, parseEre } from './ere';
import { ScriptError, SourceChar } from './source';

/** Finds the leftmost-longest match at or after an offset of one line: [start0, end0, start1, end1, ...], -1 if unset. */
export type Search = (from: number) => Int32Array | null;

// GNU's \b \B \< \> treat every letter and digit (é, ж, ٣) as a word character; RE2's only [0-9A-Za-z_]. For
// patterns with those assertions the line is matched encoded: each character c becomes L c T, where the tags
// L and T are word characters for RE2 exactly when c is one for GNU, so RE2's \b between T and the next L is
// GNU's. Every pattern element consumes a whole L c T; a lookbehind keeps matches from starting inside one.
const TAG = { leadWord: 'w', leadOther: '-', trailWord: 'W', trailOther: '=' } as const;
const LEAD = `[${TAG.leadWord}${TAG.leadOther}]`;
const TRAIL = `[${TAG.trailWord}${TAG.trailOther}]`;
const ALIGNED = `(?:\\A|(?<=${LEAD}[\\x{0}-\\x{${MAX_CODE_POINT.toString(16)}}]${TRAIL}))`;

export class CompiledRegex {
  readonly groups: number;
  readonly ast: Ast;
  private readonly re: RE2JS;
  private readonly wordChars: CharSet | undefined;

  constructor(
    text: readonly SourceChar[],
    readonly icase: boolean,
  ) {
    const parsed = parseEre(text, icase);
    const at = text[0]?.at ?? 0;
    checkRepeatProduct(parsed.ast, REPEAT_LIMIT);
    this.groups = parsed.groups;
    this.ast = parsed.ast;
    const word = classSet('word');
    this.wordChars = parsed.wordAssertions ? (icase ? caseFold(word) : word) : undefined;
    const source = (this.wordChars ? ALIGNED : '') + emit(parsed.ast, this.wordChars !== undefined);
    try {
      this.re = RE2JS.compile(source, RE2JS.LONGEST_MATCH | (this.wordChars ? RE2JS.LOOKBEHINDS : 0));
    } catch {
      throw new ScriptError(at, 'pattern too large or too deeply nested for the linear-time matcher');
    }
  }

  /** Searches `line`, reporting groups 0 to `groups` (any group but 0 costs RE2 a second pass per match). */
  search(line: string, groups = this.groups): Search {
    return this.wordChars ? this.searchEncoded(line, this.wordChars, groups) : this.searchPlain(line, groups);
  }

  private searchPlain(line: string, groups: number): Search {
    const matcher = this.re.matcher(line);
    return (from) => {
      if (!matcher.find(from)) return null;
      const bounds = new Int32Array(2 * (groups + 1));
      for (let g = 0; g <= groups; g++) {
        bounds[2 * g] = matcher.start(g);
        bounds[2 * g + 1] = matcher.end(g);
      }
      return bounds;
    };
  }

  private searchEncoded(line: string, wordChars: CharSet, groups: number): Search {
    const parts: string[] = [];
    const toEncoded = new Int32Array(line.length + 1);
    const toLine: number[] = [];
    let length = 0;
    for (let i = 0; i < line.length;) {
      const c = line.codePointAt(i)!;
      const char = String.fromCodePoint(c);
      const word = wordChars.has(c);
      toEncoded[i] = length;
      toLine[length] = i;
      parts.push(word ? TAG.leadWord : TAG.leadOther, char, word ? TAG.trailWord : TAG.trailOther);
      length += char.length + 2;
      i += char.length;
    }
    toEncoded[line.length] = length;
    toLine[length] = line.length;
    const matcher = this.re.matcher(parts.join(''));
    return (from) => {
      if (!matcher.find(toEncoded[from]!)) return null;
      const bounds = new Int32Array(2 * (groups + 1));
      for (let g = 0; g <= groups; g++) {
        const [start, end] = [matcher.start(g), matcher.end(g)];
        bounds[2 * g] = start < 0 ? -1 : toLine[start]!;
        bounds[2 * g + 1] = end < 0 ? -1 : toLine[end]!;
      }
      return bounds;
    };
  }
}

function emit(ast: Ast, encoded: boolean): string {
  switch (ast.kind) {
    case 'empty':
      // Keeps the numbering of the groups a {0} removed, as glibc counts them.
      return ast.groups.length > 0 ? `(?:${'()'.repeat(ast.groups.length)}){0}` : '(?:)';
    case 'set':
      return encoded ? `(?:${LEAD}${ast.set.toRe2()}${TRAIL})` : ast.set.toRe2();
    case 'assert':
      return {
        begin: '\\A',
        end: '\\z',
        'word-boundary': '\\b',
        'not-word-boundary': '\\B',
        'word-start': `\\b(?<!${TAG.trailWord})`,
        'word-end': `\\b(?<=${TAG.trailWord})`,
      }[ast.what];
    case 'group':
      return `(${emit(ast.body, encoded)})`;
    case 'concat':
      return ast.items.map((item) => emit(item, encoded)).join('');
    case 'alt':
      return `(?:${ast.items.map((item) => emit(item, encoded)).join('|')})`;
    case 'repeat':
      return `(?:${emit(ast.body, encoded)})${repeatSuffix(ast.min, ast.max)}`;
  }
}

function repeatSuffix(min: number, max: number): string {
  if (max === -1) return min === 0 ? '*' : min === 1 ? '+' : `{${min},}`;
  if (min === 0 && max === 1) return '?';
  return min === max ? `{${min}}` : `{${min},${max}}`;
}

/** RE2 also caps the product of nested repeat counts at 1000 (its repeatIsValid, for {n,m} only). */
function checkRepeatProduct(ast: Ast, budget: number): void {
  switch (ast.kind) {
    case 'group':
      return checkRepeatProduct(ast.body, budget);
    case 'concat':
    case 'alt':
      return ast.items.forEach((item) => checkRepeatProduct(item, budget));
    case 'repeat': {
      const suffix = repeatSuffix(ast.min, ast.max);
      if (!suffix.startsWith('{')) return checkRepeatProduct(ast.body, budget);
      const count = ast.max === -1 ? ast.min : ast.max;
      if (count > budget) {
        throw new ScriptError(
          ast.at,
          `nested repeat counts multiply to more than ${REPEAT_LIMIT}, the limit of the linear-time matcher`,
        );
      }
      return checkRepeatProduct(ast.body, Math.trunc(budget / Math.max(count, 1)));
    }
    default:
      return;
  }
}
