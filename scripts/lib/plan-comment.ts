/** Hidden first line of the pull request's one plan comment: the workflow finds the comment to update by it. */
export const PLAN_COMMENT_MARKER = '<!-- estate-plan -->';

/** A stack the plan matrix planned. */
export interface PlannedStack {
  readonly stack: string;
  readonly environment: string;
}

/** What a plan job left for its stack: the summary it wrote and its plan step's outcome. */
export interface StackReport {
  /** The one-line markdown summary `npm run plan -- <stack> --summary <file>` wrote. */
  readonly summary?: string;
  /** The plan step's outcome: success, failure, cancelled or skipped. */
  readonly outcome?: string;
}

export interface PlanCommentInput {
  /** Every stack the matrix holds, in its order: each gets a row, reported or not. */
  readonly stacks: readonly PlannedStack[];
  /** Reports by stack name; a stack without one shows as missing. */
  readonly reports: ReadonlyMap<string, StackReport>;
  /** Result of the plan job (matrix) as a whole; `skipped` when the tests failed first. */
  readonly planJobResult?: string;
  /** The commit planned. */
  readonly commit?: string;
  /** Link to the workflow run, where each plan's full output is. */
  readonly runUrl?: string;
}

/** Longest summary shown; the run holds the full output. */
export const MAX_SUMMARY_CHARS = 400;

/**
 * Text as one table cell, shown as the text it is: one line; HTML escaped (`&`, `<`, `>`), so it can open no
 * tag (`<details>`, `<img>`) nor comment (no hidden text, no second marker); markdown's own characters escaped
 * (`\\`, `[`, `]`, backtick, `|`), so it can make no link, image, code span or cell; and `@` kept from
 * mentioning anyone or any team (a zero-width space after it, as GitHub renders mentions from the text).
 * Bounded. Terraform's errors and a stack's name reach the comment through it.
 */
function cell(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  const bounded = line.length > MAX_SUMMARY_CHARS ? `${line.slice(0, MAX_SUMMARY_CHARS - 1)}…` : line;
  return bounded
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`[\]|]/g, (c) => `\\${c}`)
    .replace(/@/g, '@&#8203;');
}

/** A stack's name as code when it is a plain name (as the matrix's are), else as an escaped cell. */
const stackName = (name: string): string => (/^[A-Za-z0-9_-]+$/.test(name) ? `\`${name}\`` : cell(name));

type Verdict = 'planned' | 'failed' | 'missing';

function verdict(report: StackReport | undefined, planJobResult: string | undefined): [Verdict, string] {
  const summary = report?.summary?.trim() ? cell(report.summary) : undefined;
  if (report?.outcome === 'success' && summary) return ['planned', `✅ ${summary}`];
  if (report?.outcome === 'success')
    return ['failed', '❌ **no summary**: the plan step passed but wrote none'];
  if (report?.outcome === 'failure') {
    return ['failed', `❌ **plan failed**: ${summary ?? 'it wrote no summary; see the run'}`];
  }
  if (report?.outcome) {
    return ['missing', `⚠️ **plan ${cell(report.outcome)}**${summary ? `: ${summary}` : ''}`];
  }
  if (summary) return ['missing', `⚠️ **outcome unknown**: ${summary}`];
  if (planJobResult === 'skipped') {
    return ['missing', '⚠️ **not planned**: the plan jobs did not run (they wait for the tests to pass)'];
  }
  return ['missing', '⚠️ **no summary**: the plan job left no report for this stack'];
}

/** The pull request's plan comment: the marker, a count, and one row per stack of the matrix. */
export function composePlanComment(input: PlanCommentInput): string {
  const rows = input.stacks.map((planned) => {
    const [kind, text] = verdict(input.reports.get(planned.stack), input.planJobResult);
    return { planned, kind, text };
  });
  const count = (kind: Verdict) => rows.filter((row) => row.kind === kind).length;
  const at = input.commit ? ` at \`${input.commit.slice(0, 12)}\`` : '';
  const lines = [
    PLAN_COMMENT_MARKER,
    '### Terraform plans',
    '',
    `Speculative plans of every deployed stack${at}; nothing was applied. ` +
      `${rows.length} stacks: ${count('planned')} planned, ${count('failed')} failed, ${count('missing')} without a plan.`,
    '',
    '| stack | environment | plan |',
    '| --- | --- | --- |',
    ...rows.map(
      ({ planned, text }) => `| ${stackName(planned.stack)} | ${cell(planned.environment)} | ${text} |`,
    ),
  ];
  if (input.runUrl) lines.push('', `Full output: [workflow run](${input.runUrl}).`);
  return `${lines.join('\n')}\n`;
}
