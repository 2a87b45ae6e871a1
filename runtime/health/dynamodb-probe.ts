import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describeError } from '../lib/redact';
import type { ProbeResult } from './core';

/** States in which a table serves reads and writes. */
const SERVING = new Set(['ACTIVE', 'UPDATING']);

/** Probes a DynamoDB table: healthy when it exists and serves, within the timeout. */
export async function probeDynamodbTable(
  client: DynamoDBClient,
  tableName: string,
  timeoutMs: number,
  clock: () => number = Date.now,
): Promise<ProbeResult> {
  const dependency = `dynamodb:${tableName}`;
  const started = clock();
  try {
    const described = await client.send(new DescribeTableCommand({ TableName: tableName }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
    const status = described.Table?.TableStatus ?? 'UNKNOWN';
    return {
      dependency,
      healthy: SERVING.has(status),
      detail: `table ${status}`,
      latencyMs: clock() - started,
    };
  } catch (error) {
    return {
      dependency,
      healthy: false,
      detail: describeFailure(error, timeoutMs),
      latencyMs: clock() - started,
    };
  }
}

function describeFailure(error: unknown, timeoutMs: number): string {
  const name = error instanceof Error ? error.name : 'Error';
  if (name === 'ResourceNotFoundException') return 'table not found';
  if (name === 'AbortError' || name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return describeError(error);
}
