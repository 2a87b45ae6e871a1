import { MAX_EPOCH_AGE_MS } from './identity';

/** How long a message may wait in a region's inbox before SQS discards it (the sync bus's retention). */
export const INBOX_RETENTION_MS = 4 * 24 * 3600 * 1000;

/** The longest Lambda invocation: a change an epoch computed may be written this much later. */
export const MAX_INVOCATION_MS = 15 * 60 * 1000;

/**
 * How long after a peer's full state an epoch must have started to be folded on its strength: the epoch's
 * life, the slowest write, the clock skew on both sides, and the inbox retention (so no delta of the epoch
 * can still be on its way to that peer).
 */
export const foldAfterMs = (maxClockSkewMs: number): number =>
  MAX_EPOCH_AGE_MS + MAX_INVOCATION_MS + 2 * maxClockSkewMs + INBOX_RETENTION_MS;

/**
 * The horizon below which a region may fold its own epochs of a document: the earliest of the full states
 * it merged from each configured peer (`heard`, by the peer's clock), less `foldAfterMs`. Those states came
 * after everything the epochs issued reached the peer, and their content is merged here, so the region's
 * state holds every count and dot those epochs issued, even if its table went back since (a restore takes
 * `heard` back with the state). Undefined until every peer has sent one.
 */
export function foldHorizon(
  heard: ReadonlyMap<string, number>,
  peers: readonly string[],
  maxClockSkewMs: number,
): number | undefined {
  let earliest = Number.POSITIVE_INFINITY;
  for (const peer of peers) {
    const at = heard.get(peer);
    if (at === undefined) return undefined;
    earliest = Math.min(earliest, at);
  }
  return peers.length === 0 ? undefined : earliest - foldAfterMs(maxClockSkewMs);
}
