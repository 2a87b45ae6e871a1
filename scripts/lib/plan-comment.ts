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
 * A summary as one table cell: one line, no cell separator, no HTML comment (so it can neither hide text
 * nor carry a second marker), bounded.
 */
function cell(summary: string): string {
  const line = summary
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\|/g, '\\|')
    .replace(/<!--/g, '&lt;!--')
    .replace(/-->/g, '--&gt;');
  return line.length > MAX_SUMMARY_CHARS ? `${line.slice(0, MAX_SUMMARY_CHARS - 1)}…` : line;
}

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
    ...rows.map(({ planned, text }) => `| \`${planned.stack}\` | ${planned.environment} | ${text} |`),
  ];
  if (input.runUrl) lines.push('', `Full output: [workflow run](${input.runUrl}).`);
  return `${lines.join('\n')}\n`;
}
