import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PermanentError } from '../lib/failures';
import type { StateReference } from './control-messages';
import { MAX_DOCUMENT_BYTES } from './limits';

/** Most bytes of a full state sent by reference: the largest document, encoded, with room for its envelope. */
export const MAX_REFERENCED_STATE_BYTES = 2 * MAX_DOCUMENT_BYTES;

/** Where a full state too large for a message is put, and where a peer's is read. */
export interface StateObjects {
  /** Stores an encoded envelope under `sync/` in this region's bucket; returns where and what. */
  put(text: string): Promise<Pick<StateReference, 'bucket' | 'key' | 'bytes' | 'sha256'>>;
  /** The encoded envelope a peer's reference points at, checked against the reference's size and hash. */
  get(reference: StateReference): Promise<string>;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Full states in the regions' buckets (the quota service's snapshot buckets), content-addressed:
 * `sync/<sha256>.json`. A reference is followed only into the bucket configured for its origin region.
 */
export class S3StateObjects implements StateObjects {
  constructor(
    private readonly region: string,
    /** The bucket of every region, this one included. */
    private readonly buckets: ReadonlyMap<string, string>,
    private readonly clientFor: (region: string) => S3Client,
  ) {}

  async put(text: string) {
    const bucket = this.buckets.get(this.region);
    if (!bucket)
      throw new PermanentError('no-state-bucket', `SYNC_BUCKETS: names no bucket for ${this.region}`);
    const hash = sha256(text);
    const key = `sync/${hash}.json`;
    const body = Buffer.from(text, 'utf8');
    await this.clientFor(this.region).send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }),
    );
    return { bucket, key, bytes: body.length, sha256: hash };
  }

  async get(reference: StateReference): Promise<string> {
    if (this.buckets.get(reference.origin) !== reference.bucket)
      throw new PermanentError('reference-bucket', "r.b (bucket): not the origin region's configured bucket");
    if (reference.bytes > MAX_REFERENCED_STATE_BYTES)
      throw new PermanentError(
        'reference-too-large',
        `r.n (bytes): larger than ${MAX_REFERENCED_STATE_BYTES}`,
      );
    let text: string;
    try {
      const object = await this.clientFor(reference.origin).send(
        new GetObjectCommand({ Bucket: reference.bucket, Key: reference.key }),
      );
      if ((object.ContentLength ?? 0) !== reference.bytes)
        throw new PermanentError(
          'reference-mismatch',
          'r.n (bytes): the object is not the size the reference says',
        );
      text = (await object.Body?.transformToString('utf8')) ?? '';
    } catch (error) {
      if ((error as Error).name === 'NoSuchKey')
        throw new PermanentError(
          'reference-gone',
          'r.k (key): the object is gone (expired); the next anti-entropy pass repairs',
        );
      throw error;
    }
    if (Buffer.byteLength(text, 'utf8') !== reference.bytes || sha256(text) !== reference.sha256)
      throw new PermanentError('reference-mismatch', 'r.s (sha256): the object does not match the reference');
    return text;
  }
}
