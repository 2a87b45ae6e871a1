import type { BucketState, WindowCounters } from './bucket';
import { nextHeartbeat, type Heartbeat, type LimitState, type SyncOverride } from './enforcement';

/** What a completed pass records with its heartbeat. */
export interface PassRecord {
  /** Some region's snapshot was unknown to it. */
  readonly partial: boolean;
  /** Per resource, the least default static share under the configs it saw. */
  readonly staticCaps: ReadonlyMap<string, number>;
}

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
   * A random id of this trip to the table, written with it: a retried write that finds its own trip there
   * landed the first time.
   */
  readonly trip: string;
  /**
   * Seconds since the epoch after which DynamoDB may delete an idle item; only for items that hold no limit
   * (the write is then conditional on none having been added since).
   */
  readonly expiresAtSec?: number;
}

/** `changed`: another writer changed the override since it was read (the write did not happen). */
export type OverrideResult = 'written' | 'changed';

/** The region's limiter table as the hot path and the sync use it. */
export interface LimiterStore {
  /** Strongly consistent. */
  read(entity: string, resource: string): Promise<LimiterItem | undefined>;
  /** False when another writer got there first (re-read and retry). */
  writeBucket(write: BucketWrite): Promise<boolean>;
  /**
   * Writes the sync's own attributes only (an operator's value is never touched, and wins in the hot path),
   * and only over the override read (`expectedEpoch`, undefined for none), so two passes of a region that
   * overlap cannot undo each other's shrinks.
   */
  writeOverride(
    entity: string,
    resource: string,
    override: SyncOverride,
    expectedEpoch: number | undefined,
  ): Promise<OverrideResult>;
  /**
   * Removes an override no region needs (conditional on the one read), leaving an item with no limit to
   * expire when idle; an item an operator set a value on is left alone.
   */
  releaseOverride(
    entity: string,
    resource: string,
    expectedEpoch: number,
    expiresAtSec: number,
  ): Promise<OverrideResult>;
  /** The region's completed sync passes. */
  readHeartbeat(): Promise<Heartbeat | undefined>;
  /** Records that the pass of `epoch` completed (on the heartbeat read as `previous`); never moves it back. */
  writeHeartbeat(epoch: number, previous: Heartbeat | undefined, pass: PassRecord, at: number): Promise<void>;
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

  async writeOverride(
    entity: string,
    resource: string,
    override: SyncOverride,
    expectedEpoch: number | undefined,
  ): Promise<OverrideResult> {
    const key = keyOf(entity, resource);
    const item = this.items.get(key);
    if (item?.sync?.epoch !== expectedEpoch) return 'changed';
    this.counts.overrideWrites++;
    this.items.set(key, { ...(item ?? { entity, resource }), sync: override });
    return 'written';
  }

  async releaseOverride(entity: string, resource: string, expectedEpoch: number): Promise<OverrideResult> {
    const key = keyOf(entity, resource);
    const item = this.items.get(key);
    if (
      !item ||
      item.sync?.epoch !== expectedEpoch ||
      item.operator !== undefined ||
      item.static !== undefined
    )
      return 'changed';
    this.counts.overrideWrites++;
    this.items.set(key, { ...item, sync: undefined });
    return 'written';
  }

  async readHeartbeat(): Promise<Heartbeat | undefined> {
    return this.heartbeat;
  }

  async writeHeartbeat(epoch: number, _previous: Heartbeat | undefined, pass: PassRecord): Promise<void> {
    this.heartbeat = nextHeartbeat(this.heartbeat, epoch, pass);
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
