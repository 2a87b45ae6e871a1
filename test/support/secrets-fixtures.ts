import type { DeletePolicy, Destination, Route } from '../../runtime/secrets/config';
import type { ConfigEvents } from '../../runtime/secrets/config-source';
import { ConfigSource } from '../../runtime/secrets/config-source';
import type { ReplicatorDeps } from '../../runtime/secrets/replicator';
import { FakeSecretsManager } from './secrets-fake';

export const ACCOUNT = '111111111111';

export interface DestinationSpec {
  readonly name?: string;
  readonly region: string;
  readonly roleArn?: string;
  readonly twoWay?: boolean;
  readonly deletePolicy?: DeletePolicy;
  readonly kmsKeyId?: string;
  /** Names this destination takes (default: every name). */
  readonly selects?: (name: string) => boolean;
  /** A tag the secret must carry to be taken (a tag rule). */
  readonly requiresTag?: string;
  readonly rename?: (name: string) => string;
  readonly transform?: (value: string) => string;
}

/** A destination built by hand (the configuration parser has its own tests). */
export function destinationOf(spec: DestinationSpec): Destination {
  return {
    name: spec.name ?? spec.region,
    region: spec.region,
    ...(spec.roleArn ? { roleArn: spec.roleArn } : {}),
    ...(spec.kmsKeyId ? { kmsKeyId: spec.kmsKeyId } : {}),
    deletePolicy: spec.deletePolicy ?? { kind: 'ignore' },
    twoWay: spec.twoWay ?? false,
    route: (name: string, tags: Readonly<Record<string, string>>): Route | undefined =>
      (spec.selects && !spec.selects(name)) || (spec.requiresTag && !(spec.requiresTag in tags))
        ? undefined
        : {
            targetName: spec.rename ? spec.rename(name) : name,
            transform: spec.transform ?? ((value) => value),
            rule: 'filters[0]',
            ruleHash: 'rule-1',
          },
  };
}

/** A config source that serves a fixed destination list (no config secret read). */
export class FixedConfig extends ConfigSource {
  constructor(private readonly destinations: readonly Destination[]) {
    super(new FakeSecretsManager('unused'), 'estate/secrets-replicator/config', 0, {} as ConfigEvents);
  }

  override async get() {
    return { config: { destinations: this.destinations, hash: 'fixed' }, versionId: 'fixed' };
  }

  override peek() {
    return { config: { destinations: this.destinations, hash: 'fixed' }, versionId: 'fixed' };
  }
}

/** Secrets Manager of each region of one account, and a replicator running in one of them. */
export class World {
  readonly regions = new Map<string, FakeSecretsManager>();
  now = Date.parse('2026-12-01T00:00:00Z');

  region(name: string, account = ACCOUNT): FakeSecretsManager {
    const key = `${account}/${name}`;
    let found = this.regions.get(key);
    if (!found) {
      found = new FakeSecretsManager(name, account);
      found.clock = () => this.now;
      this.regions.set(key, found);
    }
    return found;
  }

  /** Replicator dependencies for a replicator in `region` with `destinations`. */
  replicator(
    region: string,
    destinations: readonly Destination[],
    overrides: Partial<ReplicatorDeps> = {},
  ): ReplicatorDeps {
    return {
      self: {
        region,
        account: ACCOUNT,
        roleArn: `arn:aws:iam::${ACCOUNT}:role/test-secrets-replicator-${region}`,
      },
      source: this.region(region),
      connect: (destination) =>
        this.region(destination.region, destination.roleArn?.split(':')[4] ?? ACCOUNT),
      config: new FixedConfig(destinations),
      parallelism: 8,
      resyncParallelism: 4,
      retry: { attempts: 3, baseMs: 1, capMs: 2, sleep: async () => undefined },
      now: () => this.now,
      ...overrides,
    };
  }
}

export function awsError(name: string, status: number): Error {
  const error = new Error(`${name} from the service`);
  error.name = name;
  Object.assign(error, { $metadata: { httpStatusCode: status } });
  return error;
}
