import { SedBudgetError, SedScriptError, compileSed } from '../../runtime/secrets/sed';

// Every expected output below is GNU sed 4.9's: printf '%s' "$value" | LC_ALL=C.UTF-8 sed -E "$script".
const SAME_AS_GNU: Array<[name: string, script: string, value: string, expected: string]> = [
  ['escaped dot', 's/a\\.b/X/g', 'a.b axb\n', 'X axb\n'],
  ['backslash in replacement', 's/a/\\\\/', 'a\n', '\\\n'],
  ['escaped ampersand', 's/a/[\\&]/', 'a\n', '[&]\n'],
  ['newline escape in replacement', 's/ /\\n/g', 'a b c\n', 'a\nb\nc\n'],
  ['newline escape in pattern', 's/ /\\n/;s/a\\nb/X/', 'a b\n', 'X\n'],
  ['tab escape', 's/\\t/<\\t>/', 'a\tb\n', 'a<\t>b\n'],
  ['backslash-newline in replacement', 's/a/x\\\ny/', 'a\n', 'x\ny\n'],
  ['hex escape', 's/\\x41/x\\x42/', 'A\n', 'xB\n'],
  ['hex escape producing a special character', 's/\\x2e/X/g;s/X/\\x26/', 'a.b\n', '&XX\n'],
  ['slash inside another delimiter', 's|a/b|X|', 'a/b\n', 'X\n'],
  ['escaped delimiter |', 's|a\\|b|X|g', 'a|b\n', 'X|X\n'],
  ['escaped delimiter .', 's.a\\.b.X.g', 'a.b axb\n', 'X X\n'],
  ['escaped delimiter *', 's*a\\*b*X*', 'aaab\n', 'X\n'],
  ['escaped delimiter ,', 's,a\\,b,X,', 'a,b\n', 'X\n'],
  ['escaped delimiter n', 'sn\\nnXn', 'n\n', 'X\n'],
  ['delimiter in a bracket', 's/[/]/X/g', 'a/b/\n', 'aXbX\n'],
  ['backslash delimiter', 's\\a\\b\\g', 'aa\n', 'bb\n'],
  ['flag g', 's/a/x/g', 'banana\n', 'bxnxnx\n'],
  ['flag i', 's/B/x/i', 'abc\n', 'axc\n'],
  ['flag I', 's/b/x/Ig', 'bBb\n', 'xxx\n'],
  ['flag N', 's/a/x/2', 'banana\n', 'banxna\n'],
  ['flag Ng', 's/a/x/2g', 'banana\n', 'banxnx\n'],
  ['flags in any order', 's/A/x/g2I', 'banana\n', 'banxnx\n'],
  ['flags with blanks', 's/a/x/ g 3', 'aaaa\n', 'aaxx\n'],
  ['empty matches with g', 's/x*/-/g', 'abc\n', '-a-b-c-\n'],
  ['empty match after a match', 's/a*/x/g', 'baaac\n', 'xbxcx\n'],
  ['Nth occurrence counts empty matches', 's/x*/-/2', 'abc\n', 'a-bc\n'],
  ['Nth occurrence skips an adjacent empty match', 's/a*/x/2', 'baaac\n', 'bxc\n'],
  ['Nth occurrence past the last', 's/a*/x/4', 'baaac\n', 'baaac\n'],
  ['groups', 's/(a)(b)/\\2\\1/', 'ab\n', 'ba\n'],
  ['ampersand', 's/b+/[&]/', 'abbbc\n', 'a[bbb]c\n'],
  ['unmatched group is empty', 's/(a)|b/[\\1]/g', 'ab\n', '[a][]\n'],
  ['nested groups', 's/((a)(b))(c)/\\4\\3\\2/', 'abc\n', 'cba\n'],
  ['longest alternative submatch as GNU', 's/(a|ab)(c|bcd)(d*)/[\\1|\\2|\\3]/', 'abcd\n', '[a|bcd|]\n'],
  ['\\U', 's/\\w+/\\U&/', 'hello world\n', 'HELLO world\n'],
  ['\\L', 's/.*/\\L&/', 'HeLLo\n', 'hello\n'],
  ['\\u', 's/\\w+/\\u&/g', 'hello world\n', 'Hello World\n'],
  ['\\l', 's/.*/\\l&/', 'HELLO\n', 'hELLO\n'],
  ['\\E ends \\U', 's/(a)(b)/\\U\\1\\E\\2/', 'ab\n', 'Ab\n'],
  ['\\u then \\L', 's/.*/\\u\\L&/', 'hELLO\n', 'hello\n'],
  ['\\L then \\u', 's/.*/\\L\\u&/', 'hELLO\n', 'Hello\n'],
  ['\\u before an empty group', 's/(x*)(.*)/\\u\\1\\2/', 'hello\n', 'Hello\n'],
  ['\\U on non-ASCII letters', 's/.*/\\U&/', 'straße é ǆ\n', 'STRAßE É Ǆ\n'],
  ['\\l inside \\U', 's/.*/\\U\\l&/', 'hello\n', 'hELLO\n'],
  ['[[:alpha:]]', 's/[[:alpha:]]+/X/g', 'ab1é2\n', 'X1X2\n'],
  ['[[:digit:]]', 's/[[:digit:]]/X/g', 'a1٣2\n', 'aX٣X\n'],
  ['[^...]', 's/[^a]/X/g', 'abca\n', 'aXXa\n'],
  ['[]a]', 's/[]a]/X/g', 'a]b\n', 'XXb\n'],
  ['[^]a]', 's/[^]a]/X/g', 'a]b\n', 'a]X\n'],
  ['literal hyphen and backslash in brackets', 's/[a-]/X/g;s/[\\]/Y/g', 'a-b\\\n', 'XXbY\n'],
  ['\\w with a non-ASCII letter', 's/\\w+/X/g', 'héllo, wörld_1\n', 'X, X\n'],
  ['\\s and \\S', 's/\\s+/_/g;s/\\S/./', 'a  b\tc\n', '._b_c\n'],
  ['\\b', 's/\\b/|/g', 'héllo wörld\n', '|héllo| |wörld|\n'],
  ['\\< and \\>', 's/\\</</g;s/\\>/>/g', 'ab cd\n', '<ab> <cd>\n'],
  ['\\B', 's/\\B/-/g', 'abc de\n', 'a-b-c d-e\n'],
  ["\\` and \\'", "s/\\`a/X/;s/b\\'/Y/", 'ab ab\n', 'Xb aY\n'],
  ['interval {n}', 's/a{2}/X/g', 'aaaaa\n', 'XXa\n'],
  ['interval {n,}', 's/a{2,}/X/g', 'a aa aaa\n', 'a X X\n'],
  ['interval {,m}', 's/a{,2}/X/g', 'aaa\n', 'XX\n'],
  ['interval {n,m}', 's/a{1,2}/X/g', 'aaa\n', 'XX\n'],
  ['escaped braces are literal', 's/a\\{2\\}/X/', 'a{2}\n', 'X\n'],
  ['alternation', 's/cat|dog/pet/g', 'cat dog cow\n', 'pet pet cow\n'],
  ['leftmost-longest alternation', 's/a|ab/X/', 'abc\n', 'Xc\n'],
  ['multi-line value keeps its final newline', 's/^/> /', 'a\nb\n', '> a\n> b\n'],
  ['multi-line value without a final newline', 's/$/;/', 'a\nb', 'a;\nb;'],
  ['empty value', 's/^/x/', '', ''],
  ['blank lines', 's/^$/(blank)/', 'a\n\nb\n', 'a\n(blank)\nb\n'],
  ['dot matches one code point', 's/./X/g', 'é😀a\n', 'XXX\n'],
  ['astral character in a pattern', 's/😀+/:)/', 'a😀😀b\n', 'a:)b\n'],
  ['non-ASCII letter with I', 's/é/x/Ig', 'éÉ\n', 'xx\n'],
  [
    'I compares towupper: ſ matches s, the Kelvin sign does not match k',
    's/s|k/x/Ig',
    'sſk\u212a\n',
    'xxxK\n',
  ],
  ['commands separated by ;', 's/a/b/;s/b/c/', 'a\n', 'c\n'],
  ['commands on separate lines', 's/a/b/\ns/b/c/', 'a\n', 'c\n'],
  ['comments and whitespace', '  # first\n s/a/b/ ; s/b/c/g # note\n\n;;  ', 'ab\n', 'cc\n'],
  ['empty script', '', 'abc\n', 'abc\n'],
  ['empty regex reuses the previous one', 's/a/b/;s//c/', 'aa\n', 'bc\n'],
  ['dot matches a newline put in the pattern space', 's/ /\\n/;s/a.b/X/', 'a b\n', 'X\n'],
  ['decimal, octal and control escapes', 's/\\d065\\o102/\\cA/', 'AB\n', '\u0001\n'],
  ['escaped special characters are literal', 's/\\(\\*\\)\\|/X/', '(*)|\n', 'X\n'],
  ['[[:upper:]] under I is [[:alpha:]]', 's/[[:upper:]]+/X/I', 'abC1\n', 'X1\n'],
  ['empty regex keeps the I of the regex it reuses', 's/A/x/I;s//y/', 'aa\n', 'xy\n'],
  ['\\w under I', 's/\\W+/_/Ig', 'a-b c\n', 'a_b_c\n'],
  ['a number flag larger than the matches', 's/a/x/99', 'aaa\n', 'aaa\n'],
  ['\\n in a bracket is a newline', 's/ /\\n/;s/[\\n]/+/', 'a b\n', 'a+b\n'],
  ['anchors in the middle never match', 's/a^b|a$b/X/', 'ab\n', 'ab\n'],
  ['an empty group', 's/()b/[\\1]/', 'ab\n', 'a[]\n'],
  ['{0} removes the element but keeps its group number', 's/(a){0}(b)/[\\1\\2]/', 'ab\n', 'a[b]\n'],
];

// GNU sed refuses these too, except where SED.md says it accepts them (other commands, addresses, flags p w e M,
// backreferences, repeat counts over 1000, #n, non-ASCII byte escapes, an empty regex with nothing before it).
const REFUSED: Array<[name: string, script: string, line: number, column: number, rule: string]> = [
  ['an unknown command', 's/a/b/\n    p', 2, 5, "unknown command 'p': only s commands are allowed"],
  ['the y command', 'y/a/b/', 1, 1, "unknown command 'y': only s commands are allowed"],
  ['a block', '{s/a/b/}', 1, 1, "unknown command '{': only s commands are allowed"],
  ['a closing brace after flags', 's/a/b/}', 1, 7, "unexpected '}': only s commands are allowed"],
  ['a line address', '1s/a/b/', 1, 1, 'addresses are not supported: an s command applies to every line'],
  ['a regex address', '/a/s/a/b/', 1, 1, 'addresses are not supported: an s command applies to every line'],
  ['flag p', 's/a/b/p', 1, 7, 'flag p (print): not supported'],
  ['flag w', 's/a/b/w out.txt', 1, 7, 'flag w (write to a file): not supported'],
  ['flag e', 's/a/b/e', 1, 7, 'flag e (execute the pattern space): not supported'],
  ['flag M', 's/a/b/gM', 1, 8, 'flag M (multiline mode): not supported'],
  ['an unterminated command', 's/abc/de', 1, 9, 'unterminated s command'],
  ['a command cut by a newline', 's/a/b\ns/c/d/', 1, 6, 'unterminated s command'],
  ['a lone s', 's', 1, 2, 'unterminated s command'],
  ['a bracket swallowing the delimiter', 's/[a/x/', 1, 8, 'unterminated s command'],
  ['an unknown flag', 's/a/b/x', 1, 7, "unknown option to s command: 'x'"],
  ['two g flags', 's/a/b/gg', 1, 8, "multiple 'g' options to s command"],
  ['two numbers', 's/a/b/2g3', 1, 9, 'multiple number options to s command'],
  ['number zero', 's/a/b/0', 1, 7, 'number option to s command may not be zero'],
  [
    'a backreference in the pattern',
    's/a\\1/x/',
    1,
    4,
    'backreference \\1 in a pattern needs backtracking; not supported',
  ],
  [
    'a backreference to a group',
    's/(a)\\1/x/',
    1,
    6,
    'backreference \\1 in a pattern needs backtracking; not supported',
  ],
  ['a reference to a missing group', 's/(a)/\\2/', 1, 7, "invalid reference \\2 on s command's RHS"],
  ['an unmatched (', 's/(a/x/', 1, 3, "unmatched '('"],
  ['an unmatched )', 's/a)/x/', 1, 4, "unmatched ')'"],
  ['an unmatched [ made by an escape', 's/\\x5b/x/', 1, 3, "unmatched '['"],
  ['an unmatched {', 's/a{/x/', 1, 4, "unmatched '{'"],
  [
    'an interval going backwards',
    's/a{2,1}/x/',
    1,
    4,
    'invalid content of \\{\\}: expected {n}, {n,}, {,m} or {n,m} with n <= m',
  ],
  [
    'a repeat count over the cap',
    's/a{1001}/x/',
    1,
    4,
    'repeat count 1001 is over 1000, the limit of the linear-time matcher',
  ],
  [
    'nested repeat counts over the cap',
    's/(a{10}){200}/x/',
    1,
    5,
    'nested repeat counts multiply to more than 1000, the limit of the linear-time matcher',
  ],
  [
    "a repeat count over GNU sed's cap",
    's/a{32768}/x/',
    1,
    4,
    'repeat count over 32767: regular expression too big',
  ],
  [
    '* with nothing to repeat',
    's/*a/x/',
    1,
    3,
    "invalid preceding regular expression: '*' has nothing to repeat",
  ],
  ['* after |', 's/a|*b/x/', 1, 5, "invalid preceding regular expression: '*' has nothing to repeat"],
  ['* after an anchor', 's/^*/x/', 1, 4, "invalid preceding regular expression: '*' has nothing to repeat"],
  ['an unknown class', 's/[[:foo:]]/x/', 1, 4, 'unknown character class [:foo:]'],
  ['a range going backwards', 's/[z-a]/x/', 1, 4, "invalid range end: 'z-a' goes backwards"],
  [
    'a non-ASCII range end',
    's/[a-é]/x/',
    1,
    6,
    "invalid collation character 'é': range ends must be ASCII characters in C.UTF-8",
  ],
  ['a trailing backslash', 's/a\\c/x/', 1, 4, 'trailing backslash'],
  ['\\c followed by a backslash', 's/a/\\c\\d/', 1, 5, 'recursive escaping after \\c not allowed'],
  [
    'a byte escape that is not ASCII',
    's/\\xe9/x/',
    1,
    3,
    '\\x escape producing byte 0xe9: only values below 0x80 (ASCII) are supported',
  ],
  [
    '#n on the first line',
    '#n\ns/a/b/',
    1,
    1,
    "a script starting with '#n' means sed -n (print nothing): not supported",
  ],
  ['an empty regex first', 's//b/', 1, 1, 'empty regex with no previous regex to reuse'],
  ['I on an empty regex', 's/a/b/;s//c/I', 1, 13, 'cannot specify modifiers on empty regexp'],
  ['a non-ASCII delimiter', 'séaébé', 1, 2, 'delimiter character is not a single-byte character'],
  [
    'an error on a later line',
    's/a/b/\n  s/c/d/\n  s/e{5000}/x/',
    3,
    6,
    'repeat count 5000 is over 1000, the limit of the linear-time matcher',
  ],
];

describe('compileSed', () => {
  it.each(SAME_AS_GNU)('%s', (_name, script, value, expected) => {
    expect(compileSed(script)(value)).toBe(expected);
  });

  it.each(REFUSED)('refuses %s with its position', (_name, script, line, column, rule) => {
    let error: unknown;
    try {
      compileSed(script);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SedScriptError);
    expect(error).toMatchObject({ line, column, rule, message: `line ${line}, column ${column}: ${rule}` });
  });

  it('compiles once, then applies the same script to many values', () => {
    const sed = compileSed('s/(\\w+)@(\\w+)/\\U\\2\\E:\\1/g');
    expect(sed('alice@prod bob@dev\n')).toBe('PROD:alice DEV:bob\n');
    expect(sed('carol@stage')).toBe('STAGE:carol');
    expect(sed('alice@prod bob@dev\n')).toBe('PROD:alice DEV:bob\n');
  });

  describe('runs pathological patterns on a 64 KiB value in linear time', () => {
    const KIB_64 = 64 * 1024;

    it('(a*)*b on a run of a', () => {
      const value = 'a'.repeat(KIB_64);
      expect(compileSed('s/(a*)*b/X/')(value)).toBe(value);
      expect(compileSed('s/(a*)*b/X/')(value + 'b')).toBe('X');
    });

    it('(x+x+)+y on a run of x', () => {
      const value = 'x'.repeat(KIB_64);
      expect(compileSed('s/(x+x+)+y/X/')(value)).toBe(value);
      expect(compileSed('s/(x+x+)+y/X/')(value.slice(1) + 'y')).toBe('X');
    });

    it('a word-boundary pattern (matched on the encoded line) on a run of a', () => {
      const value = 'a'.repeat(KIB_64);
      expect(compileSed('s/\\b(a*)*\\>/X/g')(value)).toBe('X');
    });
  });

  describe('bounds that keep any script from holding the function', () => {
    it('refuses a value whose global substitution runs past the time budget (many matches, each reading far ahead)', () => {
      const apply = compileSed('s/a|a*b/X/g');
      expect(apply('a'.repeat(8))).toBe('XXXXXXXX');
      let thrown: unknown;
      try {
        apply('a'.repeat(64 * 1024));
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(SedBudgetError);
      expect((thrown as Error).message).toBe(
        'secret-transform: the substitution ran past its 2000 ms budget',
      );
    });

    it('refuses a script that grows a line past 1 MiB', () => {
      const doubling = Array.from({ length: 25 }, () => 's/.*/&&/').join('\n');
      expect(compileSed(doubling.split('\n').slice(0, 3).join('\n'))('ab')).toBe('ab'.repeat(8));
      expect(() => compileSed(doubling)('ab')).toThrow(
        new SedBudgetError('the script grew a line past 1048576 characters'),
      );
    });
  });
});
