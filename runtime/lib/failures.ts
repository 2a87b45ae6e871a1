import { boundedText, describeError } from './redact';

/** Longest failure reason kept with a dead-lettered message or written to a log. */
export const MAX_REASON_CHARS = 240;

/**
 * A failure that retrying cannot fix (invalid input, a limit, an unsupported version): the message goes to
 * the dead-letter queue at once. `code` is a stable kebab-case name for metrics and alarms; `reason` names
 * the field and the rule, never the value.
 */
export class PermanentError extends Error {
  constructor(
    readonly code: string,
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'PermanentError';
  }
}

/**
 * A failure worth retrying until the last delivery (a version a later release speaks, a configuration being
 * rolled out), then dead-lettered with its reason.
 */
export class RetryableError extends Error {
  constructor(
    readonly code: string,
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'RetryableError';
  }
}

export interface Failure {
  readonly permanent: boolean;
  readonly code: string;
  /** Bounded, value-free: safe for a log line and a dead-letter attribute. */
  readonly reason: string;
}

/** AWS errors that retrying can never fix: the request itself is invalid (an item over 400 KB, ...). */
const PERMANENT_AWS_ERRORS = new Set([
  'ValidationException',
  'InvalidParameterValue',
  'InvalidParameterException',
]);

/**
 * Permanent or transient. Typed permanent errors and requests AWS calls invalid are permanent; everything
 * else (throttling, 5xx, timeouts, network errors, contention, access denied while a fix rolls out) is
 * transient: retried through the queue, and dead-lettered with its reason on the last delivery.
 */
export function classifyFailure(error: unknown): Failure {
  if (error instanceof PermanentError)
    return { permanent: true, code: error.code, reason: boundedText(error.reason, MAX_REASON_CHARS) };
  if (error instanceof RetryableError)
    return { permanent: false, code: error.code, reason: boundedText(error.reason, MAX_REASON_CHARS) };
  const described = describeError(error);
  if (error instanceof Error && PERMANENT_AWS_ERRORS.has(error.name))
    return { permanent: true, code: 'aws-rejected-request', reason: `AWS refused the request: ${described}` };
  return { permanent: false, code: 'transient', reason: `transient failure: ${described}` };
}
