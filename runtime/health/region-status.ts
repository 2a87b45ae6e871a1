import { PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { HealthVerdict } from './core';

/**
 * Records a region's verdict in the region-status table (a global table: every region reads every
 * region's last word). Items expire after `ttlSec`, so a region that stopped reporting disappears.
 */
export async function recordRegionStatus(
  client: DynamoDBClient,
  tableName: string,
  verdict: HealthVerdict,
  ttlSec: number,
): Promise<void> {
  const expiresAt = Math.floor(Date.parse(verdict.checkedAt) / 1000) + ttlSec;
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: {
        region: { S: verdict.region },
        status: { S: verdict.status },
        checkedAt: { S: verdict.checkedAt },
        failing: { L: verdict.failing.map((name) => ({ S: name })) },
        expiresAt: { N: String(expiresAt) },
      },
    }),
  );
}
