import { EcrRegistryPolicy } from '@cdktf/provider-aws/lib/ecr-registry-policy';
import { EcrRegistryScanningConfiguration } from '@cdktf/provider-aws/lib/ecr-registry-scanning-configuration';
import { EcrRepositoryCreationTemplate } from '@cdktf/provider-aws/lib/ecr-repository-creation-template';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { Construct } from 'constructs';
import { imageLifecyclePolicy } from './container-registry';
import type { KmsKey } from './kms-key';
import { policyDocument, serviceTrustPolicy } from './lib/policy';
import { requireMatch } from './lib/validate';

export interface ReplicaRegistryProps {
  /** Account whose registry replicates into this one (the shared account). */
  readonly sourceAccountId: string;
  /** This registry's region; its account is the key's. */
  readonly region: string;
  /** Key the repositories that replication creates here are encrypted with. */
  readonly kmsKey: KmsKey;
}

/**
 * A registry that receives images replicated from the source account: the registry policy that lets the
 * source replicate, and a creation template so the repositories replication creates get the estate's
 * settings (immutable tags, the region's key, the image lifecycle) instead of ECR's defaults, plus
 * scan-on-push for every repository (a registry setting: templates cannot carry it). Templates need a role of
 * their own to create repositories under a customer-managed key.
 */
export class ReplicaRegistry extends Construct {
  readonly template: EcrRepositoryCreationTemplate;

  constructor(scope: Construct, id: string, props: ReplicaRegistryProps) {
    super(scope, id);
    requireMatch(
      'ReplicaRegistry',
      'sourceAccountId',
      props.sourceAccountId,
      /^\d{12}$/,
      'a 12-digit AWS account id',
    );
    const account = props.kmsKey.accountId;
    new EcrRegistryPolicy(this, 'Policy', {
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'ReplicationFromSharedAccount',
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${props.sourceAccountId}:root` },
            Action: ['ecr:CreateRepository', 'ecr:ReplicateImage'],
            Resource: `arn:aws:ecr:${props.region}:${account}:repository/*`,
          },
        ],
      }),
    });

    const role = new IamRole(this, 'TemplateRole', {
      name: `ecr-replica-repositories-${props.region}`,
      // The trust AWS documents for creation-template roles: ECR sends no source account it documents (in
      // cross-account replication it may be the source registry's), and a condition that does not match
      // would silently stop every replicated repository from being created.
      assumeRolePolicy: serviceTrustPolicy('ecr.amazonaws.com', 'documented-without-conditions'),
    });
    const rolePolicy = new IamRolePolicy(this, 'TemplatePolicy', {
      name: 'create-replica-repositories',
      role: role.id,
      policy: policyDocument([
        {
          sid: 'CreateRepositories',
          actions: ['ecr:CreateRepository', 'ecr:ReplicateImage', 'ecr:TagResource'],
          resources: [`arn:aws:ecr:${props.region}:${account}:repository/*`],
        },
        {
          sid: 'EncryptWithRegionKey',
          actions: ['kms:CreateGrant', 'kms:RetireGrant', 'kms:DescribeKey'],
          resources: [props.kmsKey.arn],
        },
      ]),
    });
    this.template = new EcrRepositoryCreationTemplate(this, 'Template', {
      prefix: 'ROOT',
      appliedFor: ['REPLICATION'],
      description: `Repositories replicated from ${props.sourceAccountId}`,
      imageTagMutability: 'IMMUTABLE',
      encryptionConfiguration: [{ encryptionType: 'KMS', kmsKey: props.kmsKey.arn }],
      lifecyclePolicy: imageLifecyclePolicy(100, 14),
      customRoleArn: role.arn,
      dependsOn: [rolePolicy],
    });
    new EcrRegistryScanningConfiguration(this, 'Scanning', {
      scanType: 'BASIC',
      rule: [{ scanFrequency: 'SCAN_ON_PUSH', repositoryFilter: [{ filter: '*', filterType: 'WILDCARD' }] }],
    });
  }
}
