import { randomUUID } from 'node:crypto';
import type {
  CurrentVersion,
  SecretDescription,
  SecretsApi,
  SecretValue,
} from '../../runtime/secrets/secrets-api';

interface Version {
  readonly id: string;
  readonly value: SecretValue;
  readonly created: Date;
  stages: string[];
}

interface Secret {
  readonly arn: string;
  readonly name: string;
  tags: Record<string, string>;
  versions: Version[];
  deletedDate?: Date;
  kmsKeyId?: string;
}

/** A call the fake saw: its operation and the secret it named. */
export interface Call {
  readonly op: keyof SecretsApi;
  readonly secretId: string;
}

const WRITE_OPS = new Set<keyof SecretsApi>([
  'create',
  'putPending',
  'setKey',
  'makeCurrent',
  'tag',
  'untag',
  'scheduleDeletion',
  'restore',
]);

function awsError(name: string, status: number, message: string): Error {
  const error = new Error(message);
  error.name = name;
  Object.assign(error, { $metadata: { httpStatusCode: status } });
  return error;
}

const sameValue = (a: SecretValue, b: SecretValue) =>
  a.kind === b.kind &&
  (a.kind === 'string'
    ? a.text === (b as typeof a).text
    : Buffer.from(a.bytes).equals(Buffer.from((b as typeof a).bytes)));

/**
 * Secrets Manager of one region and account, in memory, for unit tests and benches: versions with staging
 * labels, ClientRequestToken idempotency (the same token and value: ignored; another value: refused),
 * deletion with a recovery window, tags, and listing with a tag-key filter. Counts every call; a test can
 * make any operation fail, and every call can take a fixed latency. The emulator lane runs the real API.
 */
export class FakeSecretsManager implements SecretsApi {
  readonly calls: Call[] = [];
  private readonly secrets = new Map<string, Secret>();
  /** Fails the next matching calls with the given error (consumed one per call). */
  readonly failures: { op: keyof SecretsApi; error: () => Error; times: number }[] = [];
  latencyMs = 0;
  /** Runs before a call is answered (once per entry), e.g. to interleave another writer. */
  readonly before: { op: keyof SecretsApi; run: () => Promise<void> }[] = [];
  clock: () => number = Date.now;

  constructor(
    readonly region: string,
    readonly account = '111111111111',
  ) {}

  get writes(): Call[] {
    return this.calls.filter((call) => WRITE_OPS.has(call.op));
  }

  private async enter(op: keyof SecretsApi, secretId: string): Promise<void> {
    this.calls.push({ op, secretId });
    const hook = this.before.findIndex((h) => h.op === op);
    if (hook >= 0) await this.before.splice(hook, 1)[0]?.run();
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
    const failure = this.failures.find((f) => f.op === op && f.times > 0);
    if (failure) {
      failure.times--;
      throw failure.error();
    }
  }

  private find(secretId: string): Secret | undefined {
    return this.secrets.get(secretId) ?? [...this.secrets.values()].find((s) => s.arn === secretId);
  }

  private get(secretId: string): Secret {
    const secret = this.find(secretId);
    if (!secret)
      throw awsError('ResourceNotFoundException', 400, "Secrets Manager can't find the specified secret.");
    return secret;
  }

  private live(secretId: string): Secret {
    const secret = this.get(secretId);
    if (secret.deletedDate)
      throw awsError(
        'InvalidRequestException',
        400,
        'You tried to perform the operation on a secret that is currently marked deleted.',
      );
    return secret;
  }

  private describeOf(secret: Secret): SecretDescription {
    const current = secret.versions.find((v) => v.stages.includes('AWSCURRENT'));
    return {
      arn: secret.arn,
      name: secret.name,
      tags: { ...secret.tags },
      ...(current ? { currentVersionId: current.id } : {}),
      versionIds: secret.versions.filter((v) => v.stages.length > 0).map((v) => v.id),
      ...(secret.deletedDate ? { deletedDate: secret.deletedDate } : {}),
      ...(secret.kmsKeyId ? { kmsKeyId: secret.kmsKeyId } : {}),
    };
  }

  private addVersion(
    secret: Secret,
    token: string,
    value: SecretValue,
    makeCurrent: boolean,
  ): readonly string[] {
    const existing = secret.versions.find((v) => v.id === token);
    if (existing) {
      if (!sameValue(existing.value, value))
        throw awsError(
          'ResourceExistsException',
          400,
          'You can’t use ClientRequestToken because that value is already in use.',
        );
      return existing.stages;
    }
    const version: Version = { id: token, value, created: new Date(this.clock()), stages: [] };
    if (makeCurrent) {
      for (const v of secret.versions) {
        v.stages = v.stages.filter((s) => s !== 'AWSPREVIOUS');
        if (v.stages.includes('AWSCURRENT'))
          v.stages = [...v.stages.filter((s) => s !== 'AWSCURRENT'), 'AWSPREVIOUS'];
      }
      version.stages = ['AWSCURRENT'];
    }
    secret.versions.push(version);
    return version.stages;
  }

  // --- test helpers: a user's own calls, not counted --------------------------------------------------

  /** A user's write (a new version with a UUID token), creating the secret if needed. */
  userWrite(name: string, value: SecretValue | string, tags: Record<string, string> = {}): Secret {
    const v: SecretValue = typeof value === 'string' ? { kind: 'string', text: value } : value;
    let secret = this.find(name);
    if (!secret) {
      secret = {
        arn: `arn:aws:secretsmanager:${this.region}:${this.account}:secret:${name}-${randomUUID().slice(0, 6)}`,
        name,
        tags: { ...tags },
        versions: [],
      };
      this.secrets.set(name, secret);
    } else Object.assign(secret.tags, tags);
    this.addVersion(secret, randomUUID(), v, true);
    return secret;
  }

  userDelete(name: string, options: { force?: boolean; recoveryDays?: number } = {}): void {
    const secret = this.get(name);
    if (options.force) this.secrets.delete(secret.name);
    else secret.deletedDate = new Date(this.clock() + (options.recoveryDays ?? 30) * 86_400_000);
  }

  userRestore(name: string): void {
    delete this.get(name).deletedDate;
  }

  userTag(name: string, tags: Record<string, string>): void {
    Object.assign(this.get(name).tags, tags);
  }

  /** The current value, or undefined. */
  valueOf(name: string): SecretValue | undefined {
    return this.find(name)?.versions.find((v) => v.stages.includes('AWSCURRENT'))?.value;
  }

  textOf(name: string): string | undefined {
    const value = this.valueOf(name);
    return value?.kind === 'string' ? value.text : undefined;
  }

  secret(name: string): Readonly<Secret> | undefined {
    return this.find(name);
  }

  names(): string[] {
    return [...this.secrets.keys()].sort();
  }

  /** DescribeSecret answers a key as its ARN (an alias as the alias ARN), whatever form it was given in. */
  private keyArn(kmsKeyId: string): string {
    if (kmsKeyId.startsWith('arn:')) return kmsKeyId;
    const resource = kmsKeyId.startsWith('alias/') ? kmsKeyId : `key/${kmsKeyId}`;
    return `arn:aws:kms:${this.region}:${this.account}:${resource}`;
  }

  // --- SecretsApi --------------------------------------------------------------------------------------

  async describe(secretId: string): Promise<SecretDescription | undefined> {
    await this.enter('describe', secretId);
    const secret = this.find(secretId);
    return secret && this.describeOf(secret);
  }

  async current(
    secretId: string,
    stage: 'AWSCURRENT' | 'AWSPREVIOUS' = 'AWSCURRENT',
  ): Promise<CurrentVersion | undefined> {
    await this.enter('current', secretId);
    const secret = this.find(secretId);
    if (!secret) return undefined;
    if (secret.deletedDate)
      throw awsError(
        'InvalidRequestException',
        400,
        'You tried to perform the operation on a secret that is currently marked deleted.',
      );
    const version = secret.versions.find((v) => v.stages.includes(stage));
    return version && { versionId: version.id, createdDate: version.created, value: version.value };
  }

  /** Pages of 100, as the first page's call found them; `tag-key` matches a prefix, as AWS documents. */
  async *list(tagKey?: string): AsyncIterable<SecretDescription> {
    await this.enter('list', tagKey ?? '*');
    const all = [...this.secrets.values()].filter(
      (s) => !tagKey || Object.keys(s.tags).some((key) => key.startsWith(tagKey)),
    );
    for (let page = 0; page * 100 < Math.max(all.length, 1); page++) {
      if (page > 0) await this.enter('list', tagKey ?? '*');
      for (const secret of all.slice(page * 100, page * 100 + 100)) yield this.describeOf(secret);
    }
  }

  async create(input: Parameters<SecretsApi['create']>[0]): Promise<void> {
    await this.enter('create', input.name);
    const existing = this.find(input.name);
    if (existing) {
      if (existing.versions.some((v) => v.id === input.token && sameValue(v.value, input.value))) return;
      throw awsError(
        'ResourceExistsException',
        400,
        'The operation failed because the secret already exists.',
      );
    }
    const secret: Secret = {
      arn: `arn:aws:secretsmanager:${this.region}:${this.account}:secret:${input.name}-${randomUUID().slice(0, 6)}`,
      name: input.name,
      tags: { ...input.tags },
      versions: [],
      ...(input.kmsKeyId ? { kmsKeyId: this.keyArn(input.kmsKeyId) } : {}),
    };
    this.secrets.set(input.name, secret);
    this.addVersion(secret, input.token, input.value, true);
  }

  async putPending(secretId: string, token: string, value: SecretValue, stage: string): Promise<void> {
    await this.enter('putPending', secretId);
    const secret = this.live(secretId);
    if (secret.versions.some((v) => v.id === token)) {
      this.addVersion(secret, token, value, false);
      return;
    }
    for (const v of secret.versions) v.stages = v.stages.filter((label) => label !== stage);
    this.addVersion(secret, token, value, false);
    (secret.versions.at(-1) as Version).stages = [stage];
  }

  async setKey(secretId: string, kmsKeyId: string): Promise<void> {
    await this.enter('setKey', secretId);
    this.live(secretId).kmsKeyId = this.keyArn(kmsKeyId);
  }

  async makeCurrent(secretId: string, toVersionId: string, fromVersionId: string | undefined): Promise<void> {
    await this.enter('makeCurrent', secretId);
    const secret = this.live(secretId);
    const to = secret.versions.find((v) => v.id === toVersionId);
    if (!to) throw awsError('InvalidParameterException', 400, 'Not a valid version.');
    const from = secret.versions.find((v) => v.stages.includes('AWSCURRENT'));
    if (from?.id !== fromVersionId)
      throw awsError(
        'InvalidParameterException',
        400,
        'The staging label is not attached to RemoveFromVersionId.',
      );
    if (from && from !== to) {
      // AWSPREVIOUS moves to the version AWSCURRENT left, and only there.
      for (const v of secret.versions) v.stages = v.stages.filter((label) => label !== 'AWSPREVIOUS');
      from.stages = [...from.stages.filter((label) => label !== 'AWSCURRENT'), 'AWSPREVIOUS'];
    }
    to.stages = [
      ...to.stages.filter((label) => label !== 'AWSPREVIOUS' && label !== 'AWSCURRENT'),
      'AWSCURRENT',
    ];
  }

  async tag(secretId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.enter('tag', secretId);
    Object.assign(this.get(secretId).tags, tags);
  }

  async untag(secretId: string, keys: readonly string[]): Promise<void> {
    await this.enter('untag', secretId);
    const secret = this.get(secretId);
    for (const key of keys) delete secret.tags[key];
  }

  async scheduleDeletion(secretId: string, recoveryWindowDays: number): Promise<void> {
    await this.enter('scheduleDeletion', secretId);
    const secret = this.live(secretId);
    secret.deletedDate = new Date(this.clock() + recoveryWindowDays * 86_400_000);
  }

  async restore(secretId: string): Promise<void> {
    await this.enter('restore', secretId);
    delete this.get(secretId).deletedDate;
  }
}
