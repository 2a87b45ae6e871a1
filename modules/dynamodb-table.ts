import { DynamodbTable as DynamodbTableResource } from '@cdktf/provider-aws/lib/dynamodb-table';
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
  /** Refuse `DeleteTable` while set. Default: true. */
  readonly deletionProtection?: boolean;
  /**
   * Make it a global table: one replica per key given, in that key's region (which must differ from the
   * table's), encrypted with it, with point-in-time recovery. Needs a NEW_AND_OLD_IMAGES stream, which is
   * then the default. Default: no replicas.
   */
  readonly replicaKeys?: readonly KmsKey[];
  /** Provider of the table's region, when the stack holds several. Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
}

const NAME = /^[a-zA-Z0-9_.-]{3,255}$/;

/** An on-demand DynamoDB table with point-in-time recovery, SSE under a customer-managed key, and TTL. */
export class DynamodbTable extends Construct {
  readonly table: DynamodbTableResource;

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

    this.table = new DynamodbTableResource(this, 'Table', {
      name: props.tableName,
      billingMode: 'PAY_PER_REQUEST',
      hashKey: props.partitionKey.name,
      rangeKey: props.sortKey?.name,
      attribute: keys.map((k) => ({ name: k.name, type: k.type })),
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true, kmsKeyArn: props.kmsKey.arn },
      ttl: { enabled: true, attributeName: ttlAttribute },
      deletionProtectionEnabled: props.deletionProtection ?? true,
      ...(streamViewType ? { streamEnabled: true, streamViewType } : {}),
      ...(replicaKeys.length > 0
        ? {
            replica: replicaKeys.map((key) => ({
              regionName: key.region,
              kmsKeyArn: key.arn,
              pointInTimeRecovery: true,
              propagateTags: true,
            })),
          }
        : {}),
      provider: props.provider,
    });
  }

  get arn(): string {
    return this.table.arn;
  }

  get name(): string {
    return this.table.name;
  }
}
