import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { GithubDeployRoles } from '../modules/github-deploy-roles';
import { bootstrapStackName } from './names';

export interface BootstrapStackProps {
  readonly environment: EnvironmentConfig;
}

const roleName = (arn: string) =>
  arn
    .slice(arn.indexOf(':role/') + ':role/'.length)
    .split('/')
    .pop() ?? '';

/**
 * `bootstrap-<env>`: what an account needs before any rollout, applied once by hand with the account's
 * admin credentials (README, "Deploying to AWS"): GitHub's OIDC provider, the plan role pull requests
 * plan with and the deploy role only the environment's GitHub environment applies with.
 */
export class BootstrapStack extends TerraformStack {
  readonly roles: GithubDeployRoles;

  constructor(scope: Construct, props: BootstrapStackProps) {
    const env = props.environment;
    const name = bootstrapStackName(env);
    super(scope, name);
    const [primary] = env.regions;
    if (!primary) throw new Error(`environment ${env.name} has no regions`);
    if (!env.github || !env.planRoleArn || !env.deployRoleArn) {
      throw new Error(
        `environment ${env.name}: bootstrap needs github.repository, planRoleArn and deployRoleArn`,
      );
    }
    configureBackend(this, env, name);
    regionProvider(this, 'aws', { environment: env, region: primary, stackName: name });
    this.roles = new GithubDeployRoles(this, 'Github', {
      accountId: env.accountId,
      repository: env.github.repository,
      ids: env.github.ids,
      githubEnvironment: env.name,
      planRoleName: roleName(env.planRoleArn),
      deployRoleName: roleName(env.deployRoleArn),
    });
    new TerraformOutput(this, 'plan_role_arn', { value: this.roles.planRole.arn });
    new TerraformOutput(this, 'deploy_role_arn', { value: this.roles.deployRole.arn });
  }
}
