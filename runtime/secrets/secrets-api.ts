/** A secret's value: text (transformable) or bytes (copied as they are). */
export type SecretValue =
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'binary'; readonly bytes: Uint8Array };

/** What DescribeSecret (or a ListSecrets entry) says of a secret, without its value. */
export interface SecretDescription {
  readonly arn: string;
  readonly name: string;
  readonly tags: Readonly<Record<string, string>>;
  /** The version holding AWSCURRENT, if any. */
  readonly currentVersionId?: string;
  /** Every version that carries a staging label. */
  readonly versionIds: readonly string[];
  /** Set while the secret is scheduled for deletion: when it will be deleted. */
  readonly deletedDate?: Date;
  readonly kmsKeyId?: string;
}

/** A staged version of a secret (AWSCURRENT unless asked otherwise). */
export interface CurrentVersion {
  readonly versionId: string;
  readonly createdDate: Date;
  readonly value: SecretValue;
}

/**
 * The Secrets Manager calls the replicator makes, in one region of one account. `undefined` answers a
 * secret that does not exist; every other failure is thrown as the SDK threw it.
 */
export interface SecretsApi {
  describe(secretId: string): Promise<SecretDescription | undefined>;
  /** The version carrying `stage` (default AWSCURRENT), or undefined when none does. */
  current(secretId: string, stage?: 'AWSCURRENT' | 'AWSPREVIOUS'): Promise<CurrentVersion | undefined>;
  /** Every secret (those scheduled for deletion included), or those carrying the tag key. */
  list(tagKey?: string): AsyncIterable<SecretDescription>;
  create(input: {
    readonly name: string;
    readonly token: string;
    readonly value: SecretValue;
    readonly kmsKeyId?: string;
    readonly tags: Readonly<Record<string, string>>;
    readonly description: string;
  }): Promise<void>;
  /**
   * PutSecretValue with `stage` (a label of the replicator's) instead of AWSCURRENT: the version is written
   * but not current. A token already used for this value is ignored, as Secrets Manager does.
   */
  putPending(secretId: string, token: string, value: SecretValue, stage: string): Promise<void>;
  /** UpdateSecret with a new key only: versions written from now on are encrypted with it. */
  setKey(secretId: string, kmsKeyId: string): Promise<void>;
  /**
   * Moves AWSCURRENT to `toVersionId` from `fromVersionId`: a compare-and-swap, since Secrets Manager refuses
   * the move when the label is no longer on `fromVersionId` (undefined: on no version).
   */
  makeCurrent(secretId: string, toVersionId: string, fromVersionId: string | undefined): Promise<void>;
  tag(secretId: string, tags: Readonly<Record<string, string>>): Promise<void>;
  untag(secretId: string, keys: readonly string[]): Promise<void>;
  /** DeleteSecret with a recovery window (7-30 days). */
  scheduleDeletion(secretId: string, recoveryWindowDays: number): Promise<void>;
  restore(secretId: string): Promise<void>;
}

/** Secrets Manager's limit on a secret value, string or binary. */
export const MAX_SECRET_BYTES = 65_536;

export function valueBytes(value: SecretValue): number {
  return value.kind === 'string' ? Buffer.byteLength(value.text, 'utf8') : value.bytes.byteLength;
}
