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

export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    origin: envelope.origin,
    document: envelope.document,
    kind: envelope.kind,
    hlc: [envelope.hlc.wallMs, envelope.hlc.logical, envelope.hlc.replica],
    body: JSON.parse(encodeMap(envelope.body)) as unknown,
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
  if (!isText(message.origin)) throw new EnvelopeError('origin: expected the sending region');
  if (!isText(message.document)) throw new EnvelopeError('document: expected the document key');
  if (message.kind !== 'delta' && message.kind !== 'state')
    throw new EnvelopeError('kind: expected "delta" or "state"');
  const hlc = message.hlc;
  if (
    !Array.isArray(hlc) ||
    hlc.length !== 3 ||
    !Number.isSafeInteger(hlc[0]) ||
    !Number.isSafeInteger(hlc[1]) ||
    (hlc[0] as number) < 0 ||
    (hlc[1] as number) < 0 ||
    !isText(hlc[2])
  ) {
    throw new EnvelopeError('hlc: expected [wallMs, logical, replica]');
  }
  if (typeof message.body !== 'object' || message.body === null || Array.isArray(message.body)) {
    throw new EnvelopeError('body: expected the encoded document');
  }
  let body: CrdtMap;
  try {
    body = decodeMap(JSON.stringify({ v: PROTOCOL_VERSION, ...message.body }));
  } catch (error) {
    if (error instanceof CrdtDecodeError) throw new EnvelopeError(`body: ${error.message}`);
    throw error;
  }
  return {
    origin: message.origin,
    document: message.document,
    kind: message.kind,
    hlc: { wallMs: hlc[0] as number, logical: hlc[1] as number, replica: hlc[2] as string },
    body,
  };
}
