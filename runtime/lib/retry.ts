/** Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"). */
export interface RetryPolicy {
  /** Calls in all, the first included. */
  readonly attempts: number;
  readonly baseMs: number;
  readonly capMs: number;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
]);

const NO_ANSWER = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * Throttling, a 5xx, or no answer at all (a timeout or a dropped connection): what may succeed when tried
 * again. Everything else (a 4xx: denied, invalid, not found; an error of the caller's own) fails the same
 * way every time.
 */
export function isTransientAwsError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (THROTTLING.has(error.name) || error.name === 'TimeoutError') return true;
  const detail = error as {
    $metadata?: { httpStatusCode?: number };
    $retryable?: { throttling?: boolean };
    code?: unknown;
  };
  if (detail.$retryable?.throttling) return true;
  if (typeof detail.code === 'string' && NO_ANSWER.has(detail.code)) return true;
  const status = detail.$metadata?.httpStatusCode;
  return status !== undefined && (status === 429 || status >= 500);
}

export function backoffMs(retry: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Calls `fn` until it succeeds, it throws what `retryable` refuses, or the attempts run out. */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  retryable: (error: unknown) => boolean = isTransientAwsError,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= policy.attempts || !retryable(error)) throw error;
      await (policy.sleep ?? realSleep)(backoffMs(attempt - 1, policy));
    }
  }
}
