import { lineageOf, type CrdtDocument, type Hlc } from '../crdt';
import { PermanentError } from '../lib/failures';
import type { Envelope } from './envelope';

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

/**
 * Checks an envelope against the policy before it may merge: its origin is a configured peer (not this
 * region), its clock is that origin's, and neither its clock nor any stamp it carries is more than the
 * allowed skew ahead of `nowMs` (a register stamped in the far future would win every later write).
 */
export function checkTrust(envelope: Envelope, policy: TrustPolicy, nowMs: number): void {
  if (envelope.origin === policy.region)
    throw new UntrustedEnvelopeError(
      'own-origin',
      'o (origin): names this region; its own messages never come back',
    );
  if (!policy.peers.includes(envelope.origin))
    throw new UntrustedEnvelopeError(
      'unknown-origin',
      'o (origin): not a configured peer region of this one',
    );
  if (lineageOf(envelope.hlc.replica)?.group !== envelope.origin)
    throw new UntrustedEnvelopeError(
      'clock-not-origin',
      "h (clock): its replica is not one of the origin region's",
    );
  const limit = nowMs + policy.maxClockSkewMs;
  const ahead =
    envelope.hlc.wallMs > limit
      ? 'h (clock)'
      : [...stampsOf(envelope.body)].some((s) => s.wallMs > limit)
        ? 'b (body): a stamp'
        : undefined;
  if (ahead)
    throw new UntrustedEnvelopeError(
      'clock-ahead',
      `${ahead} is more than ${policy.maxClockSkewMs} ms ahead of this region's clock`,
    );
}
