import { GetItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describeError } from '../lib/redact';
import type { ProbeResult } from './core';
import { HEALTH_ITEM_TTL_SEC, healthItemKey } from './probe-item';

// The key lives in an AWS-free module (the stack's IAM condition uses it too); re-exported for one import path.
export { HEALTH_ITEM_PREFIX, HEALTH_ITEM_SORT_KEY, HEALTH_ITEM_TTL_SEC, healthItemKey } from './probe-item';

/** Says a probe found its write in the read; a data-plane probe that passes did both. */
const SERVED = 'wrote and read back the probe item';
/** The strongly consistent read answered, but with less than the write that just succeeded (or no item). */
export const STALE_READ = 'read did not return the probe just written';
/** The update succeeded but did not say which count it wrote: nothing to compare the read with. */
export const NO_COUNT = 'write did not return the probe count';

/**
 * Probes the DynamoDB data plane of `tableName`: adds one to the `probes` counter of the region's own item
 * (see `healthItemKey`, which never collides with sync documents) with `UpdateItem`, which answers with the
 * count N this probe wrote, then reads the item back with a strongly consistent `GetItem`. Healthy only when
 * the read returns `probes` >= N. The health function needs `dynamodb:UpdateItem` and `dynamodb:GetItem` on
 * the table, limited by `dynamodb:LeadingKeys` to `healthItemKey(region).pk`.
 *
 * A counter, not a nonce: the region's health function runs concurrently (Route 53 checkers from many
 * locations, the schedule, several Lambda instances), so another probe may write between this probe's write
 * and its read. With a nonce that reads as someone else's value and fails a healthy region; with a counter
 * a concurrent write can only raise the count. A strongly consistent read below N, or without the item,
 * after an acknowledged write is a data-plane fault.
 *
 * Both calls share one deadline of `timeoutMs`. A control-plane call (DescribeTable) would keep the region
 * in DNS through a data-plane outage. `clock` (epoch ms) times the probe and stamps the item.
 */
export async function probeDynamodbDataPlane(
  client: DynamoDBClient,
  tableName: string,
  region: string,
  timeoutMs: number,
  clock: () => number = Date.now,
): Promise<ProbeResult> {
  const dependency = `dynamodb:${tableName}`;
  const started = clock();
  const result = (healthy: boolean, detail: string): ProbeResult => ({
    dependency,
    healthy,
    detail,
    latencyMs: clock() - started,
  });
  try {
    const abortSignal = AbortSignal.timeout(timeoutMs);
    const { pk, sk } = healthItemKey(region);
    const key = { pk: { S: pk }, sk: { S: sk } };
    const written = await client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: key,
        // ADD is atomic: concurrent probes each get their own count, never the same one twice.
        UpdateExpression: 'ADD probes :one SET checkedAt = :at, expiresAt = :expires',
        ExpressionAttributeValues: {
          ':one': { N: '1' },
          ':at': { S: new Date(started).toISOString() },
          ':expires': { N: String(Math.floor(started / 1000) + HEALTH_ITEM_TTL_SEC) },
        },
        ReturnValues: 'UPDATED_NEW',
      }),
      { abortSignal },
    );
    const count = countOf(written.Attributes?.probes?.N);
    if (count === undefined || count < 1) return result(false, NO_COUNT);
    const read = await client.send(
      new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }),
      { abortSignal },
    );
    const seen = countOf(read.Item?.probes?.N);
    return seen !== undefined && seen >= count ? result(true, SERVED) : result(false, STALE_READ);
  } catch (error) {
    return result(false, describeFailure(error, timeoutMs));
  }
}

/** A DynamoDB number as an integer, or undefined when it is missing or not one. */
function countOf(n: string | undefined): number | undefined {
  if (n === undefined) return undefined;
  const value = Number(n);
  return Number.isInteger(value) ? value : undefined;
}

function describeFailure(error: unknown, timeoutMs: number): string {
  // By name, not `instanceof Error`: the deadline's reason is a DOMException, which may come from another realm.
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined;
  if (name === 'ResourceNotFoundException') return 'table not found';
  if (name === 'AbortError' || name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return describeError(error);
}
