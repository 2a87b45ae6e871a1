import type { EnvironmentConfig } from '../../environments';

/** One job of the pull-request plan matrix: a stack, and what its job needs to plan it read-only. */
export interface PlanTarget {
  readonly stack: string;
  readonly environment: string;
  readonly accountId: string;
  /** The environment's primary region, where the job obtains its AWS credentials. */
  readonly region: string;
  /** The environment's read-only role the job assumes by GitHub OIDC. */
  readonly planRoleArn: string;
  /** The variable Terraform reads the Terraform Cloud token from, e.g. `TF_TOKEN_app_terraform_io`. */
  readonly tokenVariable: string;
}

/** What an apply job of one GitHub environment (named after the estate environment) needs. */
export interface DeployTarget {
  readonly environment: string;
  readonly accountId: string;
  /** The environment's primary region, where the job obtains its AWS credentials. */
  readonly region: string;
  /** The role only jobs of the environment's GitHub environment may assume (GitHub OIDC). */
  readonly deployRoleArn: string;
  /** The variable Terraform reads the Terraform Cloud token from, e.g. `TF_TOKEN_app_terraform_io`. */
  readonly tokenVariable: string;
}

/** A synthesized stack as the matrix needs it. */
export interface MatrixStack {
  readonly name: string;
  /** The Terraform Cloud host of the stack's synthesized `cloud` block, when it has one. */
  readonly backendHostname?: string;
}

/**
 * The environment variable Terraform takes a token for `hostname` from: `TF_TOKEN_` and the host name with
 * each `.` as `_` and each `-` as `__` (Terraform's encoding; a variable name cannot hold either).
 */
export function terraformTokenVariable(hostname: string): string {
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(hostname)) {
    throw new Error(`expected a host name such as app.terraform.io; received ${JSON.stringify(hostname)}`);
  }
  return `TF_TOKEN_${hostname.replace(/-/g, '__').replace(/\./g, '_')}`;
}

/** The environments that are deployed to AWS: every one but `local`, which lives on the emulator. */
export function deployedEnvironments(environments: readonly EnvironmentConfig[]): EnvironmentConfig[] {
  return environments.filter((environment) => environment.name !== 'local');
}

function terraformCloudHost(environment: EnvironmentConfig): string {
  if (environment.backend.type !== 'terraform-cloud') {
    throw new Error(
      `${environment.name}: a deployed environment keeps its state in Terraform Cloud; its backend is ${environment.backend.type}`,
    );
  }
  return environment.backend.hostname;
}

function primaryRegion(environment: EnvironmentConfig): string {
  const [region] = environment.regions;
  if (!region) throw new Error(`${environment.name}: no region`);
  return region;
}

function required(environment: EnvironmentConfig, field: 'deployRoleArn' | 'planRoleArn'): string {
  const value = environment[field];
  if (!value) throw new Error(`${environment.name}: no ${field}; a deployed environment needs one`);
  return value;
}

/**
 * The plan matrix (`strategy.matrix` of the pull-request workflow): one entry per synthesized stack of each
 * deployed environment, in the order given. Refuses a stack name that two environments synthesize and a
 * stack whose synthesized backend talks to another host than its environment's (its token would not work).
 */
export function planMatrix(
  synthesized: ReadonlyArray<{
    readonly environment: EnvironmentConfig;
    readonly stacks: readonly MatrixStack[];
  }>,
): { include: PlanTarget[] } {
  const owner = new Map<string, string>();
  const include = synthesized.flatMap(({ environment, stacks }) => {
    const hostname = terraformCloudHost(environment);
    return stacks.map((stack): PlanTarget => {
      const earlier = owner.get(stack.name);
      if (earlier !== undefined) {
        throw new Error(`stack ${stack.name} is synthesized by both ${earlier} and ${environment.name}`);
      }
      owner.set(stack.name, environment.name);
      if (stack.backendHostname !== undefined && stack.backendHostname !== hostname) {
        throw new Error(
          `stack ${stack.name}: its state is on ${stack.backendHostname}, but ${environment.name}'s backend is ${hostname}`,
        );
      }
      return {
        stack: stack.name,
        environment: environment.name,
        accountId: environment.accountId,
        region: primaryRegion(environment),
        planRoleArn: required(environment, 'planRoleArn'),
        tokenVariable: terraformTokenVariable(hostname),
      };
    });
  });
  return { include };
}

/** What the apply job of `environment` assumes and where it takes its Terraform Cloud token. */
export function deployTarget(environment: EnvironmentConfig): DeployTarget {
  return {
    environment: environment.name,
    accountId: environment.accountId,
    region: primaryRegion(environment),
    deployRoleArn: required(environment, 'deployRoleArn'),
    tokenVariable: terraformTokenVariable(terraformCloudHost(environment)),
  };
}
