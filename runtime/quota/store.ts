import type { BucketState, WindowCounters } from './bucket';
import { nextHeartbeat, type Heartbeat, type LimitState, type SyncOverride } from './enforcement';

/** One entity and resource's item in the region's limiter table. */
export interface LimiterItem extends LimitState {
  readonly entity: string;
  readonly resource: string;
  readonly bucket?: BucketState;
  /** Incremented by every bucket write; absent before the first. */
  readonly version?: number;
}

/** A bucket write, conditional on the version read. */
export interface BucketWrite {
  readonly entity: string;
  readonly resource: string;
  /** The version read (undefined: the item had no bucket yet). */
  readonly expectedVersion: number | undefined;
  readonly bucket: BucketState;
  readonly counters: WindowCounters;
  /**
   * Seconds since the epoch after which DynamoDB may delete an idle item; only for items that hold no limit
   * (the write is then conditional on none having been added since).
   */
  readonly expiresAtSec?: number;
}

export type OverrideResult = 'written' | 'operator-held' | 'newer-exists';

/** The region's limiter table as the hot path and the sync use it. */
export interface LimiterStore {
  /** Strongly consistent. */
  read(entity: string, resource: string): Promise<LimiterItem | undefined>;
  /** False when another writer got there first (re-read and retry). */
  writeBucket(write: BucketWrite): Promise<boolean>;
  /** Never over an operator value, never over an override of a later epoch. */
  writeOverride(entity: string, resource: string, override: SyncOverride): Promise<OverrideResult>;
  /** The region's completed sync passes. */
  readHeartbeat(): Promise<Heartbeat | undefined>;
  /** Records that the pass of `epoch` completed (on the heartbeat read as `previous`); never moves it back. */
  writeHeartbeat(epoch: number, previous: Heartbeat | undefined, at: number): Promise<void>;
  /** Every entity item of the table; an item that does not read is reported, not returned. */
  scan(onUnreadable?: (error: Error) => void): AsyncIterable<LimiterItem>;
}

const keyOf = (entity: string, resource: string) => `${resource}\u0000${entity}`;

/**
 * The limiter table in memory, with DynamoDB's conditional semantics: for unit tests, the simulation and
 * the bench (no AWS). Operator and static values are set directly.
 */
export class MemoryLimiterStore implements LimiterStore {
  readonly items = new Map<string, LimiterItem>();
  heartbeat: Heartbeat | undefined;
  /** Writes by kind, for the bench and tests. */
  readonly counts = { reads: 0, bucketWrites: 0, conflicts: 0, overrideWrites: 0 };

  async read(entity: string, resource: string): Promise<LimiterItem | undefined> {
    this.counts.reads++;
    return this.items.get(keyOf(entity, resource));
  }

  async writeBucket(write: BucketWrite): Promise<boolean> {
    const key = keyOf(write.entity, write.resource);
    const item = this.items.get(key);
    if (item?.version !== write.expectedVersion) {
      this.counts.conflicts++;
      return false;
    }
    if (
      write.expiresAtSec !== undefined &&
      item &&
      (item.operator ?? item.static ?? item.sync) !== undefined
    ) {
      this.counts.conflicts++;
      return false;
    }
    this.counts.bucketWrites++;
    this.items.set(key, {
      ...(item ?? { entity: write.entity, resource: write.resource }),
      bucket: write.bucket,
      counters: write.counters,
      version: (write.expectedVersion ?? 0) + 1,
    });
    return true;
  }

  async writeOverride(entity: string, resource: string, override: SyncOverride): Promise<OverrideResult> {
    const key = keyOf(entity, resource);
    const item = this.items.get(key);
    if (item?.operator !== undefined) return 'operator-held';
    if (item?.sync && item.sync.epoch > override.epoch) return 'newer-exists';
    this.counts.overrideWrites++;
    this.items.set(key, { ...(item ?? { entity, resource }), sync: override });
    return 'written';
  }

  async readHeartbeat(): Promise<Heartbeat | undefined> {
    return this.heartbeat;
  }

  async writeHeartbeat(epoch: number): Promise<void> {
    this.heartbeat = nextHeartbeat(this.heartbeat, epoch);
  }

  async *scan(): AsyncIterable<LimiterItem> {
    yield* [...this.items.values()];
  }

  /** An operator's write: `operator` wins over everything; `static` is the fallback. */
  setLimits(entity: string, resource: string, limits: { operator?: number; static?: number }): void {
    const key = keyOf(entity, resource);
    this.items.set(key, { ...(this.items.get(key) ?? { entity, resource }), ...limits });
  }
}
