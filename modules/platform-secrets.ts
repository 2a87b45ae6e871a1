import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireMatch } from './lib/validate';

export interface PlatformSecretsProps {
  /** Secret names, e.g. `dev/runners/webhook-secret`. Their values are set out of band, never by Terraform. */
  readonly names: readonly string[];
  /** Key of the primary region, where the secrets live. */
  readonly primaryKey: KmsKey;
  /** Keys of every other region: each secret is replicated there, encrypted with that region's key. */
  readonly replicaKeys: readonly KmsKey[];
  /** Encrypt each replica with its region's key (off only for the emulator, which ignores it). Default: true. */
  readonly replicaCmk?: boolean;
  /** Days a deleted secret stays recoverable (7-30). Default: 30. */
  readonly recoveryWindowDays?: number;
}

/** Platform secrets with Secrets Manager's native replication to every other region of the environment. */
export class PlatformSecrets extends Construct {
  readonly secrets: readonly SecretsmanagerSecret[];

  constructor(scope: Construct, id: string, props: PlatformSecretsProps) {
    super(scope, id);
    props.names.forEach((name) =>
      requireMatch('PlatformSecrets', 'name', name, /^[a-zA-Z0-9/_+=.@-]{1,512}$/, 'a Secrets Manager name'),
    );
    const regions = props.replicaKeys.map((k) => k.region);
    if (regions.includes(props.primaryKey.region) || new Set(regions).size !== regions.length) {
      fail(
        'PlatformSecrets',
        'replicaKeys',
        regions,
        `one key per region other than ${props.primaryKey.region}`,
      );
    }
    this.secrets = props.names.map(
      (name, index) =>
        new SecretsmanagerSecret(this, `Secret${index}`, {
          name,
          kmsKeyId: props.primaryKey.arn,
          recoveryWindowInDays: props.recoveryWindowDays ?? 30,
          replica: props.replicaKeys.map((key) => ({
            region: key.region,
            ...(props.replicaCmk === false ? {} : { kmsKeyId: key.arn }),
          })),
        }),
    );
  }
}
