import { EcrRegistryPolicy } from '@cdktf/provider-aws/lib/ecr-registry-policy';
import { Construct } from 'constructs';
import { requireMatch } from './lib/validate';

export interface RegistryReplicationPolicyProps {
  /** Account whose registry replicates into this one. */
  readonly sourceAccountId: string;
  /** This registry's account and region. */
  readonly accountId: string;
  readonly region: string;
}

/** The registry policy a destination account needs to receive images replicated from the source account. */
export class RegistryReplicationPolicy extends Construct {
  constructor(scope: Construct, id: string, props: RegistryReplicationPolicyProps) {
    super(scope, id);
    requireMatch(
      'RegistryReplicationPolicy',
      'sourceAccountId',
      props.sourceAccountId,
      /^\d{12}$/,
      'a 12-digit AWS account id',
    );
    new EcrRegistryPolicy(this, 'Policy', {
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'ReplicationFromSharedAccount',
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${props.sourceAccountId}:root` },
            Action: ['ecr:CreateRepository', 'ecr:ReplicateImage'],
            Resource: `arn:aws:ecr:${props.region}:${props.accountId}:repository/*`,
          },
        ],
      }),
    });
  }
}
