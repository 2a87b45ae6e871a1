import { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias';
import { KmsKey as KmsKeyResource } from '@cdktf/provider-aws/lib/kms-key';
import type { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import { requireIntInRange, requireMatch } from './lib/validate';

export interface KmsKeyProps {
  /** Alias without the `alias/` prefix, e.g. `estate-dev`. Letters, digits, `/`, `_`, `-`. */
  readonly aliasName: string;
  /** Account that owns the key; its root keeps administrative access. */
  readonly accountId: string;
  /** Region of the key; CloudWatch Logs of this region may use it for log groups of the account. */
  readonly region: string;
  /** Human-readable description. Default: `Estate key <aliasName>`. */
  readonly description?: string;
  /** Waiting period before deletion, in days (7 to 30). Default: 30. */
  readonly deletionWindowDays?: number;
  /**
   * Service principals (e.g. `sns.amazonaws.com`) allowed to use the key for data keys, restricted to
   * calls made on behalf of this account. Default: none beyond CloudWatch Logs.
   */
  readonly serviceUsers?: readonly string[];
  /** Provider of the key's region, when the stack holds several. Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
  /** Refuse, at plan time, any change that destroys the key (`prevent_destroy`). Default: true. */
  readonly preventDestroy?: boolean;
}

/** A customer-managed, rotating KMS key with an alias, usable by this account and its regional services. */
export class KmsKey extends Construct {
  readonly key: KmsKeyResource;
  readonly alias: KmsAlias;
  readonly aliasName: string;
  readonly region: string;
  readonly accountId: string;
  /** Provider of the key's region (undefined: the stack's default): what else lives there uses it too. */
  readonly provider?: TerraformProvider;

  constructor(scope: Construct, id: string, props: KmsKeyProps) {
    super(scope, id);
    requireMatch(
      'KmsKey',
      'aliasName',
      props.aliasName,
      /^(?!aws\/)[a-zA-Z0-9/_-]{1,250}$/,
      'letters, digits, /, _ or - (not starting with aws/)',
    );
    requireMatch('KmsKey', 'accountId', props.accountId, /^\d{12}$/, 'a 12-digit AWS account id');
    const deletionWindowDays = requireIntInRange(
      'KmsKey',
      'deletionWindowDays',
      props.deletionWindowDays ?? 30,
      7,
      30,
    );

    const account = props.accountId;
    const serviceUsers = props.serviceUsers ?? [];
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'AccountAdministers',
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${account}:root` },
          Action: 'kms:*',
          Resource: '*',
        },
        {
          Sid: 'CloudWatchLogsEncrypts',
          Effect: 'Allow',
          Principal: { Service: `logs.${props.region}.amazonaws.com` },
          Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
          Resource: '*',
          Condition: {
            ArnLike: {
              'kms:EncryptionContext:aws:logs:arn': `arn:aws:logs:${props.region}:${account}:log-group:*`,
            },
          },
        },
        ...(serviceUsers.length > 0
          ? [
              {
                Sid: 'AccountServicesUse',
                Effect: 'Allow',
                Principal: { Service: [...serviceUsers] },
                Action: ['kms:Decrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
                Resource: '*',
                Condition: { StringEquals: { 'aws:SourceAccount': account } },
              },
            ]
          : []),
      ],
    };

    this.key = new KmsKeyResource(this, 'Key', {
      description: props.description ?? `Estate key ${props.aliasName}`,
      enableKeyRotation: true,
      deletionWindowInDays: deletionWindowDays,
      policy: JSON.stringify(policy),
      provider: props.provider,
      lifecycle: { preventDestroy: props.preventDestroy ?? true },
    });
    this.alias = new KmsAlias(this, 'Alias', {
      name: `alias/${props.aliasName}`,
      targetKeyId: this.key.keyId,
      provider: props.provider,
    });
    this.aliasName = props.aliasName;
    this.region = props.region;
    this.accountId = props.accountId;
    this.provider = props.provider;
  }

  /** The alias ARN, known before the key exists (for references from other stacks and regions). */
  static aliasArn(region: string, accountId: string, aliasName: string): string {
    return `arn:aws:kms:${region}:${accountId}:alias/${aliasName}`;
  }

  get arn(): string {
    return this.key.arn;
  }
}
