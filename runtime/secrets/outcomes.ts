/** What the replicator did for one destination of one secret. */
export type Outcome =
  | 'created'
  | 'updated'
  /** The value was current; only the replica's tags were brought up to date. */
  | 'tagged'
  /** The replica had been scheduled for deletion; it was restored (and brought up to date). */
  | 'restored'
  | 'up-to-date'
  /** The destination's filters leave this secret out. */
  | 'not-selected'
  /** Two-way: the destination holds a user's write newer than the source's; it travels the other way. */
  | 'newer-at-destination'
  /** A replica scheduled for deletion with the origin's, or after its grace period. */
  | 'deleted'
  /** The origin is gone and the grace period of the delete policy runs. */
  | 'delete-pending'
  /** The origin is gone and the delete policy is `ignore`. */
  | 'kept'
  | 'already-deleted'
  /** A secret of that name exists at the destination but is not this origin's replica: left alone. */
  | 'not-a-replica'
  | 'failed';

export interface DestinationResult {
  readonly destination: string;
  readonly outcome: Outcome;
  /** The destination secret's name. */
  readonly target?: string;
  /** Why it failed or was left alone: bounded, and never a value. */
  readonly reason?: string;
  /** For a failure: whether retrying can help. */
  readonly permanent?: boolean;
}

export const WRITES: ReadonlySet<Outcome> = new Set(['created', 'updated', 'tagged', 'restored', 'deleted']);
