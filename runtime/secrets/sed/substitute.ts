import { expand } from './replacement';
import { SED_TIME_BUDGET_MS, SedBudgetError } from './budget';
import { Command } from './script';

/**
 * One s command on one line, as GNU sed's do_subst iterates: an empty match right after the previous match
 * does not count, and after an empty match that is not replaced the scan moves on by one character
 * (`echo baaac | sed -E 's,a*,x,g'` gives xbxcx). `onEmptyStep` sees each character stepped over that way.
 */
export function substitute(
  command: Command,
  line: string,
  onEmptyStep?: (skipped: string) => void,
  deadlineMs?: number,
): string {
  const search = command.regex.search(line, Math.max(command.replacement.maxGroup, 0));
  let match = search(0);
  if (!match) return line;
  let out = '';
  let start = 0;
  let lastEnd = 0;
  let count = 0;
  for (;;) {
    const offset = match[0]!;
    let matched = match[1]! - offset;
    if (start < offset) {
      out += line.slice(start, offset);
      start = offset;
    }
    let again = true;
    if ((matched > 0 || count === 0 || offset > lastEnd) && ++count >= command.occurrence) {
      out += expand(command.replacement, line, match);
      again = command.global;
    } else {
      if (matched === 0) {
        if (start >= line.length) break;
        matched = line.codePointAt(start)! > 0xffff ? 2 : 1;
        onEmptyStep?.(line.slice(start, start + matched));
      }
      out += line.slice(offset, offset + matched);
    }
    start = offset + matched;
    lastEnd = match[1]!;
    if (!again || start > line.length) break;
    if (deadlineMs !== undefined && performance.now() > deadlineMs)
      throw new SedBudgetError(`the substitution ran past its ${SED_TIME_BUDGET_MS} ms budget`);
    match = search(start);
    if (!match) break;
  }
  return out + line.slice(start);
}
