// Reading Terraform's human output: the diagnostics a failed command printed, and the one-line summary of a
// plan that a pull request shows.

/** How long a one-line summary of a failure may be. */
export const MAX_SUMMARY_CHARS = 400;

/** Box-drawing characters Terraform frames diagnostics with (`╷`, `│ `, `╵`). */
const unframe = (line: string): string => line.replace(/^[╷╵]\s*$/, '').replace(/^│ ?/, '');

/**
 * What locates a diagnostic: `  with provider[...],`, `  on main.tf line 3, in resource ...:`, the quoted source
 * lines below and their markers.
 */
const isSnippet = (line: string): boolean =>
  /^\s+(with|on) .+[,:]$/.test(line) || /^\s*\d+:/.test(line) || /^\s*[├└│]/.test(line);

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

const bound = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, max - 3).trimEnd()}...`;

/**
 * The error diagnostics in Terraform's output, each as one line: `Error: <summary>: <detail>`, without source
 * snippets or the hints that follow a blank line after the detail.
 */
export function errorDiagnostics(output: string): string[] {
  const lines = output.split(/\r?\n/).map(unframe);
  const diagnostics: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!/^Error: /.test(line)) continue;
    const detail: string[] = [];
    // The detail is the first paragraph after the summary that is not a source snippet.
    let j = i + 1;
    while (j < lines.length && (lines[j] ?? '').trim() === '') j++;
    while (j < lines.length && isSnippet(lines[j] ?? '')) {
      j++;
      while (j < lines.length && (lines[j] ?? '').trim() === '') j++;
    }
    while (j < lines.length && (lines[j] ?? '').trim() !== '' && !/^(Error|Warning): /.test(lines[j] ?? '')) {
      detail.push(lines[j] ?? '');
      j++;
    }
    const summary = oneLine(line);
    diagnostics.push(
      detail.length ? `${summary.replace(/[.:]$/, '')}: ${oneLine(detail.join(' '))}` : summary,
    );
  }
  return diagnostics;
}

/** What went wrong, in one bounded line: the error diagnostics, else the last lines of the output. */
export function failureText(output: string, max = MAX_SUMMARY_CHARS): string {
  const counts = new Map<string, number>();
  errorDiagnostics(output).forEach((d) => counts.set(d, (counts.get(d) ?? 0) + 1));
  // Terraform repeats one diagnostic per resource (`execution halted` after an interrupt): each says it once.
  const diagnostics = [...counts].map(([d, n]) => (n > 1 ? `${d} (${n} times)` : d));
  if (diagnostics.length > 0) return bound(diagnostics.join(' / '), max);
  const last = output
    .split(/\r?\n/)
    .map((line) => unframe(line).trim())
    .filter(Boolean)
    .slice(-3);
  return bound(last.length ? last.join(' / ') : 'no output', max);
}

/** The outcome of `terraform plan -detailed-exitcode`: its exit code (undefined when a signal ended it) and output. */
export interface PlanRun {
  readonly exitCode: number | undefined;
  readonly output: string;
  /** Why it ended early, e.g. `timed out after 30 min`; such a plan has failed whatever its exit code. */
  readonly stoppedBecause?: string;
}

/**
 * Terraform's closing line of a plan, `Plan: ...` or `No changes. ...`: the last one at the start of a line.
 * Terraform indents everything it quotes (attribute values, multi-line strings), so a line of the diff can
 * read `Plan: 0 to add, 0 to change, 0 to destroy.` but never starts at column 0; and its own line comes
 * after the diff.
 */
function closingLine(output: string): string | undefined {
  return output
    .split(/\r?\n/)
    .filter((line) => /^Plan: .* to (destroy|forget)\.?\s*$/.test(line) || /^No changes\./.test(line))
    .at(-1)
    ?.trimEnd();
}

/**
 * The pull request's one-line summary of a plan: `Plan: 2 to add, 1 to change, 0 to destroy.`, `No changes.`,
 * `Only output values change.` or `failed: <what went wrong>`. Exit code 0 is no changes and 2 is changes
 * (`-detailed-exitcode`); anything else, or a plan stopped early, is a failure, whatever its output says.
 */
export function summarizePlan(plan: PlanRun): string {
  if (plan.stoppedBecause !== undefined) {
    return failedSummary(`${plan.stoppedBecause}; ${failureText(plan.output)}`);
  }
  if (plan.exitCode === 0) return 'No changes.';
  if (plan.exitCode === 2) {
    const line = closingLine(plan.output);
    if (line?.startsWith('Plan: ')) return line;
    if (/^Changes to Outputs:/m.test(plan.output)) return 'Only output values change.';
    return 'Changes planned (Terraform printed no "Plan:" line).';
  }
  const how = plan.exitCode === undefined ? 'ended by a signal' : `exit code ${plan.exitCode}`;
  return failedSummary(`${how}: ${failureText(plan.output)}`);
}

/** `skipped: <reason>` on one line. */
export const skippedSummary = (reason: string): string =>
  `skipped: ${bound(oneLine(reason), MAX_SUMMARY_CHARS)}`;

/** `failed: <what went wrong>` on one line, bounded. */
export const failedSummary = (what: string): string => `failed: ${bound(oneLine(what), MAX_SUMMARY_CHARS)}`;

/** Whether a summary reports a failure (the plan command's exit code follows it). */
export const isFailedSummary = (summary: string): boolean => summary.startsWith('failed: ');

/** Whether a synthesized stack (its `cdk.tf.json`) has data sources, which may read what other stacks create. */
export function looksThingsUp(config: unknown): boolean {
  const data = (config as { data?: unknown } | null)?.data;
  return typeof data === 'object' && data !== null && Object.keys(data).length > 0;
}

/** The dependencies never applied: `terraform state list` printed nothing for them. */
export function unappliedDependencies(
  dependencies: ReadonlyArray<{ readonly name: string; readonly stateList: string }>,
): string[] {
  return dependencies.filter((dependency) => dependency.stateList.trim() === '').map((d) => d.name);
}

/** `a has` or `a, b and c have`. */
export function namesHave(names: readonly string[]): string {
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)} have` : `${names[0]} has`;
}

/**
 * Why a stack's plan is skipped, if it is: it looks things up (has data sources) and a stack it deploys after
 * has no state yet (`terraform state list` printed nothing), so the lookups would fail. A stack that looks
 * nothing up plans fine on its own.
 */
export function unappliedDependencyReason(
  stack: { readonly name: string; readonly config: unknown },
  dependencies: ReadonlyArray<{ readonly name: string; readonly stateList: string }>,
): string | undefined {
  if (!looksThingsUp(stack.config)) return undefined;
  const unapplied = unappliedDependencies(dependencies);
  if (unapplied.length === 0) return undefined;
  return (
    `${namesHave(unapplied)} not been applied yet; ${stack.name} looks up what ` +
    `${unapplied.length > 1 ? 'they create' : 'it creates'}`
  );
}
