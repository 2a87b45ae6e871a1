import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { RunnerConfig } from './config';
import { classifyFailure, RetryableError, type Failure } from '../lib/failures';
import { describeError } from '../lib/redact';
import { readDelivery, type Delivery, type WebhookRequest } from './webhook';

/**
 * The webhook secret, from Secrets Manager, rotation-safe.
 *
 * The secret's value is either the webhook secret itself as plain text, or a JSON object whose `secret`
 * field (a non-empty string) is the webhook secret (the shape of a key/value secret made in the console).
 * Nothing is trimmed: the value is exactly what was set on GitHub. A JSON object without a string `secret`
 * is refused (the other stage, if it reads, still verifies).
 *
 * Both staging labels verify: `AWSCURRENT` and `AWSPREVIOUS` (absent until the first rotation). To rotate:
 * put the new value in Secrets Manager (the old one becomes `AWSPREVIOUS` and keeps verifying), then set it
 * on the GitHub App or webhook. The values are cached for `ttlMs` (default 5 min); a delivery no cached
 * secret verifies triggers one refresh, at most one per `minRefreshMs` (default 30 s), so a secret rotated
 * since the cache was filled verifies at once while a flood of forged signatures costs one read per 30 s.
 * When a read fails, the secrets already cached stay in use; with none cached, the read's failure is
 * thrown (a RetryableError: the delivery answers 500 and can be redelivered).
 *
 * The two labels are read independently (`Promise.allSettled`): only `AWSCURRENT` is needed. A previous
 * value that cannot be read (throttled, access denied on an old key) or parsed is reported through
 * `onUnreadable` (stage and a value-free failure) and verifies nothing, except that a previous value read
 * before and still cached keeps verifying when only the read failed: a rotation in progress is not cut
 * short by one throttled call.
 *
 * Secret values never reach a log, a metric or an error: errors name the stage and the failure's type.
 */

export type SecretStage = 'AWSCURRENT' | 'AWSPREVIOUS';

/** Reads one staging label of the webhook secret: its raw value, or undefined when no version has it. */
export type SecretReader = (stage: SecretStage) => Promise<string | undefined>;

/** The webhook secrets a delivery may be signed with, current first. */
export interface WebhookSecrets {
  secrets(): Promise<readonly string[]>;
  /** Fresh secrets after a read from the source, or undefined when one was made less than 30 s ago. */
  refreshed(): Promise<readonly string[] | undefined>;
}

export interface WebhookSecretOptions {
  readonly ttlMs?: number;
  readonly minRefreshMs?: number;
  readonly now?: () => number;
  /**
   * Told of a staging label that could not be read or parsed while the other one served (`AWSPREVIOUS`
   * today); the failure names the stage and the error's type, never a value. Default: nothing.
   */
  readonly onUnreadable?: (stage: SecretStage, failure: Failure) => void;
}

export const DEFAULT_SECRET_TTL_MS = 5 * 60_000;
export const DEFAULT_MIN_REFRESH_MS = 30_000;

/** The webhook secret a stored value holds (see the file's comment); throws naming the rule only. */
export function webhookSecretOf(value: string, stage: SecretStage): string {
  if (value.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value) as unknown;
    } catch {
      return value; // plain text that happens to start with a brace
    }
    const secret =
      typeof parsed === 'object' && parsed !== null && Object.prototype.hasOwnProperty.call(parsed, 'secret')
        ? (parsed as { secret: unknown }).secret
        : undefined;
    if (typeof secret !== 'string' || secret.length === 0)
      throw new RetryableError(
        'webhook-secret-invalid',
        `webhook secret ${stage}: expected plain text or a JSON object with a non-empty string secret`,
      );
    return secret;
  }
  if (value.length === 0)
    throw new RetryableError('webhook-secret-invalid', `webhook secret ${stage}: expected a non-empty value`);
  return value;
}

/** A reader of the secret's staging labels through GetSecretValue (a missing label reads as undefined). */
export function secretsManagerReader(client: SecretsManagerClient, secretId: string): SecretReader {
  return async (stage) => {
    try {
      const out = await client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }));
      if (out.SecretString !== undefined) return out.SecretString;
      if (out.SecretBinary !== undefined) return Buffer.from(out.SecretBinary).toString('utf8');
      return undefined;
    } catch (error) {
      // No version carries the label (AWSPREVIOUS before the first rotation).
      if (stage === 'AWSPREVIOUS' && error instanceof Error && error.name === 'ResourceNotFoundException')
        return undefined;
      throw new RetryableError(
        'webhook-secret-unavailable',
        `reading webhook secret ${stage} failed: ${describeError(error)}`,
      );
    }
  };
}

/** The webhook secrets, cached and refreshed as the file's comment says. */
export class WebhookSecretSource implements WebhookSecrets {
  private cached: readonly string[] | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<readonly string[]> | undefined;
  private readonly ttlMs: number;
  private readonly minRefreshMs: number;
  private readonly now: () => number;
  private readonly onUnreadable: (stage: SecretStage, failure: Failure) => void;

  constructor(
    private readonly read: SecretReader,
    options: WebhookSecretOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SECRET_TTL_MS;
    this.minRefreshMs = options.minRefreshMs ?? DEFAULT_MIN_REFRESH_MS;
    this.now = options.now ?? Date.now;
    this.onUnreadable = options.onUnreadable ?? (() => undefined);
  }

  static fromSecretsManager(
    client: SecretsManagerClient,
    secretId: string,
    options?: WebhookSecretOptions,
  ): WebhookSecretSource {
    return new WebhookSecretSource(secretsManagerReader(client, secretId), options);
  }

  async secrets(): Promise<readonly string[]> {
    const now = this.now();
    if (this.cached && now - this.fetchedAt < this.ttlMs) return this.cached;
    // Past its time-to-live: read again, unless a read failed lately (then the stale values serve).
    if (this.cached && now - this.attemptedAt < this.minRefreshMs) return this.cached;
    return this.fetch();
  }

  async refreshed(): Promise<readonly string[] | undefined> {
    if (this.inFlight) return this.inFlight;
    if (this.now() - this.attemptedAt < this.minRefreshMs) return undefined;
    return this.fetch();
  }

  private fetch(): Promise<readonly string[]> {
    this.inFlight ??= this.load().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async load(): Promise<readonly string[]> {
    this.attemptedAt = this.now();
    try {
      const [current, previous] = await Promise.allSettled([
        this.read('AWSCURRENT'),
        this.read('AWSPREVIOUS'),
      ]);
      if (current.status === 'rejected') throw current.reason;
      if (current.value === undefined)
        throw new RetryableError('webhook-secret-unavailable', 'webhook secret AWSCURRENT: expected a value');
      const secrets = [webhookSecretOf(current.value, 'AWSCURRENT')];
      const older = this.previousOf(previous, secrets[0] as string);
      if (older !== undefined && older !== secrets[0]) secrets.push(older);
      this.cached = secrets;
      this.fetchedAt = this.now();
      return secrets;
    } catch (error) {
      if (this.cached) return this.cached;
      throw error;
    }
  }

  /**
   * The previous secret, or undefined: none set, or not usable (reported). When its read failed, the
   * secret cached from an earlier read that is not the current one still verifies (the cached previous
   * one, or the cached current one when the secret was rotated since).
   */
  private previousOf(result: PromiseSettledResult<string | undefined>, current: string): string | undefined {
    if (result.status === 'fulfilled') {
      if (result.value === undefined) return undefined;
      try {
        return webhookSecretOf(result.value, 'AWSPREVIOUS');
      } catch (error) {
        this.report(error);
        return undefined;
      }
    }
    this.report(result.reason);
    return this.cached?.find((secret) => secret !== current);
  }

  private report(error: unknown): void {
    try {
      this.onUnreadable('AWSPREVIOUS', classifyFailure(error));
    } catch {
      // The listener is telemetry: its own failure must not cost the deliveries their secrets.
    }
  }
}

/**
 * Reads a delivery with the cached secrets; when none verifies its signature, once more with secrets read
 * afresh (rate-limited by the source): a secret rotated since the cache was filled verifies at once.
 */
export async function readAuthenticatedDelivery(
  request: WebhookRequest,
  source: WebhookSecrets,
  config: Pick<RunnerConfig, 'maxBodyBytes'>,
): Promise<Delivery> {
  const delivery = await readDelivery(request, await source.secrets(), config);
  if (delivery.kind !== 'refused' || delivery.code !== 'signature-mismatch') return delivery;
  const fresh = await source.refreshed();
  return fresh ? readDelivery(request, fresh, config) : delivery;
}
