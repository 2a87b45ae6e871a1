import pLimit from 'p-limit';
import { describeError } from '../lib/redact';
import { countIn } from './bucket';
import { epochOf, epochStart, type AllocationConfig } from './config';
import { planPass, type LocalLimit, type PassPlan, type PeerView } from './plan';
import { decodeSnapshot, encodeSnapshot, SnapshotError, type SnapshotEntry } from './snapshot';
import type { SnapshotStore } from './snapshot-store';
import type { LimiterStore, OverrideResult } from './store';

/** Days an item with no limit left on it is kept after the sync releases its override. */
const IDLE_ITEM_DAYS = 30;

/** What a pass reports (metrics and logs); entity ids never appear. */
export interface SyncMetrics {
  /** Every region, every pass: whether its previous-epoch snapshot was known (and why not). */
  peerView(peer: string, known: boolean, reason?: string): void;
  snapshotAgeMs(peer: string, ms: number): void;
  decodeFailed(peer: string, field: string): void;
  unreadableItems(count: number): void;
  planned(plan: PassPlan): void;
  overridesWritten(count: number, failed: number): void;
}

export interface SyncPassOptions {
  readonly config: AllocationConfig;
  readonly region: string;
  readonly store: LimiterStore;
  readonly snapshots: SnapshotStore;
  readonly metrics: SyncMetrics;
  readonly now?: () => number;
  /** Compute and report, write no override. */
  readonly shadow?: boolean;
  /** Time allowed to read a peer's snapshot, ms. Default: 5,000. */
  readonly peerTimeoutMs?: number;
  /** Override writes in flight at once. Default: 16. */
  readonly writeConcurrency?: number;
  /**
   * Time into a window before a pass runs: the hot path's counters of the window before are final once every
   * clock has left it, and its heartbeat then lands in its own epoch's interval. Default: the allocation
   * config's activation delay, at least 1,000 ms.
   */
  readonly settleMs?: number;
}

export interface PassResult {
  readonly epoch: number;
  readonly computed: number;
  readonly written: number;
  readonly heldBack: number;
  readonly peersUnknown: number;
  readonly snapshot: 'written' | 'exists' | 'too-large';
}

/** A pass whose shrinks did not all land: its heartbeat is not written, so the hot path falls back in time. */
export class SyncPassError extends Error {
  constructor(readonly failed: number) {
    super(`${failed} override write(s) failed; the pass's heartbeat was not recorded`);
    this.name = 'SyncPassError';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One run of a region's quota sync (ADR-127), for the epoch it runs in: reads the region's limiter table,
 * reads every region's snapshot of the previous epoch (its own included, so every region computes from the
 * same inputs), allocates, writes the triggered overrides to its own table only, records its heartbeat and
 * last publishes its own snapshot, so a peer that sees it knows its overrides are in force.
 */
export async function runSyncPass(options: SyncPassOptions): Promise<PassResult> {
  const { config, region, store, snapshots, metrics } = options;
  const now = options.now ?? Date.now;
  let started = now();
  // A pass completes inside the interval its epoch's shares are enforced in (enforcement.ts), and after
  // every clock has left the window it reports.
  const settle = options.settleMs ?? Math.max(1000, config.activationDelayMs);
  const intoWindow = started - epochStart(config, epochOf(config, started));
  if (intoWindow < settle) {
    await sleep(settle - intoWindow);
    started = now();
  }
  const epoch = epochOf(config, started);

  // The heartbeat first: an override this pass reads was written by a pass the heartbeat may not show yet,
  // never the other way round (the plan's prior is then conservative).
  const heartbeat = await store.readHeartbeat();
  const viewsRead = readViews(options, epoch - 1, started);
  const local: LocalLimit[] = [];
  const entries: SnapshotEntry[] = [];
  let unreadable = 0;
  for await (const item of store.scan(() => unreadable++)) {
    local.push({ entity: item.entity, resource: item.resource, state: item });
    const counters = item.counters;
    const demand = counters ? countIn(counters.demand, counters.window, epoch - 1) : 0;
    const consumed = counters ? countIn(counters.consumed, counters.window, epoch - 1) : 0;
    if (demand > 0 || item.operator !== undefined)
      entries.push({
        entity: item.entity,
        resource: item.resource,
        consumed: Math.min(consumed, demand),
        demand,
        ...(item.operator !== undefined ? { operator: item.operator } : {}),
      });
  }
  if (unreadable > 0) metrics.unreadableItems(unreadable);

  const views = await viewsRead;
  const plan = planPass({ config, region, epoch, now: now(), heartbeat, views, local });
  metrics.planned(plan);

  let written = 0;
  let failed = 0;
  if (!options.shadow) {
    // A shrink must be in force, leases included, before the peers' grows of this epoch take effect (the
    // next window's start plus the activation delay): no write starts after the window ends.
    const deadline = epochStart(config, epoch + 1);
    const limit = pLimit(options.writeConcurrency ?? 32);
    const attempt = (write: () => Promise<OverrideResult>) =>
      limit(async () => {
        if (now() >= deadline) {
          failed++;
          return;
        }
        try {
          // 'changed': another pass changed it since this one read it, and this write did not happen.
          if ((await write()) === 'written') written++;
          else failed++;
        } catch {
          failed++;
        }
      });
    const idleUntilSec = Math.floor(now() / 1000) + IDLE_ITEM_DAYS * 86_400;
    await Promise.all([
      ...plan.writes.map((w) =>
        attempt(() => store.writeOverride(w.entity, w.resource, w.override, w.expectedEpoch)),
      ),
      ...plan.releases.map((r) =>
        attempt(() => store.releaseOverride(r.entity, r.resource, r.expectedEpoch, idleUntilSec)),
      ),
    ]);
    metrics.overridesWritten(written, failed);
    if (failed > 0) throw new SyncPassError(failed);
  }
  const partial = [...views.values()].some((view) => !view.known);
  await store.writeHeartbeat(epoch, heartbeat, { partial, staticCaps: plan.staticCaps }, now());

  let body: string | undefined;
  try {
    body = encodeSnapshot({ region, epoch, generatedAt: now(), config, entries });
  } catch (error) {
    // Too many entries or too large: peers see this region as unknown and shrink, which is safe.
    if (!(error instanceof SnapshotError)) throw error;
  }
  const snapshot = body === undefined ? 'too-large' : await snapshots.put(epoch, body);
  const peersUnknown = [...views.values()].filter((v) => !v.known).length;
  return { epoch, computed: plan.computed, written, heldBack: plan.heldBack, peersUnknown, snapshot };
}

/** Snapshots read at once (each region's, its own included). */
const PEER_READS = 4;

/** Every region's snapshot of `epoch` (bounded time each): decoded, or unknown with the reason. */
async function readViews(
  options: SyncPassOptions,
  epoch: number,
  now: number,
): Promise<Map<string, PeerView>> {
  const { config, snapshots, metrics } = options;
  const timeoutMs = options.peerTimeoutMs ?? 5000;
  const reads = pLimit(PEER_READS);
  const entries = await Promise.all(
    config.regions.map(({ region }) =>
      reads(async (): Promise<[string, PeerView]> => {
        let body: Uint8Array | undefined;
        try {
          body = await snapshots.get(region, epoch, AbortSignal.timeout(timeoutMs));
        } catch (error) {
          if (error instanceof SnapshotError) {
            metrics.decodeFailed(region, error.field);
            metrics.peerView(region, false, 'undecodable');
            return [region, { known: false, reason: 'undecodable' }];
          }
          metrics.peerView(region, false, `unreachable: ${describeError(error)}`);
          return [region, { known: false, reason: 'unreachable' }];
        }
        if (body === undefined) {
          metrics.peerView(region, false, 'missing');
          return [region, { known: false, reason: 'missing' }];
        }
        try {
          const snapshot = decodeSnapshot(body, { region, epoch });
          metrics.peerView(region, true);
          metrics.snapshotAgeMs(region, Math.max(0, now - snapshot.generatedAt));
          return [region, { known: true, snapshot }];
        } catch (error) {
          if (!(error instanceof SnapshotError)) throw error;
          metrics.decodeFailed(region, error.field);
          metrics.peerView(region, false, 'undecodable');
          return [region, { known: false, reason: 'undecodable' }];
        }
      }),
    ),
  );
  return new Map(entries);
}
