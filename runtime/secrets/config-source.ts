import { RetryableError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { parseReplicatorConfig, ReplicatorConfigError, type ReplicatorConfig } from './config';
import type { SecretsApi } from './secrets-api';

export interface LoadedConfig {
  readonly config: ReplicatorConfig;
  /** The config secret's version it was read from. */
  readonly versionId: string;
}

export interface ConfigEvents {
  /** A new version was read and is in force. */
  loaded(hash: string): void;
  /** A new version was refused: the previous one stays in force, if there is one. */
  refused(issues: readonly string[]): void;
}

/**
 * The replicator's configuration, read from its config secret and cached: the secret's current version is
 * checked at most once per `checkEveryMs` (one DescribeSecret), or at once when a change to the config
 * secret arrives, and read again only when it moved. A version that does not validate is refused with every
 * issue named; the last good configuration stays in force meanwhile. With none yet, work waits (retried).
 */
export class ConfigSource {
  private loaded: LoadedConfig | undefined;
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  private refusedVersionId: string | undefined;

  constructor(
    private readonly api: SecretsApi,
    readonly secretId: string,
    private readonly checkEveryMs: number,
    private readonly events: ConfigEvents,
    private readonly now: () => number = Date.now,
  ) {}

  private loadedArn: string | undefined;

  /** Whether a secret (by its name or ARN) is the config secret. */
  isConfigSecret(secret: { readonly name: string; readonly arn: string }): boolean {
    return [secret.name, secret.arn].some((id) => id === this.secretId || id === this.loadedArn);
  }

  /** The configuration in force, without checking for a newer one. */
  peek(): LoadedConfig | undefined {
    return this.loaded;
  }

  async get(options: { readonly force?: boolean } = {}): Promise<LoadedConfig> {
    const due = options.force || this.now() - this.checkedAtMs >= this.checkEveryMs;
    if (this.loaded && !due) return this.loaded;
    const description = await this.api.describe(this.secretId);
    const versionId = description?.currentVersionId;
    this.loadedArn = description?.arn;
    if (!versionId) return this.keepOrWait([`${this.secretId}: the config secret has no current version`]);
    this.checkedAtMs = this.now();
    if (versionId === this.loaded?.versionId || versionId === this.refusedVersionId)
      return this.keepOrWait([`${this.secretId}: its current version was refused`]);
    const current = await this.api.current(this.secretId);
    if (!current || current.value.kind !== 'string')
      return this.refuse(versionId, ['the config secret holds no text: expected the JSON document']);
    try {
      this.loaded = { config: parseReplicatorConfig(current.value.text), versionId };
      this.refusedVersionId = undefined;
      this.events.loaded(this.loaded.config.hash);
      return this.loaded;
    } catch (error) {
      if (!(error instanceof ReplicatorConfigError)) throw error;
      return this.refuse(versionId, error.issues);
    }
  }

  private refuse(versionId: string, issues: readonly string[]): LoadedConfig {
    this.refusedVersionId = versionId;
    this.events.refused(issues);
    return this.keepOrWait(issues);
  }

  private keepOrWait(issues: readonly string[]): LoadedConfig {
    if (this.loaded) return this.loaded;
    throw new RetryableError('config-invalid', boundedText(issues.join('; '), 200));
  }
}
