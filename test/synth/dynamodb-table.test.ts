import { DynamodbTable as DynamodbTableResource } from '@cdktf/provider-aws/lib/dynamodb-table';
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import {
  DynamodbTable,
  type DynamodbTableProps,
  type GlobalSecondaryIndex,
} from '../../modules/dynamodb-table';
import { KmsKey } from '../../modules/kms-key';
import { only } from '../support/synthesized';

function table(scope: Construct, patch: Partial<DynamodbTableProps> = {}): DynamodbTable {
  const kmsKey = new KmsKey(scope, 'Key', { aliasName: 'k', accountId: '222222222222', region: 'us-east-1' });
  return new DynamodbTable(scope, 'Table', {
    tableName: 'dev-state',
    partitionKey: { name: 'pk', type: 'S' },
    kmsKey,
    ...patch,
  });
}

describe('DynamodbTable', () => {
  it('is on-demand with PITR, SSE under the given key, TTL and deletion protection', () => {
    const synthesized = Testing.synthScope((scope) => table(scope));
    expect(synthesized).toHaveResourceWithProperties(DynamodbTableResource, {
      name: 'dev-state',
      billing_mode: 'PAY_PER_REQUEST',
      hash_key: 'pk',
      point_in_time_recovery: { enabled: true },
      server_side_encryption: { enabled: true, kms_key_arn: '${aws_kms_key.Key_43586C89.arn}' },
      ttl: { enabled: true, attribute_name: 'expiresAt' },
      deletion_protection_enabled: true,
    });
  });

  it('declares the sort key and a stream when asked', () => {
    const synthesized = Testing.synthScope((scope) =>
      table(scope, {
        sortKey: { name: 'sk', type: 'N' },
        streamViewType: 'NEW_AND_OLD_IMAGES',
        deletionProtection: false,
      }),
    );
    expect(synthesized).toHaveResourceWithProperties(DynamodbTableResource, {
      range_key: 'sk',
      attribute: [
        { name: 'pk', type: 'S' },
        { name: 'sk', type: 'N' },
      ],
      stream_enabled: true,
      stream_view_type: 'NEW_AND_OLD_IMAGES',
      deletion_protection_enabled: false,
    });
  });

  it.each([
    [{ tableName: 'a' }, 'DynamodbTable: invalid tableName: received "a"'],
    [
      { sortKey: { name: 'pk', type: 'S' as const } },
      'DynamodbTable: invalid sortKey.name: received "pk"; expected a name different from the partition key',
    ],
  ])('refuses %j', (patch, message) => {
    expect(() => Testing.synthScope((scope) => table(scope, patch))).toThrow(message);
  });

  describe('global secondary indexes', () => {
    const byShard: GlobalSecondaryIndex = {
      indexName: 'by-shard',
      partitionKey: { name: 'shard', type: 'S' },
      sortKey: { name: 'changedAt', type: 'N' },
      projection: { include: ['digest', 'version'] },
    };
    const withIndexes = (indexes: readonly GlobalSecondaryIndex[], patch: Partial<DynamodbTableProps> = {}) =>
      Testing.synthScope((scope) =>
        table(scope, { sortKey: { name: 'sk', type: 'S' }, globalSecondaryIndexes: indexes, ...patch }),
      );

    it('declares each index with its keys and projection, and every key attribute once', () => {
      const synthesized = withIndexes([
        byShard,
        { indexName: 'by-sk', partitionKey: { name: 'sk', type: 'S' }, projection: 'KEYS_ONLY' },
      ]);
      const resource = only(synthesized, 'aws_dynamodb_table');
      expect(resource.global_secondary_index).toEqual([
        {
          name: 'by-shard',
          hash_key: 'shard',
          range_key: 'changedAt',
          projection_type: 'INCLUDE',
          non_key_attributes: ['digest', 'version'],
        },
        { name: 'by-sk', hash_key: 'sk', projection_type: 'KEYS_ONLY' },
      ]);
      expect(resource.attribute).toEqual([
        { name: 'pk', type: 'S' },
        { name: 'sk', type: 'S' },
        { name: 'shard', type: 'S' },
        { name: 'changedAt', type: 'N' },
      ]);
    });

    it('declares no index block without indexes, and names an index by its ARN', () => {
      let arn = '';
      const synthesized = Testing.synthScope((scope) => {
        const t = table(scope, { globalSecondaryIndexes: [byShard] });
        arn = t.indexArn('by-shard');
      });
      expect(arn).toMatch(/\/index\/by-shard$/);
      expect(
        only(
          Testing.synthScope((scope) => table(scope)),
          'aws_dynamodb_table',
        ),
      ).not.toHaveProperty('global_secondary_index');
      expect(only(synthesized, 'aws_dynamodb_table').global_secondary_index).toHaveLength(1);
      expect(() => Testing.synthScope((scope) => table(scope).indexArn('nope'))).toThrow(
        'DynamodbTable: invalid indexName: received "nope"; expected one of the table\'s indexes (none)',
      );
    });

    it.each([
      [
        'a name DynamoDB refuses',
        [{ ...byShard, indexName: 'x' }],
        'invalid globalSecondaryIndexes[0].indexName: received "x"',
      ],
      ['two indexes of one name', [byShard, byShard], 'expected a name no other index of the table has'],
      [
        'a key typed otherwise than the same key of the table',
        [{ ...byShard, partitionKey: { name: 'sk', type: 'N' as const } }],
        'invalid globalSecondaryIndexes[0].partitionKey.type: received "N"; expected S, the type sk has as a key elsewhere on the table',
      ],
      [
        'a sort key that is the partition key',
        [{ ...byShard, sortKey: { name: 'shard', type: 'S' as const } }],
        'invalid globalSecondaryIndexes[0].sortKey.name: received "shard"; expected a name different from the partition key',
      ],
      [
        'a key name DynamoDB refuses',
        [{ ...byShard, partitionKey: { name: 'sh ard', type: 'S' as const } }],
        'invalid globalSecondaryIndexes[0].partitionKey.name: received "sh ard"',
      ],
      [
        'a key type DynamoDB has not',
        [{ ...byShard, partitionKey: { name: 'shard', type: 'X' as 'S' } }],
        'invalid globalSecondaryIndexes[0].partitionKey.type: received "X"; expected S, N or B',
      ],
      [
        'an empty INCLUDE projection',
        [{ ...byShard, projection: { include: [] } }],
        'invalid globalSecondaryIndexes[0].projection.include: received []',
      ],
      [
        'an attribute projected twice',
        [{ ...byShard, projection: { include: ['digest', 'digest'] } }],
        'expected each attribute once',
      ],
      [
        'a key attribute in INCLUDE',
        [{ ...byShard, projection: { include: ['pk'] } }],
        'received "pk"; expected a non-key attribute (keys are always projected)',
      ],
      [
        'a projection that is none of KEYS_ONLY, ALL, INCLUDE',
        [{ ...byShard, projection: 'SOME' as 'ALL' }],
        'invalid globalSecondaryIndexes[0].projection: received "SOME"',
      ],
      [
        'more than 20 indexes',
        Array.from({ length: 21 }, (_, i) => ({ ...byShard, indexName: `index-${i}` })),
        'invalid globalSecondaryIndexes: received "21 indexes"; expected at most 20',
      ],
      [
        'more than 100 projected attributes',
        Array.from({ length: 3 }, (_, i) => ({
          ...byShard,
          indexName: `index-${i}`,
          projection: { include: Array.from({ length: 40 }, (_, j) => `a${j}`) },
        })),
        'received "120 projected attributes"; expected at most 100',
      ],
    ])('refuses %s', (_why, indexes, message) => {
      expect(() => withIndexes(indexes as GlobalSecondaryIndex[])).toThrow(message);
    });
  });
});
