import { isValidKey } from '../crdt';
import { PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';

/** SNS's and SQS's largest message (as the queues are created): message body plus attributes. */
export const MAX_MESSAGE_BYTES = 262_144;

/** What a message needs beside its document: envelope fields, SNS attributes, dead-letter reason. */
const MESSAGE_RESERVE_BYTES = 4_096;

/**
 * Largest message body a document's state may take inline (256 KiB - 4 KiB): a larger full state travels
 * by reference (an object in the region's bucket).
 */
export const MAX_INLINE_STATE_BYTES = MAX_MESSAGE_BYTES - MESSAGE_RESERVE_BYTES;

/**
 * Largest document, counted as its stored parts (`partBytes` each): 16 MiB (a 100,000-element set takes
 * about 11 MiB). A document is stored as one item per field variant and per set element, so its size is not
 * bound by an item; it is bound by a full state (a repair) being loaded, merged and sent whole within one
 * invocation of the sync functions.
 */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

/**
 * Largest document a local change may leave (3/4 of `MAX_DOCUMENT_BYTES`): what the regions wrote
 * concurrently can still merge into one document up to the full limit.
 */
export const MAX_LOCAL_DOCUMENT_BYTES = (MAX_DOCUMENT_BYTES * 3) / 4;

/** Document keys: 1-1,024 UTF-8 bytes (the item key `doc#<key>` stays within DynamoDB's 2,048 bytes). */
export const MAX_DOCUMENT_KEY_BYTES = 1024;

/** A document key outside the rule. Never quotes the key. */
export class DocumentKeyError extends PermanentError {
  constructor() {
    super(
      'invalid-document-key',
      `document key: expected 1-${MAX_DOCUMENT_KEY_BYTES} UTF-8 bytes of well-formed Unicode without control characters`,
    );
    this.name = 'DocumentKeyError';
  }
}

/**
 * A document whose encoded state would pass `MAX_DOCUMENT_BYTES`. The message names the document for the
 * caller; the reason (what dead-letter queues and logs keep) does not.
 */
export class DocumentTooLargeError extends PermanentError {
  constructor(
    readonly document: string,
    readonly bytes: number,
    readonly limit: number = MAX_DOCUMENT_BYTES,
    what = 'the document',
  ) {
    super('document-too-large', `${what} would be ${bytes} bytes stored; the limit is ${limit} bytes`);
    this.name = 'DocumentTooLargeError';
    this.message = `document ${JSON.stringify(boundedText(document, 128))}: ${this.reason}`;
  }
}

export function checkDocumentKey(document: unknown): asserts document is string {
  if (!isValidKey(document, MAX_DOCUMENT_KEY_BYTES)) throw new DocumentKeyError();
}
