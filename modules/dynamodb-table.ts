import { DynamodbTable as DynamodbTableResource } from '@cdktf/provider-aws/lib/dynamodb-table';
import { DynamodbTableReplicaA } from '@cdktf/provider-aws/lib/dynamodb-table-replica';
import type { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireMatch } from './lib/validate';

export type AttributeType = 'S' | 'N' | 'B';

/** A key attribute of a table. */
export interface KeyAttribute {
  readonly name: string;
  readonly type: AttributeType;
}

export interface DynamodbTableProps {
  /** Table name (3 to 255 of letters, digits, `_`, `-`, `.`). */
  readonly tableName: string;
  /** Partition key. */
  readonly partitionKey: KeyAttribute;
  /** Sort key. Default: none. */
  readonly sortKey?: KeyAttribute;
  /** Customer-managed key for server-side encryption. */
  readonly kmsKey: KmsKey;
  /** Attribute holding the expiry epoch second; items past it are deleted. Default: `expiresAt`. */
  readonly ttlAttribute?: string;
  /** Stream view type, e.g. `NEW_AND_OLD_IMAGES`. Default: no stream. */
  readonly streamViewType?: 'KEYS_ONLY' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES';
  /** Refuse `DeleteTable` (on the table and each replica) while set. Default: true. */
  readonly deletionProtection?: boolean;
  /**
   * Refuse, at plan time, a change that destroys the table or a replica (`prevent_destroy`): removing a
   * region from the config then fails the plan instead of dropping that region's data. Default: true.
   */
  readonly preventDestroy?: boolean;
  /**
   * Make it a global table: one replica per key given, in that key's region (which must differ from the
   * table's; created with the key's provider), encrypted with it, with point-in-time recovery and deletion
   * protection. Needs a NEW_AND_OLD_IMAGES stream, which is then the default. Default: no replicas.
   */
  readonly replicaKeys?: readonly KmsKey[];
  /** Provider of the table's region, when the stack holds several. Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
}

const NAME = /^[a-zA-Z0-9_.-]{3,255}$/;

/** An on-demand DynamoDB table with point-in-time recovery, SSE under a customer-managed key, and TTL. */
export class DynamodbTable extends Construct {
  readonly table: DynamodbTableResource;
  readonly replicas: readonly DynamodbTableReplicaA[];

  constructor(scope: Construct, id: string, props: DynamodbTableProps) {
    super(scope, id);
    requireMatch('DynamodbTable', 'tableName', props.tableName, NAME, '3-255 letters, digits, _, - or .');
    const keys = [props.partitionKey, ...(props.sortKey ? [props.sortKey] : [])];
    for (const key of keys) {
      if (!/^[a-zA-Z0-9_.-]{1,255}$/.test(key.name))
        fail('DynamodbTable', 'key name', key.name, 'a non-empty attribute name');
    }
    if (props.sortKey && props.sortKey.name === props.partitionKey.name) {
      fail('DynamodbTable', 'sortKey.name', props.sortKey.name, 'a name different from the partition key');
    }
    const ttlAttribute = props.ttlAttribute ?? 'expiresAt';
    const replicaKeys = props.replicaKeys ?? [];
    const replicaRegions = replicaKeys.map((key) => key.region);
    if (
      replicaRegions.includes(props.kmsKey.region) ||
      new Set(replicaRegions).size !== replicaRegions.length
    ) {
      fail(
        'DynamodbTable',
        'replicaKeys',
        replicaRegions,
        `one key per region, none in the table's region ${props.kmsKey.region}`,
      );
    }
    const withoutProvider = replicaKeys.filter((key) => !key.provider).map((key) => key.region);
    if (withoutProvider.length > 0) {
      fail(
        'DynamodbTable',
        'replicaKeys',
        withoutProvider,
        "keys made with their region's provider (each replica is created through it)",
      );
    }
    if (replicaKeys.length > 0 && props.streamViewType && props.streamViewType !== 'NEW_AND_OLD_IMAGES') {
      fail(
        'DynamodbTable',
        'streamViewType',
        props.streamViewType,
        'NEW_AND_OLD_IMAGES, which replication requires',
      );
    }
    const streamViewType =
      props.streamViewType ?? (replicaKeys.length > 0 ? 'NEW_AND_OLD_IMAGES' : undefined);

    const deletionProtection = props.deletionProtection ?? true;
    const preventDestroy = props.preventDestroy ?? true;
    this.table = new DynamodbTableResource(this, 'Table', {
      name: props.tableName,
      billingMode: 'PAY_PER_REQUEST',
      hashKey: props.partitionKey.name,
      rangeKey: props.sortKey?.name,
      attribute: keys.map((k) => ({ name: k.name, type: k.type })),
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true, kmsKeyArn: props.kmsKey.arn },
      ttl: { enabled: true, attributeName: ttlAttribute },
      deletionProtectionEnabled: deletionProtection,
      ...(streamViewType ? { streamEnabled: true, streamViewType } : {}),
      provider: props.provider,
      lifecycle: {
        preventDestroy,
        // Replicas are their own resources (below), which the inline `replica` block would fight.
        ...(replicaKeys.length > 0 ? { ignoreChanges: ['replica'] } : {}),
      },
    });
    this.replicas = replicaKeys.map(
      (key) =>
        new DynamodbTableReplicaA(this, `Replica-${key.region}`, {
          globalTableArn: this.table.arn,
          kmsKeyArn: key.arn,
          pointInTimeRecovery: true,
          deletionProtectionEnabled: deletionProtection,
          provider: key.provider,
          lifecycle: { preventDestroy },
        }),
    );
  }

  get arn(): string {
    return this.table.arn;
  }

  get name(): string {
    return this.table.name;
  }
}
