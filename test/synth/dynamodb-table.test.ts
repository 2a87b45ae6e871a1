import { DynamodbTable as DynamodbTableResource } from '@cdktf/provider-aws/lib/dynamodb-table';
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { DynamodbTable, type DynamodbTableProps } from '../../modules/dynamodb-table';
import { KmsKey } from '../../modules/kms-key';

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
});
