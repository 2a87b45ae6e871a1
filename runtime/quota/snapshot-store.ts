import {
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';

import { MAX_SNAPSHOT_BYTES, SnapshotError } from './snapshot';

/** Where a region's snapshot of an epoch lives in its region's bucket. */
export const snapshotKey = (region: string, epoch: number): string => `${region}/${epoch}.json`;

/** The regions' snapshot buckets as the sync uses them: its own to write, every region's to read. */
export interface SnapshotStore {
  /** Writes this region's snapshot of `epoch` unless one exists (a repeated pass of the same epoch). */
  put(epoch: number, body: string): Promise<'written' | 'exists'>;
  /**
   * The body of `region`'s snapshot of `epoch`, or undefined when there is none; a SnapshotError when it is
   * refused unread (too large).
   */
  get(region: string, epoch: number, signal: AbortSignal): Promise<Uint8Array | undefined>;
}

/**
 * Snapshots in S3: one bucket per region, `{region}/{epoch}.json`, expired by the bucket's lifecycle. Puts
 * are conditional (`If-None-Match: *`); reads cross regions through a client per region.
 */
export class S3SnapshotStore implements SnapshotStore {
  private readonly clients = new Map<string, S3Client>();

  constructor(
    private readonly region: string,
    /** Bucket of every region, this one included. */
    private readonly buckets: ReadonlyMap<string, string>,
    private readonly clientFor: (region: string) => S3Client = (region) => new S3Client({ region }),
  ) {}

  private client(region: string): S3Client {
    let client = this.clients.get(region);
    if (!client) this.clients.set(region, (client = this.clientFor(region)));
    return client;
  }

  async put(epoch: number, body: string): Promise<'written' | 'exists'> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client(this.region).send(
          new PutObjectCommand({
            Bucket: this.buckets.get(this.region),
            Key: snapshotKey(this.region, epoch),
            Body: body,
            ContentType: 'application/json',
            IfNoneMatch: '*',
          }),
        );
        return 'written';
      } catch (error) {
        const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
        // 412: a pass of this epoch already published. 409: one is publishing now (S3 asks for a retry).
        if (status === 412) return 'exists';
        if (status === 409 && attempt < 3) continue;
        if (status === 409) return 'exists';
        throw error;
      }
    }
  }

  async get(region: string, epoch: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const bucket = this.buckets.get(region);
    if (!bucket) return undefined;
    try {
      const response = await this.client(region).send(
        new GetObjectCommand({ Bucket: bucket, Key: snapshotKey(region, epoch) }),
        { abortSignal: signal },
      );
      // Refused before reading a byte: a body over the decoder's limit is undecodable anyway.
      if ((response.ContentLength ?? 0) > MAX_SNAPSHOT_BYTES) {
        await response.Body?.transformToWebStream().cancel();
        throw new SnapshotError('snapshot', `expected at most ${MAX_SNAPSHOT_BYTES} bytes`);
      }
      return await response.Body?.transformToByteArray();
    } catch (error) {
      if (error instanceof NoSuchKey) return undefined;
      throw error;
    }
  }
}
