import { IamOpenidConnectProvider } from '@cdktf/provider-aws/lib/iam-openid-connect-provider';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { IamRolePolicyAttachment } from '@cdktf/provider-aws/lib/iam-role-policy-attachment';
import { Construct } from 'constructs';
import { policyDocument } from './lib/policy';
import { fail, requireMatch } from './lib/validate';

/** GitHub's OIDC issuer, and the audience aws-actions/configure-aws-credentials asks for. */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';

export interface GithubDeployRolesProps {
  /** The account the roles live in. */
  readonly accountId: string;
  /** `owner/name` of the repository whose workflows deploy. */
  readonly repository: string;
  /**
   * The owner's and the repository's numeric ids. Given, the trust also admits GitHub's immutable subject
   * (`repo:owner@<id>/name@<id>:…`: the default for repositories created, renamed or transferred since mid
   * 2026, and one a re-registered owner or repository name cannot match); the name form `repo:owner/name:…`
   * stays admitted for repositories that still send it. Default: the name form only.
   */
  readonly ids?: { readonly owner: string; readonly repository: string };
  /** The GitHub environment whose jobs alone may assume the deploy role (its gate is the approval). */
  readonly githubEnvironment: string;
  /** Name of the read-only role pull requests plan with. */
  readonly planRoleName: string;
  /** Name of the role that applies. */
  readonly deployRoleName: string;
  /** Longest session of the deploy role, in seconds (a rollout must fit in it). Default: 14400 (4 h). */
  readonly deploySessionSec?: number;
}

/**
 * What lets GitHub Actions deploy into an account without long-lived keys: GitHub's OIDC provider, a
 * read-only plan role only pull-request jobs of the repository may assume, and a deploy role only jobs of
 * the repository's GitHub environment of the same name may assume (so its required reviewers gate every
 * apply). A plan therefore never holds a role that can apply. Subjects are matched in both of GitHub's
 * forms, `repo:owner/name:…` and the immutable `repo:owner@id/name@id:…`.
 */
export class GithubDeployRoles extends Construct {
  readonly provider: IamOpenidConnectProvider;
  readonly planRole: IamRole;
  readonly deployRole: IamRole;

  constructor(scope: Construct, id: string, props: GithubDeployRolesProps) {
    super(scope, id);
    const [owner, name] = requireMatch(
      'GithubDeployRoles',
      'repository',
      props.repository,
      /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/,
      'owner/name',
    ).split('/');
    requireMatch(
      'GithubDeployRoles',
      'githubEnvironment',
      props.githubEnvironment,
      /^[A-Za-z0-9_.-]{1,255}$/,
      'a GitHub environment name',
    );
    if (props.planRoleName === props.deployRoleName)
      fail('GithubDeployRoles', 'planRoleName', props.planRoleName, 'a role other than the deploy role');
    const ids = props.ids;
    if (ids && !(/^\d{1,20}$/.test(ids.owner) && /^\d{1,20}$/.test(ids.repository)))
      fail('GithubDeployRoles', 'ids', ids, "the owner's and the repository's numeric ids");
    const subjectRepositories = [
      ...(ids ? [`${owner}@${ids.owner}/${name}@${ids.repository}`] : []),
      `${owner}/${name}`,
    ];
    const session = props.deploySessionSec ?? 14400;
    if (!Number.isInteger(session) || session < 3600 || session > 43200)
      fail('GithubDeployRoles', 'deploySessionSec', session, 'whole seconds from 3600 to 43200');

    this.provider = new IamOpenidConnectProvider(this, 'GithubOidc', {
      url: `https://${GITHUB_OIDC_HOST}`,
      clientIdList: [GITHUB_OIDC_AUDIENCE],
    });
    const trust = (context: string) =>
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Federated: this.provider.arn },
            Action: 'sts:AssumeRoleWithWebIdentity',
            Condition: {
              StringEquals: {
                [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
                [`${GITHUB_OIDC_HOST}:sub`]: subjectRepositories.map((repo) => `repo:${repo}:${context}`),
              },
            },
          },
        ],
      });

    this.planRole = new IamRole(this, 'PlanRole', {
      name: props.planRoleName,
      description: `Plans of ${props.repository} pull requests: reads configuration, never applies`,
      assumeRolePolicy: trust('pull_request'),
      maxSessionDuration: 3600,
    });
    new IamRolePolicyAttachment(this, 'PlanReadsConfiguration', {
      role: this.planRole.name,
      policyArn: 'arn:aws:iam::aws:policy/ReadOnlyAccess',
    });
    // ReadOnlyAccess also reads data; a plan needs only configuration, and pull requests run code.
    new IamRolePolicy(this, 'PlanNeverReadsData', {
      name: 'never-read-data',
      role: this.planRole.id,
      policy: policyDocument([
        {
          sid: 'NoDataReads',
          effect: 'Deny',
          actions: [
            's3:GetObject',
            's3:GetObjectVersion',
            'dynamodb:GetItem',
            'dynamodb:BatchGetItem',
            'dynamodb:Query',
            'dynamodb:Scan',
            'dynamodb:PartiQLSelect',
            'dynamodb:GetRecords',
            'dynamodb:GetShardIterator',
            'kinesis:GetRecords',
            'logs:GetLogEvents',
            'logs:FilterLogEvents',
            'logs:StartQuery',
            'logs:GetQueryResults',
            'secretsmanager:GetSecretValue',
            'sqs:ReceiveMessage',
            'ssm:GetParameter',
            'ssm:GetParameters',
            'ssm:GetParametersByPath',
            'ssm:GetParameterHistory',
          ],
          resources: ['*'],
        },
      ]),
    });

    this.deployRole = new IamRole(this, 'DeployRole', {
      name: props.deployRoleName,
      description: `Applies of ${props.repository}, only from its ${props.githubEnvironment} environment`,
      assumeRolePolicy: trust(`environment:${props.githubEnvironment}`),
      maxSessionDuration: session,
    });
    // The estate creates IAM roles and policies, so any narrower policy would still be admin-equivalent.
    new IamRolePolicyAttachment(this, 'DeployAdministers', {
      role: this.deployRole.name,
      policyArn: 'arn:aws:iam::aws:policy/AdministratorAccess',
    });
  }
}
