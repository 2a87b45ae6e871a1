/**
 * Who is behind an access key, as AWS resolves it for API Gateway's IAM authoriser and for CloudTrail: the
 * emulator's STS GetCallerIdentity for those credentials (once per key), else a local user of the account.
 */
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { CallerIdentity } from './cloudtrail';
import type { IamCaller } from './http-event';

export class Callers {
  private readonly identities = new Map<string, Promise<CallerIdentity>>();

  constructor(
    private readonly endpoint: string,
    private readonly region: string,
    private readonly account: string,
    /** The secret of an access key (the emulator accepts any; STS is asked with it). */
    private readonly secretOf: (accessKeyId: string) => string | undefined,
  ) {}

  identity(accessKeyId: string): Promise<CallerIdentity> {
    let identity = this.identities.get(accessKeyId);
    if (!identity) {
      const fallback: CallerIdentity = {
        arn: `arn:aws:iam::${this.account}:user/local`,
        account: this.account,
        userId: accessKeyId,
        accessKeyId,
      };
      const sts = new STSClient({
        region: this.region,
        endpoint: this.endpoint,
        credentials: { accessKeyId, secretAccessKey: this.secretOf(accessKeyId) ?? 'test' },
      });
      identity = sts.send(new GetCallerIdentityCommand({})).then(
        (answer) => ({
          arn: answer.Arn ?? fallback.arn,
          account: answer.Account ?? fallback.account,
          userId: answer.UserId ?? fallback.userId,
          accessKeyId,
        }),
        () => fallback,
      );
      this.identities.set(accessKeyId, identity);
    }
    return identity;
  }

  /** `requestContext.authorizer.iam` of an IAM-authorised route. */
  async iamCaller(accessKeyId: string): Promise<IamCaller> {
    const identity = await this.identity(accessKeyId);
    return {
      accessKey: accessKeyId,
      accountId: identity.account,
      callerId: identity.userId,
      cognitoIdentity: null,
      principalOrgId: null,
      userArn: identity.arn,
      userId: identity.userId,
    };
  }
}
