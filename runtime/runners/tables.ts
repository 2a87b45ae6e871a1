/**
 * Where the control plane keeps what it knows. Global tables (replicated to every region, last writer wins,
 * a conditional write checked in the region written only):
 *
 * - idempotency-keys (`key`): `delivery:<X-GitHub-Delivery>`, written by the router that accepted it; and
 *   `job:<workflow_job.id>:<action>:<workflow_job.run_attempt>`, the signed body's identity, written with it
 *   (a captured body resent under a fresh delivery id finds it). Both are claimed in two phases (below).
 *   The router appends `:<workflow_job.status>` to the job key (router.ts `bodyKey`): a job behind an
 *   environment's approval is sent `queued` twice, with status `waiting` and then `queued`.
 * - runner-workflows (`workflowId`): `run:<owner/name>:<run id>:<attempt>`, where a run's first job went;
 *   `job:<job id>`, the region and task that took a job.
 * - artifact-cache-index (`cacheKey`): `<owner>/<name>/<sha256 hex>#<region>`, one item per repository,
 *   object and region holding it. A region's upload writes only its own item, so two regions recording
 *   the same object within the replication lag cannot lose one another's (a global table resolves a
 *   conflict per item, last writer wins); a read asks for every configured region's item in one
 *   BatchGetItem. The repository in the key scopes an entry to it: another repository's job (a fork's CI
 *   in the same organisation) cannot read it even knowing the hash.
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
 * - claim items (idempotency-keys, `delivery:...` and `job:...:...:...`), two phases: `state` (S: pending |
 *   done), `owner` (S, one router invocation's token: only it finishes or releases the claim), `region` (S,
 *   the router's), `deliveryId` (S), `receivedAt` (N, epoch ms), `pendingUntil` (N, epoch ms, the owner's
 *   lease while `pending`: past it, another router may take the claim over), `doneAt` (N, epoch ms, once
 *   `done`: the message was sent), `expiresAt` (now + deliveryTtlSec). An item without `state` (written
 *   before the two phases) counts as `done`.
 * - job tombstone (runner-workflows `job:<id>`, written by the router when a `completed` finds no record):
 *   `completed` (BOOL, true), `completedAt` (N, epoch ms), `expiresAt` (now + leaseTtlSec); no `region`.
 *   The dispatcher skips a job whose record is a tombstone (the job ended before it was dispatched).
 * - cache item (artifact-cache-index): `region` (S), `bytes` (N), `updatedAt` (N, epoch ms), `expiresAt`
 *   (that region's copy's expiry: a later upload elsewhere never extends it).
 */

export const TTL_ATTRIBUTE = 'expiresAt';

export const deliveryKey = (deliveryId: string): string => `delivery:${deliveryId}`;
/** The claim of a signed `workflow_job` body's identity in idempotency-keys (see the file's comment). */
export const jobEventKey = (jobId: number, action: string, runAttempt: number): string =>
  `job:${jobId}:${action}:${runAttempt}`;
export const runKey = (repository: string, runId: number, runAttempt: number): string =>
  `run:${repository}:${runId}:${runAttempt}`;
export const jobKey = (jobId: number): string => `job:${jobId}`;
/** An artifact cache entry: `<owner>/<name>/<sha256>`, also its object key in every region's bucket. */
export const repositoryCacheKey = (repository: string, sha256: string): string => `${repository}/${sha256}`;
/** The artifact-cache-index item of one region's copy of an entry. */
export const cacheCopyKey = (entry: string, region: string): string => `${entry}#${region}`;
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
