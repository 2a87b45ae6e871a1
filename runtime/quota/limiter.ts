import { randomUUID } from 'node:crypto';
import { RetryableError } from '../lib/failures';
import { addToWindow, capacityOf, fullBucket, refill } from './bucket';
import { epochOf, resourceOf, type AllocationConfig, type ResourceLimit } from './config';
import { enforcedLimit, type Heartbeat, type LimitSource } from './enforcement';
import { isValidEntity } from './snapshot';
import type { LimiterStore } from './store';

export interface LimiterOptions {
  readonly store: LimiterStore;
  readonly config: AllocationConfig;
  readonly region: string;
  readonly now?: () => number;
  /**
   * How long a container keeps tokens it took beyond a request (a lease), ms. Leases come out of the
   * region's bucket, so they never exceed its share; unspent tokens are dropped when the lease ends.
   */
  readonly leaseMs?: number;
  /** How long the sync's heartbeat is trusted before it is read again, ms. */
  readonly heartbeatCacheMs?: number;
  /** Conditional-write attempts before a contended bucket gives up (a transient error). Default: 8. */
  readonly maxAttempts?: number;
  /** Days an idle item with no limit on it is kept. Default: 30. */
  readonly idleDays?: number;
}

export interface Decision {
  readonly admitted: boolean;
  /** The limit in force, milli-units per second. */
  readonly limit: number;
  readonly source: LimitSource;
}

/** Bad `consume` input: names the argument and the rule, never the value. */
export class QuotaInputError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = 'QuotaInputError';
  }
}

interface Lease {
  /** Taken from the bucket and not yet spent; returned to it with the container's next write. */
  tokens: number;
  acquiredAt: number;
  expiresAt: number;
  /** Refusals are answered here until then, without a table round trip. */
  refusedUntil: number;
  limit: number;
  source: LimitSource;
  /** Counted here since the last write; written with the next one. */
  demand: number;
  consumed: number;
}

/** Largest amount in one request: its milli-units stay a safe integer. */
const MAX_AMOUNT = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

/** The delays DESIGN §7 asks of a retry: capped exponential, with full jitter. */
const backoffMs = (attempt: number) => Math.random() * Math.min(50, 2 ** attempt);

/**
 * The limiter's hot path: `consume(entity, resource, amount)` against a token bucket per entity and
 * resource in the region's table, under the limit in force (operator config > unexpired sync override >
 * static config; see enforcement.ts). A request that its container's lease covers costs no table call; one
 * that does not reads the item (strongly consistent) and takes tokens with a write conditional on the
 * version read, so concurrent consumers lose nothing. A container takes up to `leaseMs` of its share at a
 * time, so a busy entity costs about one write per container per lease, not one per request.
 */
export class QuotaLimiter {
  private readonly leases = new Map<string, Lease>();
  private heartbeat: { readonly value: Heartbeat | undefined; readonly readAt: number } | undefined;
  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly heartbeatCacheMs: number;
  private readonly maxAttempts: number;
  private readonly idleSec: number;

  constructor(private readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
    this.leaseMs = options.leaseMs ?? 100;
    this.heartbeatCacheMs = options.heartbeatCacheMs ?? 1000;
    this.maxAttempts = options.maxAttempts ?? 8;
    this.idleSec = (options.idleDays ?? 30) * 86_400;
    if (this.leaseMs + this.heartbeatCacheMs > options.config.activationDelayMs)
      throw new QuotaInputError(
        'leaseMs + heartbeatCacheMs',
        "expected at most the allocation config's activationDelayMs: a grow must wait for every cache",
      );
  }

  /** Takes `amount` whole units (default 1) of `resource` for `entity`, or refuses. */
  async consume(entity: string, resource: string, amount = 1): Promise<Decision> {
    if (typeof entity !== 'string' || !isValidEntity(entity))
      throw new QuotaInputError(
        'entity',
        'expected 1-512 UTF-8 bytes without control characters, not starting with #',
      );
    const settings = typeof resource === 'string' ? resourceOf(this.options.config, resource) : undefined;
    if (!settings) throw new QuotaInputError('resource', 'expected a resource of the allocation config');
    if (!Number.isSafeInteger(amount) || amount < 1 || amount > MAX_AMOUNT)
      throw new QuotaInputError('amount', `expected a whole number of units from 1 to ${MAX_AMOUNT}`);
    const milli = amount * 1000;
    const key = `${resource}\u0000${entity}`;
    const now = this.now();
    const lease = this.leases.get(key);
    if (lease && now < lease.expiresAt && now >= lease.acquiredAt && lease.tokens >= milli) {
      lease.tokens -= milli;
      lease.demand += milli;
      lease.consumed += milli;
      return { admitted: true, limit: lease.limit, source: lease.source };
    }
    if (lease && now < lease.refusedUntil) {
      lease.demand += milli;
      return { admitted: false, limit: lease.limit, source: lease.source };
    }
    // The lease goes with this trip to the table: requests arriving meanwhile cannot spend it twice, and
    // what it counted is written once.
    const previous = lease ? { ...lease } : undefined;
    if (lease) Object.assign(lease, { tokens: 0, demand: 0, consumed: 0 });
    try {
      return await this.acquire(key, entity, settings, milli, previous);
    } catch (error) {
      const current = this.leases.get(key);
      if (current && previous) {
        current.demand += previous.demand;
        current.consumed += previous.consumed;
      }
      throw error;
    }
  }

  private async acquire(
    key: string,
    entity: string,
    resource: ResourceLimit,
    milli: number,
    previous: Lease | undefined,
  ): Promise<Decision> {
    const { config, region, store } = this.options;
    for (let attempt = 1; ; attempt++) {
      const now = this.now();
      const [item, heartbeat] = await Promise.all([store.read(entity, resource.name), this.heartbeatAt(now)]);
      const { limit, source } = enforcedLimit(item ?? {}, { config, region, resource, heartbeat }, now);
      const capacity = capacityOf(limit, resource.burstSec);
      // A new bucket starts with one second of the share (all of it with the default 1 s burst): a share
      // that just moved here must not bring a whole burst the global bucket never had.
      const fresh = fullBucket(Math.min(capacity, limit), now, limit);
      const refilled = refill(item?.bucket ?? fresh, limit, capacity, now);
      // What the container's last lease did not spend goes back first (never above the capacity).
      const tokens = Math.min(capacity, refilled.tokens + (previous?.tokens ?? 0));
      const admitted = tokens >= milli;
      const extra = admitted ? Math.min(tokens - milli, this.leaseExtra(limit, milli, previous, now)) : 0;
      const taken = admitted ? milli + extra : 0;
      const demand = (previous?.demand ?? 0) + milli;
      const consumed = (previous?.consumed ?? 0) + (admitted ? milli : 0);
      const holdsLimit = item && (item.operator ?? item.static ?? item.sync) !== undefined;
      const written = await store.writeBucket({
        entity,
        resource: resource.name,
        expectedVersion: item?.version,
        bucket: { tokens: tokens - taken, refilledAt: refilled.refilledAt, rate: refilled.rate },
        // Counted in the window the write lands in (a slow read must not add to a window already published).
        counters: addToWindow(item?.counters, epochOf(config, this.now()), { demand, consumed }),
        trip: randomUUID(),
        expiresAtSec: holdsLimit ? undefined : Math.floor(now / 1000) + this.idleSec,
      });
      if (written) {
        // Refused: answer refusals here for a lease's time, then take what refilled meanwhile as one lease
        // (a bucket holds more than a lease's worth, so nothing is lost, and an entity over its share costs
        // a trip per lease, not one per request).
        const refusedFor = limit > 0 ? this.leaseMs : this.heartbeatCacheMs;
        // Another request's trip may have set a lease meanwhile: its tokens stay (within their own time),
        // and what was counted meanwhile is written with the next trip.
        const current = this.leases.get(key);
        const live = current && now < current.expiresAt ? current : undefined;
        this.leases.set(key, {
          tokens: extra + (live?.tokens ?? 0),
          acquiredAt: now,
          expiresAt: Math.min(admitted ? now + this.leaseMs : now, live?.expiresAt ?? Infinity),
          refusedUntil: admitted ? 0 : now + Math.max(1, refusedFor),
          limit,
          source,
          demand: current?.demand ?? 0,
          consumed: current?.consumed ?? 0,
        });
        return { admitted, limit, source };
      }
      if (attempt >= this.maxAttempts)
        throw new RetryableError('quota-contention', `the bucket stayed contended after ${attempt} attempts`);
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
    }
  }

  /**
   * Tokens to take ahead of requests: as many as this container asked for per lease since its last trip to
   * the table (none for a first or sparse caller, whose extra tokens would only sit idle), at most one
   * lease of the limit.
   */
  private leaseExtra(limit: number, milli: number, previous: Lease | undefined, now: number): number {
    if (!previous || this.leaseMs === 0) return 0;
    // The caller's rate since its last trip, as tokens per lease.
    const elapsed = Math.max(1, now - previous.acquiredAt);
    const perLease = Math.floor(((previous.demand + milli) * this.leaseMs) / elapsed);
    return Math.min(perLease, Math.floor((limit * this.leaseMs) / 1000));
  }

  private async heartbeatAt(now: number): Promise<Heartbeat | undefined> {
    if (
      !this.heartbeat ||
      now - this.heartbeat.readAt >= this.heartbeatCacheMs ||
      now < this.heartbeat.readAt
    )
      this.heartbeat = { value: await this.options.store.readHeartbeat(), readAt: now };
    return this.heartbeat.value;
  }
}
