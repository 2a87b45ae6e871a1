import { randomUUID } from 'node:crypto';

/**
 * A change's correlation id: what traces one local change (`SyncReplica.update`) from its publish in the
 * region that wrote it to its merge in every other region. It is a random UUID made when the change is
 * published, lower-case (`3f0c…-…`, 36 characters): unique by construction (122 random bits), whatever the
 * document's clocks and versions do (a restored table writes versions again; an epoch's clock is only
 * unique per document), and it says nothing of the document or its values, so logs may carry it. The same
 * form as the runner control plane's correlation ids (GitHub delivery GUIDs).
 *
 * It travels as the SNS message attribute `correlationId` (String), beside the envelope, not in it: the
 * envelope's decoder refuses unknown fields (a region not yet upgraded would dead-letter every change of
 * an upgraded one), and a new protocol version would hold changes back until every region reads it. SNS
 * delivers it raw to the peers' inboxes as an SQS message attribute; regions of an earlier release ignore
 * it. A message without it (an earlier release's, a full state of the anti-entropy) merges as before.
 */
export const CORRELATION_ATTRIBUTE = 'correlationId';

/** A correlation id as a receiving region accepts it: a UUID of whatever version, lower-case. */
export const CHANGE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A new change's correlation id (SyncReplica's default). */
export const newChangeId = (): string => randomUUID();

/** What a received message says of its change's correlation id. */
export type CorrelationRead =
  | { readonly kind: 'none' }
  | { readonly kind: 'id'; readonly id: string }
  /** Present but not one: the message is processed without it; `reason` names the rule, never the value. */
  | { readonly kind: 'refused'; readonly reason: string };

const own = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

/**
 * The correlation id of an SQS record's message attributes (as Lambda's SQS event gives them:
 * `{ correlationId: { dataType, stringValue } }`), read through own properties only. Absent: none. A value
 * that is not a String attribute holding a lower-case UUID is refused with the rule it broke.
 */
export function correlationOfAttributes(attributes: unknown): CorrelationRead {
  const attribute = own(attributes, CORRELATION_ATTRIBUTE);
  if (attribute === undefined) return { kind: 'none' };
  const value = own(attribute, 'stringValue');
  if (own(attribute, 'dataType') !== 'String' || typeof value !== 'string')
    return { kind: 'refused', reason: `${CORRELATION_ATTRIBUTE} (message attribute): expected a String` };
  if (!CHANGE_ID.test(value))
    return {
      kind: 'refused',
      reason: `${CORRELATION_ATTRIBUTE} (message attribute): expected a lower-case UUID, 36 characters`,
    };
  return { kind: 'id', id: value };
}
