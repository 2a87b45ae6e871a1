import { Project } from '@cdktf/provider-tfe/lib/project';
import { TfeProvider } from '@cdktf/provider-tfe/lib/provider';
import { Team } from '@cdktf/provider-tfe/lib/team';
import { TeamAccess } from '@cdktf/provider-tfe/lib/team-access';
import { TeamProjectAccess } from '@cdktf/provider-tfe/lib/team-project-access';
import { Workspace } from '@cdktf/provider-tfe/lib/workspace';
import { WorkspaceSettings } from '@cdktf/provider-tfe/lib/workspace-settings';
import { CloudBackend, NamedCloudWorkspace, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../environments';
import { WORKSPACE_PREFIX } from '../modules/backend';
import { globalStackName, TERRAFORM_CLOUD_STACK } from './names';

/** One workspace the estate keeps state in, and who may read its state besides its own project. */
export interface EstateWorkspace {
  /** The stack whose state it holds, e.g. `dev-global`. */
  readonly stack: string;
  /** The environment owning it: its project, and the team that may write it. */
  readonly environment: EnvironmentConfig;
  /**
   * Environments whose stacks read this one's state: prod-global reads dev-global's name servers, and dev's
   * and prod's rollouts check that the shared stacks they deploy after were applied.
   */
  readonly readBy?: readonly EnvironmentConfig[];
}

export interface TerraformCloudStackProps {
  /** The environments deployed through Terraform Cloud (every one but `local`). */
  readonly environments: readonly EnvironmentConfig[];
  /** Every workspace: the estate's stacks and each account's bootstrap. */
  readonly workspaces: readonly EstateWorkspace[];
  /** Project of this stack's own workspace. Default: `estate-admin`. */
  readonly adminProject?: string;
}

/** Team whose token pull requests plan with: reads every estate project's state, writes none. */
export const PLAN_TEAM = 'estate-plan';
/** Team whose token applies one environment (stored in that GitHub environment). */
export const deployTeamName = (env: EnvironmentConfig): string => `estate-deploy-${env.name}`;

/**
 * `terraform-cloud`: the organisation's side of the estate as code. A project per environment, a workspace
 * per stack in LOCAL execution mode (runs happen on GitHub's runners with GitHub OIDC credentials; Terraform
 * Cloud keeps state and locks), remote-state sharing only where a stack reads another's outputs, a
 * planning team that can read state but never write it, and a deploying team per environment that can
 * write only that environment's project. Team tokens are made by hand (README): a token resource would
 * keep the secret in this stack's state. Applied by hand with an organisation owner's token.
 */
export class TerraformCloudStack extends TerraformStack {
  readonly workspaces: ReadonlyMap<string, Workspace>;

  constructor(scope: Construct, props: TerraformCloudStackProps) {
    super(scope, TERRAFORM_CLOUD_STACK);
    const backends = new Set(
      props.environments.map((env) =>
        env.backend.type === 'terraform-cloud'
          ? `${env.backend.hostname}/${env.backend.organization}`
          : 'local',
      ),
    );
    const [first] = props.environments;
    if (!first || first.backend.type !== 'terraform-cloud' || backends.size !== 1) {
      throw new Error(
        `TerraformCloudStack: expected environments in one Terraform Cloud organisation; received ${[...backends].join(', ') || 'none'}`,
      );
    }
    const { hostname, organization } = first.backend;
    new CloudBackend(this, {
      hostname,
      organization,
      workspaces: new NamedCloudWorkspace(
        `${WORKSPACE_PREFIX}${TERRAFORM_CLOUD_STACK}`,
        props.adminProject ?? 'estate-admin',
      ),
    });
    new TfeProvider(this, 'tfe', { hostname, organization });

    const planTeam = new Team(this, 'PlanTeam', { name: PLAN_TEAM, visibility: 'organization' });
    const projects = new Map<string, Project>();
    const deployTeams = new Map<string, Team>();
    for (const env of props.environments) {
      if (env.backend.type !== 'terraform-cloud') continue;
      const project = new Project(this, `Project-${env.name}`, { name: env.backend.project });
      projects.set(env.name, project);
      const team = new Team(this, `DeployTeam-${env.name}`, {
        name: deployTeamName(env),
        visibility: 'organization',
      });
      deployTeams.set(env.name, team);
      new TeamProjectAccess(this, `Deploys-${env.name}`, {
        teamId: team.id,
        projectId: project.id,
        access: 'write',
      });
      // `read` includes reading state; plans from pull requests run with -lock=false.
      new TeamProjectAccess(this, `Plans-${env.name}`, {
        teamId: planTeam.id,
        projectId: project.id,
        access: 'read',
      });
    }

    const workspaces = new Map<string, Workspace>();
    for (const { stack, environment } of props.workspaces) {
      const project = projects.get(environment.name);
      if (!project)
        throw new Error(
          `TerraformCloudStack: workspace ${stack} names unknown environment ${environment.name}`,
        );
      workspaces.set(
        stack,
        new Workspace(this, `Workspace-${stack}`, {
          name: `${WORKSPACE_PREFIX}${stack}`,
          projectId: project.id,
          description: `State of the ${stack} stack`,
          lifecycle: { preventDestroy: true },
        }),
      );
    }
    for (const { stack, environment, readBy = [] } of props.workspaces) {
      const workspace = workspaces.get(stack);
      if (!workspace) continue;
      // Only a global stack is read through terraform_remote_state (by its parent's global stack); the
      // shared stacks' readers read with their team's token (below), as a rollout checks they were applied.
      const readers =
        stack === globalStackName(environment)
          ? readBy.map((env) => globalStackName(env)).filter((reader) => reader !== stack)
          : [];
      new WorkspaceSettings(this, `Settings-${stack}`, {
        workspaceId: workspace.id,
        executionMode: 'local',
        globalRemoteState: false,
        remoteStateConsumerIds: readers.map((reader) => {
          const consumer = workspaces.get(reader);
          if (!consumer)
            throw new Error(`TerraformCloudStack: ${stack} is read by ${reader}, which has no workspace`);
          return consumer.id;
        }),
      });
      for (const env of readBy) {
        const team = deployTeams.get(env.name);
        if (team)
          new TeamAccess(this, `Reads-${stack}-${env.name}`, {
            teamId: team.id,
            workspaceId: workspace.id,
            access: 'read',
          });
      }
    }
    this.workspaces = workspaces;
  }
}
