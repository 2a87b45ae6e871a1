import { MAX_PATTERN_SPACE_CHARS, SED_TIME_BUDGET_MS, SedBudgetError } from './sed/budget';
import { parseScript } from './sed/script';
import { ScriptError } from './sed/source';
import { substitute } from './sed/substitute';

// The s command of GNU `sed -E` in the C.UTF-8 locale, exactly, on RE2 (linear time). See SED.md for what
// is refused and for the few places where GNU sed itself is not reproducible.

export class SedScriptError extends Error {
  override readonly name = 'SedScriptError';

  constructor(
    readonly line: number,
    readonly column: number,
    readonly rule: string,
  ) {
    super(`line ${line}, column ${column}: ${rule}`);
  }
}

let sharedDeadline: number | undefined;

/**
 * Runs `fn` (the steps of one transformation of one value) under one time budget for all the scripts it
 * applies, however many steps and JSON strings: a chain of 20 steps gets 2 seconds, not 40.
 */
export function withSedBudget<T>(fn: () => T): T {
  if (sharedDeadline !== undefined) return fn();
  sharedDeadline = performance.now() + SED_TIME_BUDGET_MS;
  try {
    return fn();
  } finally {
    sharedDeadline = undefined;
  }
}

/**
 * Compiles a script of s commands (separated by newlines or `;`, with `#` comments). Every error is found
 * here; the returned function is pure and applies the script to each line of a value as `sed -E` does.
 */
export function compileSed(script: string): (value: string) => string {
  let commands: ReturnType<typeof parseScript>;
  try {
    commands = parseScript(script);
  } catch (error) {
    if (error instanceof ScriptError) throw positioned(script, error);
    throw error;
  }
  return (value) => {
    if (value === '') return '';
    // A last line without a newline stays without one, as sed prints it.
    const newline = value.endsWith('\n');
    const lines = (newline ? value.slice(0, -1) : value).split('\n');
    const deadline = sharedDeadline ?? performance.now() + SED_TIME_BUDGET_MS;
    const out = lines.map((line) =>
      commands.reduce((text, command) => {
        const next = substitute(command, text, undefined, deadline);
        if (next.length > MAX_PATTERN_SPACE_CHARS)
          throw new SedBudgetError(`the script grew a line past ${MAX_PATTERN_SPACE_CHARS} characters`);
        return next;
      }, line),
    );
    return out.join('\n') + (newline ? '\n' : '');
  };
}

export { MAX_PATTERN_SPACE_CHARS, SED_TIME_BUDGET_MS, SedBudgetError } from './sed/budget';

function positioned(script: string, error: ScriptError): SedScriptError {
  const before = [...script].slice(0, error.at);
  const lastNewline = before.lastIndexOf('\n');
  const line = before.filter((c) => c === '\n').length + 1;
  return new SedScriptError(line, before.length - lastNewline, error.rule);
}
