import { PermanentError } from '../../lib/failures';

/**
 * Each search is linear in its line, but a `g` with many matches searches once per match, and a search
 * that reads far past its match (`s/a|a*b/X/g` on a long run of `a`) makes the whole quadratic; and
 * commands can grow the pattern space (`s/.*\/&&/` doubles it). Bounds on both keep any script on any value
 * from holding the function: past them the value is refused, naming the bound, never the value.
 */
export const SED_TIME_BUDGET_MS = 2000;
export const MAX_PATTERN_SPACE_CHARS = 1 << 20;

export class SedBudgetError extends PermanentError {
  constructor(rule: string) {
    super('secret-transform', rule);
    this.name = 'SedBudgetError';
  }
}
