import type { z } from 'zod';
import { boundedText, renderValue } from '../runtime/lib/redact';
import { environmentSchema, type EnvironmentConfig } from './schema';

/** One thing wrong with one environment's config. */
export interface ConfigProblem {
  readonly environment: string;
  /** Dotted path of the field, e.g. `regions[1]` or `backend.organization`. */
  readonly path: string;
  /** The value received, in a bounded rendering (`undefined (missing)` when the field is missing). */
  readonly received: string;
  /** What the field allows. */
  readonly expected: string;
}

/** Problems the error message lists; `problems` holds them all. */
const LISTED_PROBLEMS = 20;

/** Thrown when any environment config is invalid; its message lists every problem at once (up to 20). */
export class EnvironmentConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    const unlisted = problems.length - LISTED_PROBLEMS;
    super(
      `Invalid environment config (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems
          .slice(0, LISTED_PROBLEMS)
          .map((p) => `  - ${p.environment}: ${p.path}: received ${p.received}; ${p.expected}`)
          .concat(unlisted > 0 ? [`  - and ${unlisted} more`] : [])
          .join('\n'),
    );
    this.name = 'EnvironmentConfigError';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return (
    path
      .map((key, i) =>
        typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${boundedText(String(key), 64)}`,
      )
      .join('') || '(root)'
  );
}

function render(value: unknown): string {
  return value === undefined ? 'undefined (missing)' : renderValue(value);
}

/** A union's discriminator issue carries the whole object; report the discriminator's own value. */
function receivedAt(issue: z.core.$ZodIssue): unknown {
  const key = issue.path[issue.path.length - 1];
  const input = issue.input;
  if (
    issue.code === 'invalid_union' &&
    typeof key === 'string' &&
    input &&
    typeof input === 'object' &&
    key in input
  ) {
    return (input as Record<string, unknown>)[key];
  }
  return input;
}

function problemsOf(label: string, issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const parent = (issue.input ?? {}) as Record<string, unknown>;
      return issue.keys.map((key) => ({
        environment: label,
        path: formatPath([...issue.path, key]),
        received: render(parent[key]),
        expected: 'no such field (check its spelling)',
      }));
    }
    return [
      {
        environment: label,
        path: formatPath(issue.path),
        received: render(receivedAt(issue)),
        expected: issue.message,
      },
    ];
  });
}

/** Validates raw environment configs; returns them validated, or throws one error listing every problem. */
export function validateEnvironments(
  raw: Readonly<Record<string, unknown>>,
): Record<string, EnvironmentConfig> {
  const problems: ConfigProblem[] = [];
  const valid: Record<string, EnvironmentConfig> = {};
  for (const [label, input] of Object.entries(raw)) {
    const result = environmentSchema.safeParse(input, { reportInput: true });
    if (result.success) {
      if (result.data.name !== label) {
        problems.push({
          environment: label,
          path: 'name',
          received: render(result.data.name),
          expected: `expected "${label}", the name the environment is registered under`,
        });
      }
      valid[label] = result.data;
    } else {
      problems.push(...problemsOf(label, result.error.issues));
    }
  }
  if (problems.length > 0) throw new EnvironmentConfigError(problems);
  return valid;
}

/** Validates one environment config. */
export function validateEnvironment(label: string, input: unknown): EnvironmentConfig {
  const validated = validateEnvironments({ [label]: input })[label];
  if (!validated) throw new Error(`unreachable: environment ${label} validated to nothing`);
  return validated;
}
