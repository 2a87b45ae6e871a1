import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { S3BucketReplicationConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-replication-configuration';
import { Construct } from 'constructs';
import { KmsKey } from './kms-key';
import { policyDocument, serviceTrustPolicy } from './lib/policy';
import { fail } from './lib/validate';
import type { SecureBucket } from './secure-bucket';

/** A replica bucket in another region, named ahead of its stack's deployment. */
export interface ReplicaBucket {
  readonly region: string;
  readonly bucketName: string;
  /** Alias (without `alias/`) of the key encrypting it, in its region. */
  readonly keyAlias: string;
}

export interface BucketReplicationProps {
  readonly source: SecureBucket;
  readonly accountId: string;
  /** Source region (names the role; IAM is global). */
  readonly region: string;
  readonly replicas: readonly ReplicaBucket[];
}

/**
 * Cross-region replication of a versioned, SSE-KMS bucket to replicas in other regions: one rule per
 * replica, KMS-encrypted objects re-encrypted with the replica's key, replication time control (15 min)
 * with metrics, delete markers replicated, and a role allowed exactly those buckets and keys.
 */
export class BucketReplication extends Construct {
  readonly role: IamRole;

  constructor(scope: Construct, id: string, props: BucketReplicationProps) {
    super(scope, id);
    if (props.replicas.length === 0) fail('BucketReplication', 'replicas', [], 'at least one replica bucket');
    const replicaArn = (r: ReplicaBucket) => `arn:aws:s3:::${r.bucketName}`;

    this.role = new IamRole(this, 'Role', {
      name: `${props.source.node.id.toLowerCase()}-replication-${props.region}`.slice(0, 64),
      assumeRolePolicy: serviceTrustPolicy('s3.amazonaws.com', {
        sourceAccount: props.accountId,
        sourceArn: props.source.arn,
      }),
    });
    const policy = new IamRolePolicy(this, 'Policy', {
      name: 'replicate',
      role: this.role.id,
      policy: policyDocument([
        {
          sid: 'ReadSourceConfig',
          actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
          resources: [props.source.arn],
        },
        {
          sid: 'ReadSourceVersions',
          actions: [
            's3:GetObjectVersionForReplication',
            's3:GetObjectVersionAcl',
            's3:GetObjectVersionTagging',
          ],
          resources: [`${props.source.arn}/*`],
        },
        {
          sid: 'WriteReplicas',
          actions: ['s3:ReplicateObject', 's3:ReplicateDelete', 's3:ReplicateTags'],
          resources: props.replicas.map((r) => `${replicaArn(r)}/*`),
        },
        { sid: 'DecryptSource', actions: ['kms:Decrypt'], resources: [props.source.kmsKey.arn] },
        {
          sid: 'EncryptReplicas',
          actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
          resources: props.replicas.map((r) => `arn:aws:kms:${r.region}:${props.accountId}:key/*`),
          conditions: {
            'ForAnyValue:StringEquals': {
              'kms:ResourceAliases': props.replicas.map((r) => `alias/${r.keyAlias}`),
            },
          },
        },
      ]),
    });

    new S3BucketReplicationConfigurationA(this, 'Configuration', {
      bucket: props.source.bucket.id,
      role: this.role.arn,
      rule: props.replicas.map((replica, index) => ({
        id: `to-${replica.region}`,
        priority: index,
        status: 'Enabled',
        filter: { prefix: '' },
        deleteMarkerReplication: { status: 'Enabled' },
        sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: 'Enabled' } },
        destination: {
          bucket: replicaArn(replica),
          storageClass: 'STANDARD',
          encryptionConfiguration: {
            replicaKmsKeyId: KmsKey.aliasArn(replica.region, props.accountId, replica.keyAlias),
          },
          replicationTime: { status: 'Enabled', time: { minutes: 15 } },
          metrics: { status: 'Enabled', eventThreshold: { minutes: 15 } },
        },
      })),
      dependsOn: [props.source.versioning, policy],
    });
  }
}
