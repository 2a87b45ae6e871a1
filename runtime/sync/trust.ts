import { compareHlc, lineageOf, type CrdtDocument, type GCounter, type Hlc } from '../crdt';
import { PermanentError, RetryableError } from '../lib/failures';
import type { Envelope } from './envelope';
import { foldAfterMs } from './folding';

/** Who may send this region sync messages, and how far ahead their clocks may run. */
export interface TrustPolicy {
  /** This region: its own messages never come back to it. */
  readonly region: string;
  /** Regions whose messages merge here. */
  readonly peers: readonly string[];
  /** How far a stamp may be ahead of this region's clock. */
  readonly maxClockSkewMs: number;
}

/** A message from outside the trust boundary: dead-lettered with the rule it broke. */
export class UntrustedEnvelopeError extends PermanentError {
  constructor(code: string, reason: string) {
    super(code, reason);
    this.name = 'UntrustedEnvelopeError';
  }
}

function* stampsOf(body: CrdtDocument): Generator<Hlc> {
  for (const field of body.values()) {
    for (const variant of field) {
      yield variant.created;
      if (variant.crdt.type === 'lww') yield variant.crdt.state.stamp;
    }
  }
}

/** Every fold (counters) and horizon (sets) a body carries: the group it covers, and up to when. */
function* foldsOf(body: CrdtDocument): Generator<{ group: string; beforeMs: number; horizon: boolean }> {
  const counters = (counter: GCounter) =>
    [...counter.folds].map(([group, fold]) => ({ group, beforeMs: fold.beforeMs, horizon: false }));
  for (const field of body.values()) {
    for (const { crdt } of field) {
      if (crdt.type === 'gcounter') yield* counters(crdt.state);
      if (crdt.type === 'pncounter') yield* [...counters(crdt.state.p), ...counters(crdt.state.n)];
      if (crdt.type === 'orset')
        for (const [group, beforeMs] of crdt.state.context.horizons) yield { group, beforeMs, horizon: true };
    }
  }
}

const untrusted = (code: string, reason: string) => new UntrustedEnvelopeError(code, reason);

/**
 * Checks an envelope against the policy before it may merge: its origin is a configured peer (not this
 * region), its clock is that origin's and is not more than the allowed skew ahead of `nowMs` (a clock far
 * ahead would pin every later stamp there; it may heal as time passes, so it is retried), no stamp in the
 * body is later than the message's own clock, and no fold or horizon is younger than an honest one can be
 * (one could retire live epochs and delete what they hold). A delta carries no horizon and no fold but its
 * origin's own: only a full state can claim to have seen every dot of an epoch.
 */
export function checkTrust(envelope: Envelope, policy: TrustPolicy, nowMs: number): void {
  if (envelope.origin === policy.region)
    throw untrusted('own-origin', 'o (origin): names this region; its own messages never come back');
  if (!policy.peers.includes(envelope.origin))
    throw untrusted('unknown-origin', 'o (origin): not a configured peer region of this one');
  if (lineageOf(envelope.hlc.replica)?.group !== envelope.origin)
    throw untrusted('clock-not-origin', "h (clock): its replica is not one of the origin region's");
  if (envelope.hlc.wallMs > nowMs + policy.maxClockSkewMs)
    throw new RetryableError(
      'clock-ahead',
      `h (clock): more than ${policy.maxClockSkewMs} ms ahead of this region's clock`,
    );
  for (const stamp of stampsOf(envelope.body))
    if (compareHlc(stamp, envelope.hlc) > 0)
      throw untrusted('stamp-after-clock', 'b (body): a stamp is later than the message clock h');
  const newestHonestFold = nowMs + 2 * policy.maxClockSkewMs - foldAfterMs(policy.maxClockSkewMs);
  for (const fold of foldsOf(envelope.body)) {
    if (fold.beforeMs > newestHonestFold)
      throw untrusted('fold-too-recent', 'b (body): a fold or horizon covers epochs too recent to be folded');
    if (envelope.kind === 'delta' && (fold.horizon || fold.group !== envelope.origin))
      throw untrusted('fold-in-delta', "b (body): a delta may carry only its origin's counter folds");
  }
}
