import { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias';
import { KmsKey as KmsKeyResource } from '@cdktf/provider-aws/lib/kms-key';
import { Testing } from 'cdktf';
import { KmsKey, type KmsKeyProps } from '../../modules/kms-key';
import { only, policyOf } from '../support/synthesized';

const props: KmsKeyProps = { aliasName: 'estate-dev', accountId: '222222222222', region: 'eu-central-1' };

describe('KmsKey', () => {
  it('creates a rotating key with its alias', () => {
    const synthesized = Testing.synthScope((scope) => new KmsKey(scope, 'Key', props));
    expect(synthesized).toHaveResourceWithProperties(KmsKeyResource, {
      enable_key_rotation: true,
      deletion_window_in_days: 30,
    });
    expect(synthesized).toHaveResourceWithProperties(KmsAlias, { name: 'alias/estate-dev' });
  });

  it("lets only this region's CloudWatch Logs of this account encrypt with it", () => {
    const synthesized = Testing.synthScope((scope) => new KmsKey(scope, 'Key', props));
    const statements = policyOf(only(synthesized, 'aws_kms_key')).Statement;
    const logs = statements.find((s) => s.Sid === 'CloudWatchLogsEncrypts');
    expect(logs).toMatchObject({
      Principal: { Service: 'logs.eu-central-1.amazonaws.com' },
      Condition: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': 'arn:aws:logs:eu-central-1:222222222222:log-group:*',
        },
      },
    });
    expect(statements.find((s) => s.Sid === 'AccountServicesUse')).toBeUndefined();
  });

  it('grants named services use of the key on behalf of this account only', () => {
    const synthesized = Testing.synthScope(
      (scope) => new KmsKey(scope, 'Key', { ...props, serviceUsers: ['sns.amazonaws.com'] }),
    );
    const use = policyOf(only(synthesized, 'aws_kms_key')).Statement.find(
      (s) => s.Sid === 'AccountServicesUse',
    );
    expect(use).toMatchObject({
      Principal: { Service: ['sns.amazonaws.com'] },
      Condition: { StringEquals: { 'aws:SourceAccount': '222222222222' } },
    });
  });

  it.each([
    [{ aliasName: 'aws/reserved' }, 'KmsKey: invalid aliasName: received "aws/reserved"'],
    [{ accountId: '12' }, 'KmsKey: invalid accountId: received "12"; expected a 12-digit AWS account id'],
    [
      { deletionWindowDays: 3 },
      'KmsKey: invalid deletionWindowDays: received 3; expected an integer between 7 and 30',
    ],
  ])('refuses %j', (patch, message) => {
    expect(() => Testing.synthScope((scope) => new KmsKey(scope, 'Key', { ...props, ...patch }))).toThrow(
      message,
    );
  });
});
