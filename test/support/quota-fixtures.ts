import type { WindowCounters } from '../../runtime/quota/bucket';
import { epochStart, type AllocationConfig, type ResourceLimit } from '../../runtime/quota/config';
import type { Heartbeat } from '../../runtime/quota/enforcement';
import type { PassPlan } from '../../runtime/quota/plan';
import {
  decodeSnapshot,
  encodeSnapshot,
  type Snapshot,
  type SnapshotEntry,
} from '../../runtime/quota/snapshot';
import type { SnapshotStore } from '../../runtime/quota/snapshot-store';
import type { SyncMetrics } from '../../runtime/quota/sync';

/**
 * The quota tests' common ground: three regions of weight 1, one resource `requests` with a global limit of
 * 90 units per second (90,000 milli-units/s), a one-second burst and no floors, so every region's default
 * static share is 30,000. Windows are 60 s; the epochs start at E (2025-12-02T10:40:00Z).
 */
export const AP = 'ap-southeast-1';
export const EU = 'eu-central-1';
export const US = 'us-east-1';
export const REGIONS = [AP, EU, US] as const;
export type Region = (typeof REGIONS)[number];

/** The heartbeat of a region whose passes all completed, the last one in epoch `epoch`. */
export const ranThrough = (epoch: number): Heartbeat => ({
  epoch,
  completed: [epoch, epoch - 1, epoch - 2],
  partial: [],
  staticCaps: new Map(),
});

export const LIMIT = 90_000;
export const W = 60_000;
export const DELAY = 2100;

export const CONFIG: AllocationConfig = {
  windowSec: 60,
  activationDelayMs: DELAY,
  regions: REGIONS.map((region) => ({ region, weight: 1 })),
  resources: [{ name: 'requests', limit: LIMIT, burstSec: 1, floors: [] }],
};
export const REQUESTS: ResourceLimit = CONFIG.resources[0] as ResourceLimit;

/** The same regions under another global limit (a configuration change rolling out). */
export function configWithLimit(limit: number): AllocationConfig {
  return { ...CONFIG, resources: [{ ...REQUESTS, limit }] };
}

export const E = 29_411_200;

/** `ms` into epoch `epoch`. */
export const at = (epoch: number, ms = 0): number => epochStart(CONFIG, epoch) + ms;

/** The window total (milli-units) of a demand of `perSecond` milli-units per second for a whole window. */
export const windowTotal = (perSecond: number): number => perSecond * CONFIG.windowSec;

/** Counters whose newest window is `window`, `demand[k]` and `consumed[k]` being window `window - k`'s. */
export function counters(
  window: number,
  demand: readonly number[],
  consumed: readonly number[] = [],
): WindowCounters {
  const pad = (values: readonly number[], length: number) => Array.from({ length }, (_, k) => values[k] ?? 0);
  return { window, demand: pad(demand, 5), consumed: pad(consumed, 2) };
}

/** A snapshot as a peer decodes it (encoded and decoded again, so it is one a region could publish). */
export function snapshotOf(
  region: string,
  epoch: number,
  entries: readonly SnapshotEntry[],
  config: AllocationConfig = CONFIG,
): Snapshot {
  return decodeSnapshot(
    encodeSnapshot({ region, epoch, generatedAt: epochStart(config, epoch) + 1000, config, entries }),
  );
}

/**
 * Every region's snapshot bucket in memory: `forRegion(r)` is what region r's sync uses (it writes only its
 * own snapshots, if none exists yet for the epoch, and reads every region's).
 */
export class MemorySnapshots {
  readonly bodies = new Map<string, Uint8Array>();
  readonly puts: { region: string; epoch: number }[] = [];

  static key(region: string, epoch: number): string {
    return `${region}/${epoch}`;
  }

  forRegion(region: string): SnapshotStore {
    return {
      put: async (epoch, body) => {
        const key = MemorySnapshots.key(region, epoch);
        if (this.bodies.has(key)) return 'exists';
        this.puts.push({ region, epoch });
        this.bodies.set(key, new TextEncoder().encode(body));
        return 'written';
      },
      get: async (from, epoch) => this.bodies.get(MemorySnapshots.key(from, epoch)),
    };
  }

  /** Replaces (or plants) a body, as a broken or hostile peer would. */
  setRaw(region: string, epoch: number, body: string): void {
    this.bodies.set(MemorySnapshots.key(region, epoch), new TextEncoder().encode(body));
  }

  read(region: string, epoch: number): Snapshot | undefined {
    const body = this.bodies.get(MemorySnapshots.key(region, epoch));
    return body && decodeSnapshot(body, { region, epoch });
  }
}

/** Every call a sync pass reports, by kind. */
export class RecordingMetrics implements SyncMetrics {
  readonly unknown: { peer: string; reason: string }[] = [];
  readonly decodeFailures: { peer: string; field: string }[] = [];
  readonly plans: PassPlan[] = [];
  readonly written: { count: number; failed: number }[] = [];
  readonly unreadable: number[] = [];

  readonly known: string[] = [];

  peerView(peer: string, known: boolean, reason?: string): void {
    if (known) this.known.push(peer);
    else this.unknown.push({ peer, reason: reason ?? '' });
  }
  snapshotAgeMs(): void {}
  decodeFailed(peer: string, field: string): void {
    this.decodeFailures.push({ peer, field });
  }
  unreadableItems(count: number): void {
    this.unreadable.push(count);
  }
  planned(plan: PassPlan): void {
    this.plans.push(plan);
  }
  overridesWritten(count: number, failed: number): void {
    this.written.push({ count, failed });
  }

  get lastPlan(): PassPlan {
    const plan = this.plans[this.plans.length - 1];
    if (!plan) throw new Error('no pass was planned');
    return plan;
  }
}
