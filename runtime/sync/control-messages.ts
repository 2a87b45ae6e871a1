import { GROUP, hlcFromWire, PROTOCOL_VERSION, type Hlc } from '../crdt';
import { EnvelopeError } from './envelope';
import { checkDocumentKey, DocumentKeyError, MAX_MESSAGE_BYTES } from './limits';

/*
 * The anti-entropy's messages, beside deltas and full states (envelope.ts):
 *   digests    {"v":3,"o":<origin>,"k":"g","h":<clock>,"g":[[<document>,<digest>,<changedAt>(,1: swept)],...]}
 *   pull       {"v":3,"o":<origin>,"k":"p","h":<clock>,"to":<region>,"g":[<document>,...]}
 *   reference  {"v":3,"o":<origin>,"k":"r","h":<clock>,"d":<document>,"r":{"b":<bucket>,"k":<key>,"n":<bytes>,"s":<sha256 hex>}}
 * A reference points at a full state too large for a message: an object under `sync/` in the origin's
 * bucket, whose size and SHA-256 the receiver checks before decoding it.
 */

export interface DigestEntry {
  readonly document: string;
  readonly digest: string;
  readonly changedAt: number;
  /** From the sweep: compared even while the document changes (a hot document is repaired once a sweep). */
  readonly swept?: boolean;
}

export interface DigestMessage {
  readonly kind: 'digests';
  readonly origin: string;
  readonly hlc: Hlc;
  readonly entries: readonly DigestEntry[];
}

export interface PullMessage {
  readonly kind: 'pull';
  readonly origin: string;
  readonly hlc: Hlc;
  /** The region asked for the documents' full states. */
  readonly to: string;
  readonly documents: readonly string[];
}

export interface StateReference {
  readonly kind: 'reference';
  readonly origin: string;
  readonly hlc: Hlc;
  readonly document: string;
  readonly bucket: string;
  readonly key: string;
  readonly bytes: number;
  readonly sha256: string;
}

export type ControlMessage = DigestMessage | PullMessage | StateReference;

const hlcWire = (hlc: Hlc) => [hlc.wallMs, hlc.logical, hlc.replica];

export function encodeControl(message: ControlMessage): string {
  const common = { v: PROTOCOL_VERSION, o: message.origin };
  switch (message.kind) {
    case 'digests':
      return JSON.stringify({
        ...common,
        k: 'g',
        h: hlcWire(message.hlc),
        g: message.entries.map((e) => [e.document, e.digest, e.changedAt, ...(e.swept ? [1] : [])]),
      });
    case 'pull':
      return JSON.stringify({
        ...common,
        k: 'p',
        h: hlcWire(message.hlc),
        to: message.to,
        g: message.documents,
      });
    case 'reference':
      return JSON.stringify({
        ...common,
        k: 'r',
        h: hlcWire(message.hlc),
        d: message.document,
        r: { b: message.bucket, k: message.key, n: message.bytes, s: message.sha256 },
      });
  }
}

/** Documents one pull asks for: each answer is a full state (up to the largest document). */
export const MAX_PULL_DOCUMENTS = 5;

/** Message kinds this module decodes (`k`); deltas and full states are envelope.ts's. */
export const CONTROL_KINDS: ReadonlySet<unknown> = new Set(['g', 'p', 'r']);

/** A document list longer than a message can hold is refused; so is a digest that is not 16 hex digits. */
const MAX_ENTRIES = 10_000;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const OBJECT_KEY = /^sync\/[A-Za-z0-9/_.=-]{1,900}$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function only(message: Record<string, unknown>, allowed: readonly string[]): void {
  const unexpected = Object.keys(message).find((key) => !allowed.includes(key));
  if (unexpected !== undefined)
    throw new EnvelopeError(`message: unexpected property; expected only ${allowed.join(', ')}`);
}

function documentAt(value: unknown, path: string): string {
  try {
    checkDocumentKey(value);
    return value;
  } catch (error) {
    if (error instanceof DocumentKeyError) throw new EnvelopeError(`${path} ${error.reason}`);
    throw error;
  }
}

function list(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_ENTRIES)
    throw new EnvelopeError(`${path}: expected a list of 1-${MAX_ENTRIES} entries`);
  return value;
}

/**
 * Decodes a control message (`message` already parsed, its version checked, `k` one of CONTROL_KINDS).
 * Throws `EnvelopeError` naming the field and the rule.
 */
export function controlFromWire(message: Record<string, unknown>, text: string): ControlMessage {
  if (Buffer.byteLength(text, 'utf8') > MAX_MESSAGE_BYTES)
    throw new EnvelopeError(`message: larger than ${MAX_MESSAGE_BYTES} bytes`);
  if (typeof message.o !== 'string' || !GROUP.test(message.o))
    throw new EnvelopeError('o (origin): expected a region name (1-50 of A-Z a-z 0-9 _ . : -)');
  const origin = message.o;
  let hlc: Hlc;
  try {
    hlc = hlcFromWire(message.h, 'h');
  } catch {
    throw new EnvelopeError('h (clock): expected [wallMs, logical, replica id]');
  }
  switch (message.k) {
    case 'g': {
      only(message, ['v', 'o', 'k', 'h', 'g']);
      const entries = list(message.g, 'g (digests)').map((entry, i) => {
        if (
          !Array.isArray(entry) ||
          (entry.length !== 3 && !(entry.length === 4 && entry[3] === 1)) ||
          typeof entry[1] !== 'string' ||
          !/^[0-9a-f]{16}$/.test(entry[1]) ||
          !Number.isSafeInteger(entry[2]) ||
          (entry[2] as number) < 0
        )
          throw new EnvelopeError(
            `g[${i}]: expected [document, digest (16 hex digits), changedAt ms] and 1 for an entry of the sweep`,
          );
        return {
          document: documentAt(entry[0], `g[${i}][0] (document)`),
          digest: entry[1],
          changedAt: entry[2] as number,
          ...(entry.length === 4 ? { swept: true } : {}),
        };
      });
      return { kind: 'digests', origin, hlc, entries };
    }
    case 'p': {
      only(message, ['v', 'o', 'k', 'h', 'to', 'g']);
      if (typeof message.to !== 'string' || !GROUP.test(message.to))
        throw new EnvelopeError('to: expected a region name (1-50 of A-Z a-z 0-9 _ . : -)');
      if (!Array.isArray(message.g) || message.g.length > MAX_PULL_DOCUMENTS)
        throw new EnvelopeError(`g (documents): a pull names 1-${MAX_PULL_DOCUMENTS} documents`);
      const documents = list(message.g, 'g (documents)').map((d, i) => documentAt(d, `g[${i}] (document)`));
      return { kind: 'pull', origin, hlc, to: message.to, documents };
    }
    default: {
      only(message, ['v', 'o', 'k', 'h', 'd', 'r']);
      const document = documentAt(message.d, 'd (document)');
      const ref = message.r;
      if (
        !isObject(ref) ||
        typeof ref.b !== 'string' ||
        !BUCKET.test(ref.b) ||
        typeof ref.k !== 'string' ||
        !OBJECT_KEY.test(ref.k) ||
        !Number.isSafeInteger(ref.n) ||
        (ref.n as number) < 1 ||
        typeof ref.s !== 'string' ||
        !/^[0-9a-f]{64}$/.test(ref.s)
      )
        throw new EnvelopeError(
          'r (reference): expected {"b": bucket, "k": "sync/..." key, "n": bytes >= 1, "s": SHA-256 hex}',
        );
      return {
        kind: 'reference',
        origin,
        hlc,
        document,
        bucket: ref.b,
        key: ref.k,
        bytes: ref.n as number,
        sha256: ref.s,
      };
    }
  }
}
