import type * as z from 'zod/mini';

/** Thrown when a handler's settings are invalid; lists every bad setting at once, never a value. */
export class HandlerConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid handler configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'HandlerConfigError';
  }
}

/**
 * Reads a handler's settings from its environment variables. Reports every missing or malformed setting
 * by name and what it expects; values are left out of the message (some settings name secrets).
 */
export function loadConfig<S extends z.ZodMiniType>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.output<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new HandlerConfigError(
    result.error.issues.map(
      (issue) => `${issue.path.map(String).join('.') || '(environment)'}: ${issue.message}`,
    ),
  );
}
