// Composes the pull request's plan comment from the plan jobs' reports and prints it (as a JSON string with
// --json, one line for $GITHUB_OUTPUT). A report is <dir>/<stack>.md (the summary) and <dir>/<stack>.outcome.
// Usage: npx tsx scripts/plan-comment.ts --matrix <json> --dir <dir> [--plan-result <result>]
//          [--commit <sha>] [--run-url <url>] [--json]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { composePlanComment, type PlannedStack, type StackReport } from './lib/plan-comment';

const readIfThere = (path: string): string | undefined =>
  existsSync(path) ? readFileSync(path, 'utf8') : undefined;

function plannedStacks(matrixJson: string): PlannedStack[] {
  const matrix = JSON.parse(matrixJson) as { include?: unknown };
  if (!Array.isArray(matrix.include)) throw new Error('expected the plan matrix, { "include": [...] }');
  return matrix.include.map((entry: { stack?: unknown; environment?: unknown }) => {
    // Stack names become file names below: refuse anything that could leave the directory.
    if (typeof entry.stack !== 'string' || !/^[A-Za-z0-9_-]+$/.test(entry.stack)) {
      throw new Error(`expected a stack name in the matrix; received ${JSON.stringify(entry.stack)}`);
    }
    return { stack: entry.stack, environment: String(entry.environment) };
  });
}

function main(): void {
  const { values } = parseArgs({
    options: {
      matrix: { type: 'string' },
      dir: { type: 'string' },
      'plan-result': { type: 'string' },
      commit: { type: 'string' },
      'run-url': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.matrix === undefined || values.dir === undefined) {
    throw new Error(
      'usage: plan-comment --matrix <json> --dir <dir> [--plan-result r] [--commit sha] [--run-url u] [--json]',
    );
  }
  const dir = values.dir;
  const stacks = plannedStacks(values.matrix);
  const reports = new Map<string, StackReport>(
    stacks.map(({ stack }) => [
      stack,
      {
        summary: readIfThere(join(dir, `${stack}.md`)),
        outcome: readIfThere(join(dir, `${stack}.outcome`))?.trim() || undefined,
      },
    ]),
  );
  const body = composePlanComment({
    stacks,
    reports,
    planJobResult: values['plan-result'],
    commit: values.commit,
    runUrl: values['run-url'],
  });
  process.stdout.write(values.json ? `${JSON.stringify(body)}\n` : body);
}

try {
  main();
} catch (error: unknown) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 2;
}
