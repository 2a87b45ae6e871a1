import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketLifecycleConfiguration } from '@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration';
import { S3BucketOwnershipControls } from '@cdktf/provider-aws/lib/s3-bucket-ownership-controls';
import { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketServerSideEncryptionConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { movedFrom } from './lib/moved';
import { requireIntInRange, requireMatch } from './lib/validate';

export interface SecureBucketProps {
  /** Globally unique bucket name (3-63 lower-case letters, digits, `-`, `.`). */
  readonly bucketName: string;
  /** Customer-managed key for SSE-KMS (with an S3 bucket key). */
  readonly kmsKey: KmsKey;
  /** Days after which current objects expire; 0 keeps them. Default: 0. */
  readonly expireAfterDays?: number;
  /** Days after which noncurrent versions are deleted. Default: 30. */
  readonly noncurrentVersionDays?: number;
  /** Let `terraform destroy` empty the bucket. Default: false. */
  readonly forceDestroy?: boolean;
  /**
   * Deny every request not made over TLS (bucket policy). Off only on the emulator, which serves plain HTTP
   * and enforces the policy. Default: true.
   */
  readonly tlsOnly?: boolean;
  /** Construct ids (below the stack) this bucket had before a refactoring moved it: kept, not recreated. */
  readonly movedFrom?: readonly string[];
}

/**
 * An S3 bucket that is private (all four public-access blocks, bucket-owner-enforced), SSE-KMS encrypted,
 * versioned, reachable over TLS only, and that cleans up after itself (lifecycle rules).
 */
export class SecureBucket extends Construct {
  readonly bucket: S3Bucket;
  readonly versioning: S3BucketVersioningA;
  readonly kmsKey: KmsKey;

  constructor(scope: Construct, id: string, props: SecureBucketProps) {
    super(scope, id);
    requireMatch(
      'SecureBucket',
      'bucketName',
      props.bucketName,
      /^(?!xn--)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      '3-63 lower-case letters, digits, - or ., starting and ending with a letter or digit',
    );
    const expireAfterDays = requireIntInRange(
      'SecureBucket',
      'expireAfterDays',
      props.expireAfterDays ?? 0,
      0,
      36500,
    );
    const noncurrentDays = requireIntInRange(
      'SecureBucket',
      'noncurrentVersionDays',
      props.noncurrentVersionDays ?? 30,
      1,
      36500,
    );
    this.kmsKey = props.kmsKey;

    this.bucket = new S3Bucket(this, 'Bucket', {
      bucket: props.bucketName,
      forceDestroy: props.forceDestroy ?? false,
    });
    const bucket = this.bucket.id;
    new S3BucketPublicAccessBlock(this, 'PublicAccessBlock', {
      bucket,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketOwnershipControls(this, 'Ownership', {
      bucket,
      rule: { objectOwnership: 'BucketOwnerEnforced' },
    });
    new S3BucketServerSideEncryptionConfigurationA(this, 'Encryption', {
      bucket,
      rule: [
        {
          applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: props.kmsKey.arn },
          bucketKeyEnabled: true,
        },
      ],
    });
    this.versioning = new S3BucketVersioningA(this, 'Versioning', {
      bucket,
      versioningConfiguration: { status: 'Enabled' },
    });
    if (props.tlsOnly ?? true) {
      new S3BucketPolicy(this, 'TlsOnly', {
        bucket,
        policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'DenyInsecureTransport',
              Effect: 'Deny',
              Principal: '*',
              Action: 's3:*',
              Resource: [this.bucket.arn, `${this.bucket.arn}/*`],
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            },
          ],
        }),
      });
    }
    new S3BucketLifecycleConfiguration(this, 'Lifecycle', {
      bucket,
      rule: [
        {
          id: 'tidy',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: 7 }],
          noncurrentVersionExpiration: [{ noncurrentDays }],
          ...(expireAfterDays > 0 ? { expiration: [{ days: expireAfterDays }] } : {}),
        },
      ],
      dependsOn: [this.versioning],
    });
    if (props.movedFrom) movedFrom(this, props.movedFrom);
  }

  get arn(): string {
    return this.bucket.arn;
  }

  get name(): string {
    return this.bucket.bucket;
  }
}
