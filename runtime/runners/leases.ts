import { RetryableError } from '../lib/failures';
import type { LeaseGrant, Leases, Retry } from './dispatch';

/**
 * The code of the RetryableError thrown when an organisation's lease item stays contended: one
 * organisation's burst, never a sign of the region's health (the dispatcher does not count it toward the
 * region's error rate).
 */
export const LEASE_CONTENTION = 'lease-contention';

/**
 * Runner leases per organisation in the region (issue 12, item 3): the `runner-leases` / `<organisation>`
 * item of the region's state table holds `leases` (lease key -> the lease's expiry, epoch seconds) and
 * `version`, and every change is a write conditional on the version read (strongly consistent in the
 * region), retried with capped exponential backoff and full jitter when another dispatcher got there first.
 *
 * - A lease is one runner: its key is the job id for the job's first runner and `<job id>:1` for the one
 *   retry's (`leaseIdOf`), so a job retried holds two leases and counts twice against its organisation's
 *   cap and the region's capacity, as it runs two runners.
 * - `acquire(org, lease, cap, ttl)` prunes expired leases, then: a lease held already is kept (refreshed to
 *   `now + ttl`; never counted twice); otherwise a live count at or over `cap` refuses, and anything else
 *   adds the lease.
 * - How a lease ends: the job's `completed` delivery releases both of its leases (`release`, one write); a
 *   job GitHub reports over, or found over before its runner started, releases them too; a lost or never-sent
 *   `completed` (a webhook GitHub failed to deliver, a runner that died) is reclaimed when the lease
 *   expires, `leaseTtlSec` after it was taken: the next write of the item prunes it. A job running longer
 *   than `leaseTtlSec` loses its lease then, so the TTL must exceed the longest job.
 * - `waiting` (lease key -> when the wait record lapses, epoch seconds) counts the organisation's jobs that
 *   found it at its cap and wait to be re-sent; it sizes the demand the quota sync allocates by (held +
 *   waiting at once) and lapses by itself when a job stops waiting (dead-lettered, or dispatched elsewhere).
 *   This attribute is an addition to tables.ts's lease item.
 * - `inUse()` counts the live leases of every organisation in the region (the region's capacity).
 *
 * The item carries `expiresAt` a day past its last lease or wait record, so an idle organisation's item
 * goes with the table's TTL; a write after that starts a new item.
 */

/** One organisation's lease item as stored. */
export interface LeaseState {
  readonly leases: ReadonlyMap<string, number>;
  readonly waiting: ReadonlyMap<string, number>;
  readonly version: number;
}

export interface LeaseWrite {
  readonly leases: ReadonlyMap<string, number>;
  readonly waiting: ReadonlyMap<string, number>;
  /** Epoch seconds the item may be deleted after (the table's TTL). */
  readonly expiresAt: number;
}

/** The lease items of the region's state table (dispatch-adapters.ts; in memory for tests). */
export interface LeaseTable {
  /** Strongly consistent. */
  read(organization: string): Promise<LeaseState | undefined>;
  /** Writes `version = expectedVersion + 1` only over the version read (undefined: no item). False if lost. */
  write(organization: string, next: LeaseWrite, expectedVersion: number | undefined): Promise<boolean>;
  /** Every organisation's item (strongly consistent). */
  all(): Promise<readonly LeaseState[]>;
}

export interface LeaseOptions {
  readonly table: LeaseTable;
  readonly now: () => number;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Conditional-write attempts before a contended item gives up (a RetryableError). Default: 6. */
  readonly attempts?: number;
}

/** Leases an item holds at most (DynamoDB items are at most 400 KB): a larger cap waits at this. */
export const MAX_LEASES = 5_000;
/** Wait records an item holds at most: more waiting jobs are not counted in the demand. */
export const MAX_WAITING = 2_000;
/** How long a wait record stands: past the longest re-send delay (900 s) and its processing. */
export const WAIT_RECORD_SEC = 1_000;
/** How long an item outlives its last lease or wait record. */
const ITEM_GRACE_SEC = 86_400;

const BACKOFF_BASE_MS = 20;
const BACKOFF_CAP_MS = 1_000;

/** A lease's key: the job id for the job's first runner, `<job id>:1` for the retry's. */
export const leaseIdOf = (jobId: number, retry: Retry): string =>
  retry === 0 ? String(jobId) : `${jobId}:1`;

/** Both leases a job may hold (released together when it is over). */
export const leaseIdsOf = (jobId: number): readonly string[] => [leaseIdOf(jobId, 0), leaseIdOf(jobId, 1)];

/** Entries whose expiry is still ahead of `nowSec`. */
function live(entries: ReadonlyMap<string, number>, nowSec: number): Map<string, number> {
  return new Map([...entries].filter(([, expiry]) => expiry > nowSec));
}

/** Live leases in a set of items at `nowSec`. */
export function countLive(items: readonly LeaseState[], nowSec: number): number {
  let count = 0;
  for (const item of items) for (const expiry of item.leases.values()) if (expiry > nowSec) count++;
  return count;
}

export class RunnerLeases implements Leases {
  constructor(private readonly options: LeaseOptions) {}

  async acquire(organization: string, key: string, cap: number, ttlSec: number): Promise<LeaseGrant> {
    return this.update<LeaseGrant>(organization, (leases, waiting, nowSec) => {
      const holding = leases.has(key);
      const room = Math.min(Math.max(0, Math.floor(cap)), MAX_LEASES);
      if (holding || leases.size < room) {
        leases.set(key, nowSec + ttlSec);
        waiting.delete(key);
        return {
          changed: true,
          result: { acquired: true, fresh: !holding, held: leases.size, waiting: waiting.size },
        };
      }
      if (waiting.has(key) || waiting.size < MAX_WAITING) waiting.set(key, nowSec + WAIT_RECORD_SEC);
      return {
        changed: true,
        result: { acquired: false, fresh: false, held: leases.size, waiting: Math.max(1, waiting.size) },
      };
    });
  }

  async release(organization: string, keys: readonly string[]): Promise<void> {
    await this.update(organization, (leases, waiting) => {
      let changed = false;
      for (const key of keys) {
        if (leases.delete(key)) changed = true;
        if (waiting.delete(key)) changed = true;
      }
      return { changed, result: undefined };
    });
  }

  async inUse(): Promise<number> {
    return countLive(await this.options.table.all(), Math.floor(this.options.now() / 1000));
  }

  /**
   * Reads the item, prunes what expired, applies `change` and writes conditionally; again after a lost
   * race. A change that changed nothing is not written unless something expired.
   */
  private async update<T>(
    organization: string,
    change: (
      leases: Map<string, number>,
      waiting: Map<string, number>,
      nowSec: number,
    ) => { readonly changed: boolean; readonly result: T },
  ): Promise<T> {
    const { table } = this.options;
    const attempts = this.options.attempts ?? 6;
    for (let attempt = 1; ; attempt++) {
      const nowSec = Math.floor(this.options.now() / 1000);
      const state = await table.read(organization);
      const leases = live(state?.leases ?? new Map(), nowSec);
      const waiting = live(state?.waiting ?? new Map(), nowSec);
      const pruned = leases.size !== (state?.leases.size ?? 0) || waiting.size !== (state?.waiting.size ?? 0);
      const { changed, result } = change(leases, waiting, nowSec);
      if (!changed && !pruned) return result;
      const last = Math.max(nowSec, ...leases.values(), ...waiting.values());
      if (
        await table.write(organization, { leases, waiting, expiresAt: last + ITEM_GRACE_SEC }, state?.version)
      )
        return result;
      if (attempt >= attempts)
        throw new RetryableError(
          LEASE_CONTENTION,
          `the organisation's lease item stayed contended after ${attempt} attempts`,
        );
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
      await (this.options.sleep ?? defaultSleep)(
        Math.floor((this.options.random ?? Math.random)() * ceiling),
      );
    }
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
