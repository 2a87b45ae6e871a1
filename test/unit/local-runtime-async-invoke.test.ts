import {
  asyncConfigFor,
  invokeAsync,
  type DestinationRecord,
} from '../../scripts/lib/local-runtime/async-invoke';
import type { DiscoveredAsyncConfig } from '../../scripts/lib/local-runtime/discover';
import type { InvocationOutcome } from '../../scripts/lib/local-runtime/function-host';

const failure: InvocationOutcome = {
  ok: false,
  error: { errorType: 'Error', errorMessage: 'boom', trace: ['at x'] },
  durationMs: 1,
};
const success: InvocationOutcome = { ok: true, payload: null, durationMs: 1 };
const config = (retries: number): DiscoveredAsyncConfig => ({
  address: 'aws_lambda_function_event_invoke_config.c',
  target: { functionName: 'fn', qualifier: 'live' },
  maximumRetryAttempts: retries,
  onFailureArn: 'arn:aws:sqs:eu-west-1:123456789012:fn-dlq',
});

async function run(outcomes: InvocationOutcome[], retries: number) {
  const sent: Array<{ arn: string; record: DestinationRecord }> = [];
  const waits: number[] = [];
  let calls = 0;
  const result = await invokeAsync({
    invoke: async () => outcomes[Math.min(calls++, outcomes.length - 1)] as InvocationOutcome,
    config: config(retries),
    event: { detail: {} },
    requestId: 'req-1',
    functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:fn:live',
    version: '3',
    sendToDestination: async (arn, record) => void sent.push({ arn, record }),
    sleep: async (ms) => void waits.push(ms),
    now: () => Date.UTC(2024, 0, 1),
  });
  return { result, sent, waits, calls };
}

describe('asynchronous invocation (EventBridge to a function)', () => {
  it('retries a failing function as many times as configured, then sends the on-failure destination its record', async () => {
    const { result, sent, waits, calls } = await run([failure], 2);
    expect(calls).toBe(3);
    expect(waits).toEqual([1_000, 2_000]);
    expect(result).toMatchObject({ attempts: 3, destination: 'arn:aws:sqs:eu-west-1:123456789012:fn-dlq' });
    expect(sent).toEqual([
      {
        arn: 'arn:aws:sqs:eu-west-1:123456789012:fn-dlq',
        record: {
          version: '1.0',
          timestamp: '2024-01-01T00:00:00.000Z',
          requestContext: {
            requestId: 'req-1',
            functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:fn:live',
            condition: 'RetriesExhausted',
            approximateInvokeCount: 3,
          },
          requestPayload: { detail: {} },
          responseContext: { statusCode: 200, executedVersion: '3', functionError: 'Unhandled' },
          responsePayload: { errorType: 'Error', errorMessage: 'boom', trace: [] },
        },
      },
    ]);
  });

  it('stops retrying once an attempt succeeds, and sends nothing', async () => {
    const { result, sent, calls } = await run([failure, success], 2);
    expect([calls, result.outcome.ok, sent]).toEqual([2, true, []]);
  });

  it('runs once without retries when the function allows none', async () => {
    const { calls, sent } = await run([failure], 0);
    expect([calls, sent.length]).toEqual([1, 1]);
  });

  it("uses the invoked alias's settings before the function's", () => {
    const fnWide = { ...config(1), target: { functionName: 'fn' } };
    const alias = config(0);
    expect(asyncConfigFor([fnWide, alias], { functionName: 'fn', qualifier: 'live' })).toBe(alias);
    expect(asyncConfigFor([fnWide, alias], { functionName: 'fn', qualifier: 'blue' })).toBe(fnWide);
    expect(asyncConfigFor([alias], { functionName: 'other' })).toBeUndefined();
  });
});
