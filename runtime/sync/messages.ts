import { CONTROL_KINDS, controlFromWire, type ControlMessage } from './control-messages';
import { checkMessageVersion, decodeEnvelope, EnvelopeError, type Envelope } from './envelope';

/** Everything the sync bus carries: deltas and full states, and the anti-entropy's messages. */
export type SyncMessage = Envelope | ControlMessage;

/** Decodes a message of the sync bus, checking its form (who may send it is checked where it is used). */
export function decodeMessage(text: string): SyncMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EnvelopeError('message: not valid JSON');
  }
  if (
    typeof raw === 'object' &&
    raw !== null &&
    !Array.isArray(raw) &&
    CONTROL_KINDS.has((raw as { k?: unknown }).k)
  ) {
    const message = raw as Record<string, unknown>;
    checkMessageVersion(message.v);
    return controlFromWire(message, text);
  }
  return decodeEnvelope(text);
}
