import { MAX_EPOCH_AGE_MS } from './identity';

const DAY_MS = 24 * 3600 * 1000;

/** The longest Lambda invocation: a change an epoch computed may be written this much later. */
export const MAX_INVOCATION_MS = 15 * 60 * 1000;

/**
 * The longest a sync message may still be on its way after it was published: SNS retries a failing
 * delivery to SQS for 23 days, the inbox keeps a message 4 days, its dead-letter queue 14 more (a redrive
 * within them brings it back).
 */
export const MAX_IN_FLIGHT_MS = (23 + 4 + 14) * DAY_MS;

/** How long after it started an epoch has certainly issued its last change. */
export const epochEndsWithinMs = (maxClockSkewMs: number): number =>
  MAX_EPOCH_AGE_MS + MAX_INVOCATION_MS + 2 * maxClockSkewMs;

/** What folding a region's own epochs of a document rests on. */
export interface FoldGround {
  /** The configured peer regions. */
  readonly peers: readonly string[];
  /** Per peer, the clock of the latest full state from it merged into the document whole. */
  readonly heard: ReadonlyMap<string, number> | undefined;
  /** When this region last found the document's state had gone back (a restore, a deleted item). */
  readonly regressedAt: number | undefined;
  /** When the region's table was created: a table restored from a backup is a new table. */
  readonly tableCreatedAt: number | undefined;
  readonly nowMs: number;
  readonly maxClockSkewMs: number;
}

/**
 * The horizon below which a region may fold its own epochs of a document, or undefined when it may not.
 *
 * A region stores every count and dot it issues before it publishes them, so while its state has never
 * gone back it holds every ended epoch's final values and may fold them. When the state did go back (at
 * `regressedAt`, or when the table was created, which is when a restored table came back), values issued
 * before that may live only at the peers or in messages still on their way; the region folds again only
 * once every peer sent it a full state later than every such message could arrive, and that state merged.
 * A restore takes `heard` and `regressedAt` back with the document, so a restored document waits again.
 */
export function foldHorizon(ground: FoldGround): number | undefined {
  if (ground.peers.length === 0) return undefined;
  const wentBack = Math.max(ground.regressedAt ?? 0, ground.tableCreatedAt ?? 0);
  const repairedAfter = wentBack + MAX_IN_FLIGHT_MS + ground.maxClockSkewMs;
  for (const peer of ground.peers) {
    const heard = ground.heard?.get(peer);
    if (heard === undefined || heard < repairedAfter) return undefined;
  }
  return ground.nowMs - epochEndsWithinMs(ground.maxClockSkewMs);
}
