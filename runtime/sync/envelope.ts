import {
  checkVersion,
  CrdtDecodeError,
  documentFromWire,
  documentWire,
  GROUP,
  hlcFromWire,
  OLDEST_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  UnsupportedVersionError,
  type CrdtDocument,
  type Hlc,
} from '../crdt';
import { PermanentError, RetryableError } from '../lib/failures';
import { checkDocumentKey, DocumentKeyError, MAX_MESSAGE_BYTES } from './limits';

/** What travels on the sync bus: one document's delta (or full state, for anti-entropy) from one region. */
export interface Envelope {
  readonly origin: string;
  readonly document: string;
  readonly kind: 'delta' | 'state';
  readonly hlc: Hlc;
  readonly body: CrdtDocument;
}

/** A message that is not an envelope of this protocol; `reason` goes with it to the dead-letter queue. */
export class EnvelopeError extends PermanentError {
  constructor(reason: string) {
    super('invalid-envelope', reason);
    this.name = 'EnvelopeError';
  }
}

/**
 * Wire form, kept short because every change ships one:
 * {"v":2,"o":<origin>,"d":<document>,"k":"s" (full state; absent for a delta),"h":[wallMs,logical,replica],"b":{"m":{...}}}
 */
export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    o: envelope.origin,
    d: envelope.document,
    ...(envelope.kind === 'state' ? { k: 's' } : {}),
    h: [envelope.hlc.wallMs, envelope.hlc.logical, envelope.hlc.replica],
    b: documentWire(envelope.body),
  });
}

/** Throws `RetryableError` for a newer protocol version (a later release reads it), else `EnvelopeError`. */
export function checkMessageVersion(version: unknown): void {
  try {
    checkVersion(version, 'v');
  } catch (error) {
    if (error instanceof UnsupportedVersionError && error.newer)
      throw new RetryableError(
        'newer-protocol',
        `v (version): newer than ${PROTOCOL_VERSION}; upgrade this region`,
      );
    throw new EnvelopeError(
      `v (version): unsupported; expected ${OLDEST_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
    );
  }
}

const ENVELOPE_KEYS = new Set(['v', 'o', 'd', 'k', 'h', 'b']);

/**
 * Decodes a message, checking only its form (who may send it is `checkTrust`'s). Throws `EnvelopeError`
 * for what can never merge, `RetryableError` for a newer protocol version (a later release reads it).
 * `maxBytes`: a message's limit; a full state fetched by reference may be larger.
 */
export function decodeEnvelope(text: string, maxBytes = MAX_MESSAGE_BYTES): Envelope {
  if (Buffer.byteLength(text, 'utf8') > maxBytes)
    throw new EnvelopeError(`message: larger than ${maxBytes} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EnvelopeError('message: not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new EnvelopeError('message: expected a JSON object');
  const message = raw as Record<string, unknown>;
  checkMessageVersion(message.v);
  const unexpected = Object.keys(message).find((key) => !ENVELOPE_KEYS.has(key));
  if (unexpected !== undefined)
    throw new EnvelopeError('message: unexpected property; expected v, o, d, k, h, b');
  if (typeof message.o !== 'string' || !GROUP.test(message.o))
    throw new EnvelopeError('o (origin): expected a region name (1-50 of A-Z a-z 0-9 _ . : -)');
  try {
    checkDocumentKey(message.d);
  } catch (error) {
    if (error instanceof DocumentKeyError) throw new EnvelopeError(`d ${error.reason}`);
    throw error;
  }
  if (message.k !== undefined && message.k !== 's')
    throw new EnvelopeError('k (kind): expected "s" (full state) or no kind (a delta)');
  try {
    const hlc = hlcFromWire(message.h, 'h');
    const body = documentFromWire(message.b, 'b', message.v as number);
    return { origin: message.o, document: message.d, kind: message.k === 's' ? 'state' : 'delta', hlc, body };
  } catch (error) {
    if (error instanceof CrdtDecodeError) throw new EnvelopeError(`${error.path}: ${error.reason}`);
    throw error;
  }
}
