/**
 * Where the control plane keeps what it knows. Global tables (replicated to every region, last writer wins,
 * a conditional write checked in the region written only):
 *
 * - idempotency-keys (`key`): `delivery:<X-GitHub-Delivery>`, written by the router that accepted it.
 * - runner-workflows (`workflowId`): `run:<owner/name>:<run id>:<attempt>`, where a run's first job went;
 *   `job:<job id>`, the region and task that took a job.
 * - artifact-cache-index (`cacheKey`): `<organisation>/<sha256 hex>`, the regions holding the object.
 * - region-status (`region`): `<region>`, the health function's verdict (with a TTL); `operator:<region>`,
 *   the operator's status and its audit trail (no TTL: a drain never expires).
 *
 * The region's own state table (`pk`, `sk`; strongly consistent in its region):
 *
 * - `runner-job#<job id>` / `claim`: the dispatcher's claim of a job, before it starts a runner.
 * - `runner-leases` / `<organisation>`: the organisation's runner leases in the region.
 * - `runner-dispatch` / `<window start, epoch seconds>`: dispatches started and failed in a minute.
 * - `runner-spill` / `state`: the region's tripped spillover triggers (hysteresis).
 *
 * Every item that may go stale carries `expiresAt` (epoch seconds), the tables' TTL attribute.
 *
 * Attributes:
 *
 * - operator item: `status` (S: active | draining), `changedBy` (S, the caller's IAM ARN), `changedAt`
 *   (S, ISO 8601), `reason` (S), `audit` (L of M {status, by, at, reason}, newest last, at most 50),
 *   `version` (N).
 * - health item (runtime/health/region-status.ts): `status` (S: healthy | unhealthy), `checkedAt`,
 *   `failing`, `expiresAt`.
 * - lease item: `leases` (M: job id -> N, the lease's expiry in epoch seconds), `version` (N).
 * - dispatch counter item: `dispatched` (N), `failed` (N), `expiresAt`.
 * - spill item: `spilling` (L of S), `version` (N), `updatedAt` (N, epoch ms).
 * - job item (runner-workflows): `region`, `runnerType`, `taskArn`, `repository`, `organization`,
 *   `runId` (N), `dispatchedAt` (N, epoch ms), `expiresAt`.
 * - run item (runner-workflows): `region` (S), `placedAt` (N, epoch ms), `expiresAt`.
 * - delivery item (idempotency-keys): `region` (S, the router's), `receivedAt` (N), `expiresAt`.
 * - cache item (artifact-cache-index): `regions` (SS), `bytes` (N), `updatedAt` (N), `expiresAt`, and
 *   `expiresAt:<region>` (N) per region: a later upload elsewhere must not extend an earlier region's copy.
 */

export const TTL_ATTRIBUTE = 'expiresAt';

export const deliveryKey = (deliveryId: string): string => `delivery:${deliveryId}`;
export const runKey = (repository: string, runId: number, runAttempt: number): string =>
  `run:${repository}:${runId}:${runAttempt}`;
export const jobKey = (jobId: number): string => `job:${jobId}`;
export const cacheKey = (organization: string, sha256: string): string => `${organization}/${sha256}`;
export const operatorKey = (region: string): string => `operator:${region}`;

export const jobClaimKey = (jobId: number) => ({ pk: `runner-job#${jobId}`, sk: 'claim' }) as const;
export const LEASES_PARTITION = 'runner-leases';
export const leaseKey = (organization: string) => ({ pk: LEASES_PARTITION, sk: organization }) as const;
export const DISPATCH_PARTITION = 'runner-dispatch';
/** Dispatch counters are kept per minute. */
export const DISPATCH_WINDOW_SEC = 60;
export const dispatchKey = (windowStartSec: number) =>
  ({ pk: DISPATCH_PARTITION, sk: String(windowStartSec) }) as const;
export const SPILL_KEY = { pk: 'runner-spill', sk: 'state' } as const;

/** A runner queue's name: `<prefix>-<runner type>` in every region (the prefix is `<env>-runners`). */
export const runnerQueueName = (prefix: string, runnerType: string): string => `${prefix}-${runnerType}`;
/** The region's runner dead-letter queue. */
export const runnerDeadLetterQueueName = (prefix: string): string => `${prefix}-dead-letter`;
/** A queue's URL, as SQS names it (the SDK sends to its own endpoint and names the queue by it). */
export const queueUrlOf = (region: string, account: string, name: string): string =>
  `https://sqs.${region}.amazonaws.com/${account}/${name}`;
