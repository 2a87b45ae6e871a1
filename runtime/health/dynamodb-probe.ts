import { randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describeError } from '../lib/redact';
import type { ProbeResult } from './core';
import { HEALTH_ITEM_TTL_SEC, healthItemKey } from './probe-item';

// The key lives in an AWS-free module (the stack's IAM condition uses it too); re-exported for one import path.
export { HEALTH_ITEM_PREFIX, HEALTH_ITEM_SORT_KEY, HEALTH_ITEM_TTL_SEC, healthItemKey } from './probe-item';

/** Says a probe found the item it wrote; a data-plane probe that passes did both. */
const SERVED = 'wrote and read back the probe item';
/** The strongly consistent read answered, but not with the write that just succeeded. */
export const STALE_READ = 'read did not return the probe just written';

/**
 * Probes the DynamoDB data plane of `tableName`: writes the region's own item (see `healthItemKey`, which
 * never collides with sync documents) with a fresh nonce, then reads it back with a strongly consistent
 * read. Healthy only when the read returns the nonce just written. Both calls share one deadline of
 * `timeoutMs`. A control-plane call (DescribeTable) would keep the region in DNS through a data-plane outage.
 *
 * `clock` (epoch ms) times the probe and stamps the item; `newNonce` makes the per-probe nonce.
 */
export async function probeDynamodbDataPlane(
  client: DynamoDBClient,
  tableName: string,
  region: string,
  timeoutMs: number,
  clock: () => number = Date.now,
  newNonce: () => string = randomUUID,
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
    const nonce = newNonce();
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          ...key,
          nonce: { S: nonce },
          checkedAt: { S: new Date(started).toISOString() },
          expiresAt: { N: String(Math.floor(started / 1000) + HEALTH_ITEM_TTL_SEC) },
        },
      }),
      { abortSignal },
    );
    const read = await client.send(
      new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }),
      { abortSignal },
    );
    return read.Item?.nonce?.S === nonce ? result(true, SERVED) : result(false, STALE_READ);
  } catch (error) {
    return result(false, describeFailure(error, timeoutMs));
  }
}

function describeFailure(error: unknown, timeoutMs: number): string {
  // By name, not `instanceof Error`: the deadline's reason is a DOMException, which may come from another realm.
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined;
  if (name === 'ResourceNotFoundException') return 'table not found';
  if (name === 'AbortError' || name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return describeError(error);
}
