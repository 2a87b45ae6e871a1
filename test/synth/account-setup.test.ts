import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments } from '../../environments';
import { synthesize, synthesizeSetup } from '../../scripts/lib/synth';
import { policyOf, resources, type Block, type TerraformJson } from '../support/synthesized';

const environments = loadEnvironments({});
const deployed = Object.values(environments).filter((env) => env.name !== 'local');
const setup = synthesizeSetup(deployed, mkdtempSync(join(tmpdir(), 'setup-')));
const estateStacks = synthesize(deployed, mkdtempSync(join(tmpdir(), 'setup-estate-'))).map((s) => s.name);
const json = (name: string): TerraformJson => {
  const stack = setup.find((s) => s.name === name);
  if (!stack) throw new Error(`no stack ${name}; have ${setup.map((s) => s.name).join(', ')}`);
  return JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as TerraformJson;
};
const byName = (json: TerraformJson, type: string, name: string): Block | undefined =>
  resources(json, type).find((r) => r.name === name);
const idOf = (json: TerraformJson, type: string, name: string): string => {
  const entry = Object.entries(json.resource?.[type] ?? {}).find(([, r]) => r.name === name);
  if (!entry) throw new Error(`no ${type} named ${name}`);
  return `\${${type}.${entry[0]}.id}`;
};

describe('account setup (applied once by hand)', () => {
  it('admits exactly the subjects of the ids configured, never another repository with the same name', () => {
    const dev = environments.dev;
    if (!dev) throw new Error('no dev');
    const pinned = synthesizeSetup(
      [
        {
          ...dev,
          github: { repository: 'estate-platform/estate', ids: { owner: '101', repository: '202' } },
        },
      ],
      mkdtempSync(join(tmpdir(), 'setup-ids-')),
    ).find((s) => s.name === 'bootstrap-dev');
    const stack = JSON.parse(readFileSync(join(pinned?.dir ?? '', 'cdk.tf.json'), 'utf8')) as TerraformJson;
    const subjects = resources(stack, 'aws_iam_role').flatMap(
      (role) =>
        ((policyOf(role, 'assume_role_policy').Statement[0]?.Condition as Block).StringEquals as Block)[
          'token.actions.githubusercontent.com:sub'
        ] as string[],
    );
    expect(subjects.sort()).toEqual([
      'repo:estate-platform/estate:environment:dev',
      'repo:estate-platform/estate:pull_request',
      'repo:estate-platform@101/estate@202:environment:dev',
      'repo:estate-platform@101/estate@202:pull_request',
    ]);
    expect(JSON.stringify(stack)).not.toMatch(/StringLike|@\*/);
  });

  it('synthesizes the Terraform Cloud stack and one bootstrap per deployed account', () => {
    expect(setup.map((s) => s.name).sort()).toEqual([
      'bootstrap-dev',
      'bootstrap-prod',
      'bootstrap-shared',
      'terraform-cloud',
    ]);
  });

  describe.each(deployed.map((env) => [env.name, env] as const))('bootstrap-%s', (name, env) => {
    const stack = json(`bootstrap-${name}`);
    const trustOf = (roleArn: string | undefined) => {
      const role = byName(stack, 'aws_iam_role', roleArn?.split('/').pop() ?? '');
      if (!role) throw new Error(`no role for ${roleArn}`);
      return policyOf(role, 'assume_role_policy').Statement;
    };

    it("trusts GitHub's OIDC issuer for the AWS audience, with the account pinned and no role assumed", () => {
      expect(resources(stack, 'aws_iam_openid_connect_provider')).toEqual([
        expect.objectContaining({
          url: 'https://token.actions.githubusercontent.com',
          client_id_list: ['sts.amazonaws.com'],
        }),
      ]);
      const [provider] = stack.provider?.aws ?? [];
      expect(provider?.assume_role).toBeUndefined();
      expect(provider?.allowed_account_ids).toEqual([env.accountId]);
      expect(stack.terraform?.cloud).toMatchObject({ workspaces: { name: `estate-bootstrap-${name}` } });
    });

    it('lets only pull requests of the repository assume the plan role, which reads configuration only', () => {
      const [statement] = trustOf(env.planRoleArn);
      expect(statement?.Condition).toEqual({
        StringEquals: {
          'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
          'token.actions.githubusercontent.com:sub': [
            'repo:estate-platform@100000001/estate@200000002:pull_request',
            'repo:estate-platform/estate:pull_request',
          ],
        },
      });
      const attachments = resources(stack, 'aws_iam_role_policy_attachment');
      expect(attachments.map((a) => a.policy_arn).sort()).toEqual([
        'arn:aws:iam::aws:policy/AdministratorAccess',
        'arn:aws:iam::aws:policy/ReadOnlyAccess',
      ]);
      const [deny] = policyOf(only(stack, 'aws_iam_role_policy')).Statement;
      expect(deny).toMatchObject({ Effect: 'Deny', Resource: ['*'] });
      expect(deny?.Action).toEqual(expect.arrayContaining(['s3:GetObject', 'secretsmanager:GetSecretValue']));
    });

    it(`lets only jobs of the ${name} GitHub environment (its gate) assume the deploy role`, () => {
      const [statement] = trustOf(env.deployRoleArn);
      expect((statement?.Condition as Block).StringEquals).toEqual({
        'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
        'token.actions.githubusercontent.com:sub': [
          `repo:estate-platform@100000001/estate@200000002:environment:${name}`,
          `repo:estate-platform/estate:environment:${name}`,
        ],
      });
      expect((statement?.Condition as Block).StringLike).toBeUndefined();
      expect(JSON.stringify(statement)).not.toContain('pull_request');
    });
  });

  describe('terraform-cloud', () => {
    const cloud = json('terraform-cloud');
    const workspaceNames = resources(cloud, 'tfe_workspace').map((w) => w.name);

    it('is the tfe provider only, keeping its own state in estate-terraform-cloud', () => {
      expect(Object.keys(cloud.provider ?? {})).toEqual(['tfe']);
      expect(cloud.terraform?.cloud).toMatchObject({
        organization: 'estate-platform',
        workspaces: { name: 'estate-terraform-cloud' },
      });
    });

    it('has a workspace for every stack the rollouts apply and every bootstrap, in its environment project', () => {
      expect(workspaceNames.sort()).toEqual(
        [...estateStacks, 'bootstrap-shared', 'bootstrap-dev', 'bootstrap-prod']
          .map((s) => `estate-${s}`)
          .sort(),
      );
      const devGlobal = byName(cloud, 'tfe_workspace', 'estate-dev-global');
      expect(devGlobal?.project_id).toBe(idOf(cloud, 'tfe_project', 'estate-dev'));
    });

    it('runs every workspace in local execution, sharing state with nobody by default', () => {
      const settings = resources(cloud, 'tfe_workspace_settings');
      expect(settings).toHaveLength(workspaceNames.length);
      for (const s of settings)
        expect(s).toMatchObject({ execution_mode: 'local', global_remote_state: false });
    });

    it("shares dev-global's state with prod-global only, and lets prod's deployers read it", () => {
      const settings = resources(cloud, 'tfe_workspace_settings');
      const devGlobalId = idOf(cloud, 'tfe_workspace', 'estate-dev-global');
      const sharing = settings.filter((s) => (s.remote_state_consumer_ids as string[]).length > 0);
      expect(sharing).toEqual([
        expect.objectContaining({
          workspace_id: devGlobalId,
          remote_state_consumer_ids: [idOf(cloud, 'tfe_workspace', 'estate-prod-global')],
        }),
      ]);
      const reads = resources(cloud, 'tfe_team_access').map((a) => [a.team_id, a.workspace_id, a.access]);
      expect(reads).toContainEqual([idOf(cloud, 'tfe_team', 'estate-deploy-prod'), devGlobalId, 'read']);
      for (const stack of ['dev-eu-central-1', 'prod-global', 'bootstrap-dev'])
        expect(reads.map(([, workspace]) => workspace)).not.toContain(
          idOf(cloud, 'tfe_workspace', `estate-${stack}`),
        );
    });

    it("lets dev's and prod's deployers read the shared stacks' state (their rollouts check it was applied)", () => {
      const reads = resources(cloud, 'tfe_team_access').map((a) => [a.team_id, a.workspace_id, a.access]);
      for (const stack of ['shared-eu-central-1', 'shared-us-east-1'])
        for (const env of ['dev', 'prod'])
          expect(reads).toContainEqual([
            idOf(cloud, 'tfe_team', `estate-deploy-${env}`),
            idOf(cloud, 'tfe_workspace', `estate-${stack}`),
            'read',
          ]);
      expect(reads).toHaveLength(5);
    });

    it('gives planners read on every project and each environment its own writers, no tokens in state', () => {
      const access = resources(cloud, 'tfe_team_project_access').map((a) => [
        a.team_id,
        a.project_id,
        a.access,
      ]);
      for (const env of deployed) {
        const project = idOf(cloud, 'tfe_project', `estate-${env.name}`);
        expect(access).toContainEqual([idOf(cloud, 'tfe_team', 'estate-plan'), project, 'read']);
        expect(access).toContainEqual([
          idOf(cloud, 'tfe_team', `estate-deploy-${env.name}`),
          project,
          'write',
        ]);
      }
      expect(access).toHaveLength(deployed.length * 2);
      expect(resources(cloud, 'tfe_team_token')).toHaveLength(0);
    });
  });
});

function only(json: TerraformJson, type: string): Block {
  const all = resources(json, type);
  if (all.length !== 1) throw new Error(`expected one ${type}, found ${all.length}`);
  return all[0] as Block;
}
