import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { AwsSecretsApi } from './aws-secrets-api';
import type { Destination } from './config';
import type { SecretsApi } from './secrets-api';

/** Credentials are renewed this long before they expire. */
const RENEW_BEFORE_MS = 5 * 60_000;
const SESSION_SECONDS = 3600;

/**
 * Secrets Manager clients per destination, kept for the container's life: the function's own credentials
 * for destinations in its account, a role assumed through STS (with the destination's external id) for the
 * others, renewed before it expires. The SDK's own retries are off: each destination retries on its own
 * (fan-out), so that one slow destination's retries never hold another's.
 */
export class DestinationConnector {
  private readonly clients = new Map<string, SecretsApi>();
  private readonly sts: STSClient;

  constructor(
    private readonly region: string,
    private readonly sessionName: string,
    private readonly now: () => number = Date.now,
  ) {
    this.sts = new STSClient({ region });
  }

  /** Secrets Manager in the function's own region and account. */
  own(): SecretsApi {
    return this.cached(
      `self@${this.region}`,
      () => new SecretsManagerClient({ region: this.region, maxAttempts: 1 }),
    );
  }

  connect(destination: Destination): SecretsApi {
    const key = `${destination.roleArn ?? 'self'}|${destination.externalId ?? ''}@${destination.region}`;
    return this.cached(key, () => {
      const credentials = destination.roleArn
        ? this.assumedRole(destination.roleArn, destination.externalId)
        : undefined;
      return new SecretsManagerClient({
        region: destination.region,
        maxAttempts: 1,
        ...(credentials ? { credentials } : {}),
      });
    });
  }

  private cached(key: string, client: () => SecretsManagerClient): SecretsApi {
    let api = this.clients.get(key);
    if (!api) this.clients.set(key, (api = new AwsSecretsApi(client())));
    return api;
  }

  private assumedRole(roleArn: string, externalId: string | undefined): () => Promise<AwsCredentialIdentity> {
    let held: AwsCredentialIdentity | undefined;
    let pending: Promise<AwsCredentialIdentity> | undefined;
    return () => {
      const expiresAt = held?.expiration?.getTime() ?? 0;
      if (held && expiresAt - this.now() > RENEW_BEFORE_MS) return Promise.resolve(held);
      pending ??= this.sts
        .send(
          new AssumeRoleCommand({
            RoleArn: roleArn,
            RoleSessionName: this.sessionName,
            DurationSeconds: SESSION_SECONDS,
            ...(externalId ? { ExternalId: externalId } : {}),
          }),
        )
        .then(({ Credentials: c }) => {
          if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
          held = {
            accessKeyId: c.AccessKeyId,
            secretAccessKey: c.SecretAccessKey,
            ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
            ...(c.Expiration ? { expiration: c.Expiration } : {}),
          };
          return held;
        })
        .finally(() => {
          pending = undefined;
        });
      return pending;
    };
  }
}
