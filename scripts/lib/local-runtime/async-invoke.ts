/**
 * Lambda's asynchronous invocation (what EventBridge does to a function target): the event is accepted at
 * once, run, retried on a function error up to the function's `maximum_retry_attempts` (default 2), and once
 * retries are exhausted sent to its on-failure destination with Lambda's destination record. Lambda waits about
 * a minute, then two, between attempts; locally the delays are short (`retryDelaysMs`).
 */
import type { DiscoveredAsyncConfig, FunctionRef } from './discover';
import type { FunctionError, InvocationOutcome } from './function-host';

/** The record Lambda sends an on-failure destination. */
export interface DestinationRecord {
  readonly version: '1.0';
  readonly timestamp: string;
  readonly requestContext: {
    readonly requestId: string;
    readonly functionArn: string;
    readonly condition: 'RetriesExhausted' | 'EventAgeExceeded';
    readonly approximateInvokeCount: number;
  };
  readonly requestPayload: unknown;
  readonly responseContext: {
    readonly statusCode: 200;
    readonly executedVersion: string;
    readonly functionError: 'Unhandled';
  };
  readonly responsePayload: {
    readonly errorType: string;
    readonly errorMessage: string;
    readonly trace: readonly string[];
  };
}

export function destinationRecord(input: {
  readonly requestId: string;
  readonly functionArn: string;
  readonly attempts: number;
  readonly event: unknown;
  readonly version: string;
  readonly error: FunctionError;
  readonly at: number;
  readonly condition?: 'RetriesExhausted' | 'EventAgeExceeded';
}): DestinationRecord {
  return {
    version: '1.0',
    timestamp: new Date(input.at).toISOString(),
    requestContext: {
      requestId: input.requestId,
      functionArn: input.functionArn,
      condition: input.condition ?? 'RetriesExhausted',
      approximateInvokeCount: input.attempts,
    },
    requestPayload: input.event,
    responseContext: { statusCode: 200, executedVersion: input.version, functionError: 'Unhandled' },
    // The trace stays in the local log: a destination carries no stack.
    responsePayload: { errorType: input.error.errorType, errorMessage: input.error.errorMessage, trace: [] },
  };
}

/** The async settings of the function (or alias) invoked: the alias's own, else the function's. */
export function asyncConfigFor(
  configs: readonly DiscoveredAsyncConfig[],
  ref: FunctionRef,
): DiscoveredAsyncConfig | undefined {
  const same = (config: DiscoveredAsyncConfig) => config.target.functionName === ref.functionName;
  return (
    configs.find((config) => same(config) && config.target.qualifier === ref.qualifier) ??
    configs.find((config) => same(config) && config.target.qualifier === undefined)
  );
}

export interface AsyncInvokeOptions {
  readonly invoke: () => Promise<InvocationOutcome>;
  readonly config?: DiscoveredAsyncConfig;
  readonly event: unknown;
  readonly requestId: string;
  readonly functionArn: string;
  readonly version: string;
  /** Sends a destination record to the on-failure ARN. */
  readonly sendToDestination: (arn: string, record: DestinationRecord) => Promise<void>;
  /** Waits between attempts. Default: 1 s, then 2 s. */
  readonly retryDelaysMs?: readonly number[];
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export interface AsyncInvokeResult {
  readonly attempts: number;
  readonly outcome: InvocationOutcome;
  /** Where the failed event went, if anywhere. */
  readonly destination?: string;
}

export async function invokeAsync(options: AsyncInvokeOptions): Promise<AsyncInvokeResult> {
  const retries = Math.max(0, Math.min(2, options.config?.maximumRetryAttempts ?? 2));
  const delays = options.retryDelaysMs ?? [1_000, 2_000];
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  let attempts = 0;
  let outcome: InvocationOutcome;
  for (;;) {
    attempts++;
    outcome = await options.invoke();
    if (outcome.ok || attempts > retries) break;
    await sleep(delays[Math.min(attempts - 1, delays.length - 1)] ?? 1_000);
  }
  const destination = options.config?.onFailureArn;
  if (outcome.ok || !destination) return { attempts, outcome };
  await options.sendToDestination(
    destination,
    destinationRecord({
      requestId: options.requestId,
      functionArn: options.functionArn,
      attempts,
      event: options.event,
      version: options.version,
      error: outcome.error,
      at: now(),
    }),
  );
  return { attempts, outcome, destination };
}
