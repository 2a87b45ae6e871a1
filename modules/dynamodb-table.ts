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

/**
 * What a secondary index holds besides its keys and the table's: only the keys, every attribute, or the named
 * attributes (`INCLUDE`).
 */
export type IndexProjection = 'KEYS_ONLY' | 'ALL' | { readonly include: readonly string[] };

/** A global secondary index: an item is listed when it has the index's key attributes (sparse otherwise). */
export interface GlobalSecondaryIndex {
  /** Index name (3 to 255 of letters, digits, `_`, `-`, `.`), unique on the table. */
  readonly indexName: string;
  /** Partition key of the index. */
  readonly partitionKey: KeyAttribute;
  /** Sort key of the index. Default: none. */
  readonly sortKey?: KeyAttribute;
  /** Attributes the index holds besides the keys (`include`: 1-100 non-key attributes). */
  readonly projection: IndexProjection;
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
  /**
   * Global secondary indexes (at most 20; together at most 100 projected non-key attributes). An attribute
   * used as a key by the table and an index, or by two indexes, has one type. On a global table every replica
   * gets them. Default: none.
   */
  readonly globalSecondaryIndexes?: readonly GlobalSecondaryIndex[];
  /** Provider of the table's region, when the stack holds several. Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
}

const NAME = /^[a-zA-Z0-9_.-]{3,255}$/;
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.-]{1,255}$/;
const ATTRIBUTE_TYPES: readonly string[] = ['S', 'N', 'B'];
/** DynamoDB's quotas: indexes per table, and non-key attributes projected into all of a table's indexes. */
const MAX_GLOBAL_INDEXES = 20;
const MAX_PROJECTED_ATTRIBUTES = 100;

/** Checks the indexes; returns every key attribute (the table's first), each once, with its one type. */
function keyAttributesOf(
  tableKeys: readonly KeyAttribute[],
  indexes: readonly GlobalSecondaryIndex[],
): KeyAttribute[] {
  if (indexes.length > MAX_GLOBAL_INDEXES)
    fail(
      'DynamodbTable',
      'globalSecondaryIndexes',
      `${indexes.length} indexes`,
      `at most ${MAX_GLOBAL_INDEXES}`,
    );
  const types = new Map<string, AttributeType>(tableKeys.map((k) => [k.name, k.type]));
  const names = new Set<string>();
  let projected = 0;
  indexes.forEach((index, i) => {
    const at = `globalSecondaryIndexes[${i}]`;
    requireMatch(
      'DynamodbTable',
      `${at}.indexName`,
      index.indexName,
      NAME,
      '3-255 letters, digits, _, - or .',
    );
    if (names.has(index.indexName))
      fail('DynamodbTable', `${at}.indexName`, index.indexName, 'a name no other index of the table has');
    names.add(index.indexName);
    const keys: Array<[string, KeyAttribute]> = [[`${at}.partitionKey`, index.partitionKey]];
    if (index.sortKey) keys.push([`${at}.sortKey`, index.sortKey]);
    for (const [field, key] of keys) {
      if (!ATTRIBUTE_NAME.test(key.name))
        fail('DynamodbTable', `${field}.name`, key.name, '1-255 letters, digits, _, - or .');
      if (!ATTRIBUTE_TYPES.includes(key.type)) fail('DynamodbTable', `${field}.type`, key.type, 'S, N or B');
      const known = types.get(key.name);
      if (known !== undefined && known !== key.type)
        fail(
          'DynamodbTable',
          `${field}.type`,
          key.type,
          `${known}, the type ${key.name} has as a key elsewhere on the table`,
        );
      types.set(key.name, key.type);
    }
    if (index.sortKey && index.sortKey.name === index.partitionKey.name)
      fail(
        'DynamodbTable',
        `${at}.sortKey.name`,
        index.sortKey.name,
        'a name different from the partition key',
      );
    const { projection } = index;
    if (projection === 'KEYS_ONLY' || projection === 'ALL') return;
    if (typeof projection !== 'object' || projection === null || !Array.isArray(projection.include))
      fail(
        'DynamodbTable',
        `${at}.projection`,
        projection,
        "'KEYS_ONLY', 'ALL' or { include: [attribute names] }",
      );
    const include = projection.include;
    if (include.length === 0)
      fail('DynamodbTable', `${at}.projection.include`, include, "at least one attribute (or 'KEYS_ONLY')");
    for (const attribute of include) {
      if (typeof attribute !== 'string' || !ATTRIBUTE_NAME.test(attribute))
        fail('DynamodbTable', `${at}.projection.include`, attribute, '1-255 letters, digits, _, - or .');
      if (tableKeys.some((k) => k.name === attribute) || keys.some(([, k]) => k.name === attribute))
        fail(
          'DynamodbTable',
          `${at}.projection.include`,
          attribute,
          'a non-key attribute (keys are always projected)',
        );
    }
    if (new Set(include).size !== include.length)
      fail('DynamodbTable', `${at}.projection.include`, include, 'each attribute once');
    projected += include.length;
  });
  if (projected > MAX_PROJECTED_ATTRIBUTES)
    fail(
      'DynamodbTable',
      'globalSecondaryIndexes',
      `${projected} projected attributes`,
      `at most ${MAX_PROJECTED_ATTRIBUTES} non-key attributes across the table's indexes`,
    );
  return [...types].map(([name, type]) => ({ name, type }));
}

/**
 * An on-demand DynamoDB table with point-in-time recovery, SSE under a customer-managed key, TTL, and global
 * secondary indexes when asked.
 */
export class DynamodbTable extends Construct {
  readonly table: DynamodbTableResource;
  readonly replicas: readonly DynamodbTableReplicaA[];
  readonly globalSecondaryIndexes: readonly GlobalSecondaryIndex[];

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
    this.globalSecondaryIndexes = [...(props.globalSecondaryIndexes ?? [])];
    const attributes = keyAttributesOf(keys, this.globalSecondaryIndexes);
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
      attribute: attributes,
      ...(this.globalSecondaryIndexes.length > 0
        ? {
            globalSecondaryIndex: this.globalSecondaryIndexes.map((index) => ({
              name: index.indexName,
              hashKey: index.partitionKey.name,
              rangeKey: index.sortKey?.name,
              ...(typeof index.projection === 'object'
                ? { projectionType: 'INCLUDE', nonKeyAttributes: [...index.projection.include] }
                : { projectionType: index.projection }),
            })),
          }
        : {}),
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

  /** The ARN of one of the table's global secondary indexes (what Query and Scan of it are granted on). */
  indexArn(indexName: string): string {
    if (!this.globalSecondaryIndexes.some((index) => index.indexName === indexName))
      fail(
        'DynamodbTable',
        'indexName',
        indexName,
        `one of the table's indexes (${this.globalSecondaryIndexes.map((i) => i.indexName).join(', ') || 'none'})`,
      );
    return `${this.table.arn}/index/${indexName}`;
  }

  get name(): string {
    return this.table.name;
  }
}
