import { isValidKey, utf8Bytes } from '../crdt';
import { PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';

/** SNS's and SQS's largest message (as the queues are created): message body plus attributes. */
export const MAX_MESSAGE_BYTES = 262_144;

/** What a message needs beside its document: envelope fields, SNS attributes, dead-letter reason. */
const MESSAGE_RESERVE_BYTES = 4_096;

/**
 * Largest encoded document (256 KiB - 4 KiB): its full state always fits one sync message, and one
 * DynamoDB item (400 KB) with room for the key and attributes. Sync at scale raises it.
 */
export const MAX_DOCUMENT_BYTES = MAX_MESSAGE_BYTES - MESSAGE_RESERVE_BYTES;

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
  ) {
    super('document-too-large', `the document would be ${bytes} bytes encoded; the limit is ${limit} bytes`);
    this.name = 'DocumentTooLargeError';
    this.message = `document ${JSON.stringify(boundedText(document, 128))}: ${this.reason}`;
  }
}

export function checkDocumentKey(document: unknown): asserts document is string {
  if (!isValidKey(document, MAX_DOCUMENT_KEY_BYTES)) throw new DocumentKeyError();
}

/** Throws `DocumentTooLargeError` unless the encoded document fits `limit`. */
export function checkDocumentSize(document: string, encoded: string, limit = MAX_DOCUMENT_BYTES): void {
  const bytes = utf8Bytes(encoded);
  if (bytes > limit) throw new DocumentTooLargeError(document, bytes, limit);
}
