import { cloudSize, compareHlc, lineageOf, type CrdtDocument, type GCounter, type Hlc } from '../crdt';
import { PermanentError, RetryableError } from '../lib/failures';
import type { Envelope } from './envelope';
import { epochEndsWithinMs } from './folding';

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

/** Every replica id a body names, and whether it names it as an issuer of this message's changes. */
function* replicasOf(body: CrdtDocument): Generator<{ replica: string; issued: boolean }> {
  const counts = function* (counter: GCounter) {
    for (const replica of counter.counts.keys()) yield { replica, issued: true };
  };
  for (const field of body.values()) {
    for (const { created, crdt } of field) {
      yield { replica: created.replica, issued: false };
      if (crdt.type === 'gcounter') yield* counts(crdt.state);
      if (crdt.type === 'pncounter') yield* [...counts(crdt.state.p), ...counts(crdt.state.n)];
      if (crdt.type === 'lww') yield { replica: crdt.state.stamp.replica, issued: true };
      if (crdt.type === 'orset') {
        for (const [, dots] of crdt.state.entries)
          for (const [replica] of dots) yield { replica, issued: true };
        for (const replica of crdt.state.context.vv.keys()) yield { replica, issued: false };
        for (const replica of crdt.state.context.cloud.keys()) yield { replica, issued: false };
      }
    }
  }
}

/**
 * Most dots a delta's causal context may name: the element's dots at the origin and the new one (an element
 * holds more than one dot of a replica only while deltas between them are missing). The bound keeps a
 * context from claiming a replica's whole history (2^53 - 1 dots would exhaust it).
 */
export const MAX_DELTA_CONTEXT_DOTS = 10_000;

function deltaContextTooLarge(body: CrdtDocument): boolean {
  for (const field of body.values()) {
    for (const { crdt } of field) {
      if (crdt.type !== 'orset') continue;
      let dots = cloudSize(crdt.state.context);
      for (const counter of crdt.state.context.vv.values()) dots += counter;
      if (dots > MAX_DELTA_CONTEXT_DOTS) return true;
    }
  }
  return false;
}

const untrusted = (code: string, reason: string) => new UntrustedEnvelopeError(code, reason);

/**
 * The checks every message gets, whatever it carries: its origin is a configured peer (not this region),
 * its clock is that origin's and not more than the allowed skew ahead of `nowMs` (a clock far ahead would
 * pin every later stamp there; it may heal as time passes, so it is retried).
 */
export function checkSender(origin: string, hlc: Hlc, policy: TrustPolicy, nowMs: number): void {
  if (origin === policy.region)
    throw untrusted('own-origin', 'o (origin): names this region; its own messages never come back');
  if (!policy.peers.includes(origin))
    throw untrusted('unknown-origin', 'o (origin): not a configured peer region of this one');
  if (lineageOf(hlc.replica)?.group !== origin)
    throw untrusted('clock-not-origin', "h (clock): its replica is not one of the origin region's");
  if (hlc.wallMs > nowMs + policy.maxClockSkewMs)
    throw new RetryableError(
      'clock-ahead',
      `h (clock): more than ${policy.maxClockSkewMs} ms ahead of this region's clock`,
    );
}

/**
 * Checks an envelope against the policy before it may merge: its origin is a configured peer (not this
 * region), its clock is that origin's and is not more than the allowed skew ahead of `nowMs` (a clock far
 * ahead would pin every later stamp there; it may heal as time passes, so it is retried), no stamp in the
 * body is later than the message's own clock, every replica it names is a region's epoch begun by now,
 * and no fold or horizon is younger than an honest one can be (one could retire live epochs and delete
 * what they hold). A delta is one operation of its origin: it carries only the origin's changes, a causal
 * context of at most `MAX_DELTA_CONTEXT_DOTS` dots, and no horizon and no fold but its origin's own (only
 * a full state can claim to have seen every dot of an epoch).
 */
export function checkTrust(envelope: Envelope, policy: TrustPolicy, nowMs: number): void {
  checkSender(envelope.origin, envelope.hlc, policy, nowMs);
  for (const stamp of stampsOf(envelope.body))
    if (compareHlc(stamp, envelope.hlc) > 0)
      throw untrusted('stamp-after-clock', 'b (body): a stamp is later than the message clock h');
  const latestEpoch = nowMs + policy.maxClockSkewMs;
  for (const { replica, issued } of replicasOf(envelope.body)) {
    const lineage = lineageOf(replica);
    if (
      !lineage ||
      lineage.epochMs > latestEpoch ||
      (lineage.group !== policy.region && !policy.peers.includes(lineage.group))
    )
      throw untrusted(
        'unknown-replica',
        'b (body): a replica id is not <region>@<epoch> of a region of this estate and an epoch begun by now',
      );
    if (envelope.kind === 'delta' && issued && lineage.group !== envelope.origin)
      throw untrusted('foreign-change', "b (body): a delta may carry only its origin's changes");
  }
  for (const field of envelope.body.values())
    for (const { crdt } of field) {
      if (crdt.type !== 'orset' || crdt.state.scope === undefined) continue;
      // A delta speaks for the one element it changed; a full state for all of them.
      if (envelope.kind === 'state')
        throw untrusted('scoped-state', 'b (body): a full state may not name a scope (s)');
      if (crdt.state.scope.length !== 1)
        throw untrusted('delta-scope', 'b (body): a set delta names exactly one element in its scope (s)');
    }
  if (envelope.kind === 'delta' && deltaContextTooLarge(envelope.body))
    throw untrusted('delta-context', 'b (body): a delta names more than one operation’s dots of a replica');
  const newestHonestFold = nowMs + 2 * policy.maxClockSkewMs - epochEndsWithinMs(policy.maxClockSkewMs);
  for (const fold of foldsOf(envelope.body)) {
    if (fold.beforeMs > newestHonestFold)
      throw untrusted('fold-too-recent', 'b (body): a fold or horizon covers epochs too recent to be folded');
    if (envelope.kind === 'delta' && (fold.horizon || fold.group !== envelope.origin))
      throw untrusted('fold-in-delta', "b (body): a delta may carry only its origin's counter folds");
  }
}
