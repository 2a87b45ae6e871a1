import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  RestoreSecretCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateSecretCommand,
  UpdateSecretVersionStageCommand,
  type DescribeSecretCommandOutput,
  type SecretListEntry,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { CurrentVersion, SecretDescription, SecretsApi, SecretValue } from './secrets-api';

function describedFrom(
  entry: DescribeSecretCommandOutput | SecretListEntry,
  stages: Record<string, string[]> | undefined,
): SecretDescription {
  const versions = Object.entries(stages ?? {});
  const current = versions.find(([, labels]) => labels.includes('AWSCURRENT'))?.[0];
  return {
    arn: entry.ARN ?? '',
    name: entry.Name ?? '',
    tags: Object.fromEntries((entry.Tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? ''])),
    ...(current ? { currentVersionId: current } : {}),
    versionIds: versions.map(([id]) => id),
    ...(entry.DeletedDate ? { deletedDate: entry.DeletedDate } : {}),
    ...(entry.KmsKeyId ? { kmsKeyId: entry.KmsKeyId } : {}),
  };
}

const payload = (value: SecretValue) =>
  value.kind === 'string' ? { SecretString: value.text } : { SecretBinary: value.bytes };

const tagList = (tags: Readonly<Record<string, string>>) =>
  Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

async function orUndefined<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

/** The replicator's Secrets Manager calls on the AWS SDK, in the client's region and account. */
export class AwsSecretsApi implements SecretsApi {
  constructor(private readonly client: SecretsManagerClient) {}

  async describe(secretId: string): Promise<SecretDescription | undefined> {
    const found = await orUndefined(this.client.send(new DescribeSecretCommand({ SecretId: secretId })));
    return found && describedFrom(found, found.VersionIdsToStages);
  }

  async current(
    secretId: string,
    stage: 'AWSCURRENT' | 'AWSPREVIOUS' = 'AWSCURRENT',
  ): Promise<CurrentVersion | undefined> {
    const found = await orUndefined(
      this.client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage })),
    );
    if (!found?.VersionId) return undefined;
    const value: SecretValue =
      found.SecretString !== undefined
        ? { kind: 'string', text: found.SecretString }
        : { kind: 'binary', bytes: found.SecretBinary ?? new Uint8Array() };
    return { versionId: found.VersionId, createdDate: found.CreatedDate ?? new Date(0), value };
  }

  async *list(tagKey?: string): AsyncIterable<SecretDescription> {
    let NextToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListSecretsCommand({
          IncludePlannedDeletion: true,
          MaxResults: 100,
          NextToken,
          ...(tagKey ? { Filters: [{ Key: 'tag-key', Values: [tagKey] }] } : {}),
        }),
      );
      for (const entry of page.SecretList ?? []) yield describedFrom(entry, entry.SecretVersionsToStages);
      NextToken = page.NextToken;
    } while (NextToken);
  }

  async create(input: Parameters<SecretsApi['create']>[0]): Promise<void> {
    await this.client.send(
      new CreateSecretCommand({
        Name: input.name,
        ClientRequestToken: input.token,
        Description: input.description,
        ...payload(input.value),
        ...(input.kmsKeyId ? { KmsKeyId: input.kmsKeyId } : {}),
        Tags: tagList(input.tags),
      }),
    );
  }

  async putPending(secretId: string, token: string, value: SecretValue, stage: string): Promise<void> {
    await this.client.send(
      new PutSecretValueCommand({
        SecretId: secretId,
        ClientRequestToken: token,
        VersionStages: [stage],
        ...payload(value),
      }),
    );
  }

  async setKey(secretId: string, kmsKeyId: string): Promise<void> {
    await this.client.send(new UpdateSecretCommand({ SecretId: secretId, KmsKeyId: kmsKeyId }));
  }

  async makeCurrent(secretId: string, toVersionId: string, fromVersionId: string | undefined): Promise<void> {
    await this.client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: toVersionId,
        ...(fromVersionId ? { RemoveFromVersionId: fromVersionId } : {}),
      }),
    );
  }

  async tag(secretId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.client.send(new TagResourceCommand({ SecretId: secretId, Tags: tagList(tags) }));
  }

  async untag(secretId: string, keys: readonly string[]): Promise<void> {
    await this.client.send(new UntagResourceCommand({ SecretId: secretId, TagKeys: [...keys] }));
  }

  async scheduleDeletion(secretId: string, recoveryWindowDays: number): Promise<void> {
    await this.client.send(
      new DeleteSecretCommand({ SecretId: secretId, RecoveryWindowInDays: recoveryWindowDays }),
    );
  }

  async restore(secretId: string): Promise<void> {
    await this.client.send(new RestoreSecretCommand({ SecretId: secretId }));
  }
}
