import { CrdtDecodeError, decodeMap, encodeMap, PROTOCOL_VERSION, type CrdtMap, type Hlc } from '../crdt';

/** What travels on the sync bus: one document's delta (or full state, for anti-entropy) from one region. */
export interface Envelope {
  readonly origin: string;
  readonly document: string;
  readonly kind: 'delta' | 'state';
  readonly hlc: Hlc;
  readonly body: CrdtMap;
}

/** A message that is not an envelope of this protocol; `reason` goes with it to the dead-letter queue. */
export class EnvelopeError extends Error {
  constructor(readonly reason: string) {
    super(`undecodable sync message: ${reason}`);
    this.name = 'EnvelopeError';
  }
}

/**
 * Wire form, kept short because every change ships one:
 * {"v":1,"o":<origin>,"d":<document>,"k":"s" (full state; absent for a delta),"h":[wallMs,logical,replica],"b":{"m":{...}}}
 */
export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    o: envelope.origin,
    d: envelope.document,
    ...(envelope.kind === 'state' ? { k: 's' } : {}),
    h: [envelope.hlc.wallMs, envelope.hlc.logical, envelope.hlc.replica],
    b: JSON.parse(encodeMap(envelope.body)) as unknown,
  });
}

const isText = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= 1024;

export function decodeEnvelope(text: string): Envelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EnvelopeError('not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new EnvelopeError('expected a JSON object');
  const message = raw as Record<string, unknown>;
  if (message.v !== PROTOCOL_VERSION) {
    throw new EnvelopeError(
      `unsupported protocol version ${JSON.stringify(message.v)}; expected ${PROTOCOL_VERSION}`,
    );
  }
  if (!isText(message.o)) throw new EnvelopeError('o (origin): expected the sending region');
  if (!isText(message.d)) throw new EnvelopeError('d (document): expected the document key');
  if (message.k !== undefined && message.k !== 's') {
    throw new EnvelopeError('k (kind): expected "s" (full state) or no kind (a delta)');
  }
  const hlc = message.h;
  if (
    !Array.isArray(hlc) ||
    hlc.length !== 3 ||
    !Number.isSafeInteger(hlc[0]) ||
    !Number.isSafeInteger(hlc[1]) ||
    (hlc[0] as number) < 0 ||
    (hlc[1] as number) < 0 ||
    !isText(hlc[2])
  ) {
    throw new EnvelopeError('h (clock): expected [wallMs, logical, replica]');
  }
  if (typeof message.b !== 'object' || message.b === null || Array.isArray(message.b)) {
    throw new EnvelopeError('b (body): expected the encoded document');
  }
  let body: CrdtMap;
  try {
    body = decodeMap(JSON.stringify({ v: PROTOCOL_VERSION, ...message.b }));
  } catch (error) {
    if (error instanceof CrdtDecodeError) throw new EnvelopeError(`b (body): ${error.message}`);
    throw error;
  }
  return {
    origin: message.o,
    document: message.d,
    kind: message.k === 's' ? 'state' : 'delta',
    hlc: { wallMs: hlc[0] as number, logical: hlc[1] as number, replica: hlc[2] as string },
    body,
  };
}
