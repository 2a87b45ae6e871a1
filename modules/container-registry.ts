import { EcrLifecyclePolicy } from '@cdktf/provider-aws/lib/ecr-lifecycle-policy';
import { EcrReplicationConfiguration } from '@cdktf/provider-aws/lib/ecr-replication-configuration';
import { EcrRepository } from '@cdktf/provider-aws/lib/ecr-repository';
import { EcrRepositoryPolicy } from '@cdktf/provider-aws/lib/ecr-repository-policy';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { fail, requireIntInRange } from './lib/validate';

/** Where the registry replicates images to. */
export interface ReplicationDestination {
  readonly region: string;
  readonly accountId: string;
}

export interface ContainerRegistryProps {
  /** Repository names. */
  readonly repositories: readonly string[];
  /** Key for image encryption. */
  readonly kmsKey: KmsKey;
  /** Accounts allowed to pull. Default: none. */
  readonly pullAccountIds?: readonly string[];
  /**
   * Replicate every repository to these registries (other regions of this account, other accounts); set it
   * in one region only, the build region. Default: no replication configuration.
   */
  readonly replicateTo?: readonly ReplicationDestination[];
  /** Tagged images kept per repository. Default: 100. */
  readonly keepTaggedImages?: number;
  /** Days before an untagged image expires. Default: 14. */
  readonly untaggedExpiryDays?: number;
}

/** The lifecycle every image repository of the estate has: untagged images expire, the last `keep` stay. */
export function imageLifecyclePolicy(keep: number, untaggedDays: number): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `expire untagged images after ${untaggedDays} days`,
        selection: {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: untaggedDays,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 2,
        description: `keep the last ${keep} images`,
        selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: keep },
        action: { type: 'expire' },
      },
    ],
  });
}

/**
 * ECR repositories with immutable tags, scan on push, KMS encryption and a lifecycle policy, pullable by
 * the named accounts, and (in the build region) the registry's replication configuration.
 */
export class ContainerRegistry extends Construct {
  readonly repositories: readonly EcrRepository[];

  constructor(scope: Construct, id: string, props: ContainerRegistryProps) {
    super(scope, id);
    if (props.repositories.length === 0)
      fail('ContainerRegistry', 'repositories', [], 'at least one repository name');
    const keep = requireIntInRange(
      'ContainerRegistry',
      'keepTaggedImages',
      props.keepTaggedImages ?? 100,
      1,
      10000,
    );
    const untaggedDays = requireIntInRange(
      'ContainerRegistry',
      'untaggedExpiryDays',
      props.untaggedExpiryDays ?? 14,
      1,
      3650,
    );
    const destinations = props.replicateTo ?? [];
    if (destinations.length > 25)
      fail('ContainerRegistry', 'replicateTo', destinations.length, 'at most 25 destinations (an ECR limit)');
    const pullers = props.pullAccountIds ?? [];

    this.repositories = props.repositories.map((name, index) => {
      const repository = new EcrRepository(this, `Repository${index}`, {
        name,
        imageTagMutability: 'IMMUTABLE',
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: [{ encryptionType: 'KMS', kmsKey: props.kmsKey.arn }],
      });
      new EcrLifecyclePolicy(this, `Lifecycle${index}`, {
        repository: repository.name,
        policy: imageLifecyclePolicy(keep, untaggedDays),
      });
      if (pullers.length > 0) {
        new EcrRepositoryPolicy(this, `Pull${index}`, {
          repository: repository.name,
          policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'ConsumerAccountsPull',
                Effect: 'Allow',
                Principal: { AWS: pullers.map((account) => `arn:aws:iam::${account}:root`) },
                Action: [
                  'ecr:BatchGetImage',
                  'ecr:GetDownloadUrlForLayer',
                  'ecr:BatchCheckLayerAvailability',
                ],
              },
            ],
          }),
        });
      }
      return repository;
    });

    if (destinations.length > 0) {
      new EcrReplicationConfiguration(this, 'Replication', {
        replicationConfiguration: {
          rule: [{ destination: destinations.map((d) => ({ region: d.region, registryId: d.accountId })) }],
        },
      });
    }
  }
}
