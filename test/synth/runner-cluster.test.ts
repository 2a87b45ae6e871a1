import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { KmsKey } from '../../modules/kms-key';
import { assertLeastPrivilege, type PolicyStatement } from '../../modules/lib/policy';
import {
  ECS_AL2023_AMI_PARAMETER,
  RunnerCluster,
  type RunnerClusterEc2Props,
} from '../../modules/runner-cluster';
import { RunnerNetwork } from '../../modules/runner-network';
import { only, parse, policyOf, resources, type Block } from '../support/synthesized';

const ACCOUNT = '222222222222';
const REGION = 'eu-central-1';

function withNetwork(scope: Construct, ec2?: Partial<RunnerClusterEc2Props>, withKey = true): RunnerCluster {
  const kmsKey = new KmsKey(scope, 'Key', { aliasName: 'dev-estate', accountId: ACCOUNT, region: REGION });
  const network = new RunnerNetwork(scope, 'N', {
    name: 'dev-runners',
    cidr: '10.20.0.0/16',
    region: REGION,
    kmsKey,
  });
  return new RunnerCluster(scope, 'C', {
    clusterName: 'dev-runners',
    ...(ec2
      ? {
          ec2: {
            instanceType: 'm7i.large',
            maxInstances: 8,
            subnetIds: network.privateSubnets.map((s) => s.id),
            securityGroupIds: [network.runnerSecurityGroup.id],
            ...(withKey ? { kmsKeyArn: kmsKey.key.arn } : {}),
            region: REGION,
            accountId: ACCOUNT,
            ...ec2,
          },
        }
      : {}),
  });
}

const EC2_TYPES = [
  'aws_autoscaling_group',
  'aws_ecs_capacity_provider',
  'aws_iam_instance_profile',
  'aws_kms_grant',
  'aws_launch_template',
];

/** The role policy's statements in the shape `assertLeastPrivilege` checks. */
const asStatements = (policy: Block): PolicyStatement[] =>
  policyOf(policy).Statement.map((s) => ({
    sid: s.Sid as string,
    actions: s.Action as string[],
    resources: s.Resource as string[],
  }));

describe('RunnerCluster', () => {
  describe('without ec2', () => {
    let cluster: RunnerCluster | undefined;
    const synthesized = Testing.synthScope((scope) => {
      cluster = withNetwork(scope);
    });

    it('synthesizes only the Fargate cluster, at the addresses deployed estates hold', () => {
      const json = parse(synthesized);
      for (const type of EC2_TYPES) expect(resources(json, type)).toEqual([]);
      expect(json.data?.aws_ssm_parameter).toBeUndefined();
      expect(Object.keys(json.resource?.aws_ecs_cluster ?? {})).toEqual([
        expect.stringMatching(/^C_Cluster_[0-9A-F]+$/),
      ]);
      expect(Object.keys(json.resource?.aws_ecs_cluster_capacity_providers ?? {})).toEqual([
        expect.stringMatching(/^C_CapacityProviders_[0-9A-F]+$/),
      ]);
      expect(only(json, 'aws_ecs_cluster_capacity_providers')).toEqual({
        cluster_name: expect.stringMatching(/^\$\{aws_ecs_cluster\.C_Cluster_\w+\.name\}$/),
        capacity_providers: ['FARGATE', 'FARGATE_SPOT'],
        default_capacity_provider_strategy: [
          { capacity_provider: 'FARGATE', base: 1, weight: 1 },
          { capacity_provider: 'FARGATE_SPOT', weight: 3 },
        ],
      });
      expect(cluster?.ec2CapacityProviderName).toBeUndefined();
    });
  });

  describe('with ec2', () => {
    let cluster: RunnerCluster | undefined;
    const synthesized = Testing.synthScope((scope) => {
      cluster = withNetwork(scope, {});
    });
    const json = parse(synthesized);
    const template = only(json, 'aws_launch_template');

    it('launches the current ECS-optimized Amazon Linux 2023 AMI with the instance profile', () => {
      expect(Object.values(json.data?.aws_ssm_parameter ?? {})).toEqual([{ name: ECS_AL2023_AMI_PARAMETER }]);
      expect(template.image_id).toMatch(/^\$\{data\.aws_ssm_parameter\.C_Ec2_Ami_\w+\.insecure_value\}$/);
      expect(template.instance_type).toBe('m7i.large');
      expect(template.iam_instance_profile).toEqual({
        arn: expect.stringMatching(/^\$\{aws_iam_instance_profile\.C_Ec2_InstanceProfile_\w+\.arn\}$/),
      });
    });

    it('joins the cluster with task roles, and keeps tasks from the instance credentials (IMDSv2, hop limit 1)', () => {
      const userData = Buffer.from(template.user_data as string, 'base64').toString('utf8');
      expect(userData.startsWith('#!/bin/bash\n')).toBe(true);
      expect(userData).toContain('/etc/ecs/ecs.config');
      expect(userData.split('\n')).toEqual(
        expect.arrayContaining([
          'ECS_CLUSTER=dev-runners',
          'ECS_ENABLE_TASK_IAM_ROLE=true',
          'ECS_AWSVPC_BLOCK_IMDS=true',
          // Every container's traffic (the runner's, and its jobs' networks) dropped on the way to IMDS, in the
          // chain Docker evaluates first, once Docker is up.
          'systemctl restart docker',
          'iptables --insert DOCKER-USER 1 --destination 169.254.169.254/32 --jump DROP',
          // The runner (uid 1001, group 123) owns its work folder and reaches the Docker socket.
          'install -d -o 1001 -g 1001 /home/runner/_work',
          "printf '[Service]\\nExecStartPost=/usr/bin/chgrp 123 /var/run/docker.sock\\n' > /etc/systemd/system/docker.service.d/runner.conf",
          'systemctl enable --now runner-prune.timer',
        ]),
      );
      // A failed step stops the script after the agent's configuration is written; the rule goes in after
      // Docker (re)starts, so its chain exists.
      expect(userData.indexOf('set -euo pipefail')).toBeGreaterThan(userData.indexOf('ECS_CLUSTER='));
      expect(userData.indexOf('DOCKER-USER')).toBeGreaterThan(userData.indexOf('systemctl restart docker'));
      expect(userData).not.toContain('prune --all');
      expect(template.metadata_options).toEqual({
        http_endpoint: 'enabled',
        http_tokens: 'required',
        http_put_response_hop_limit: 1,
        instance_metadata_tags: 'disabled',
      });
    });

    it('encrypts a gp3 root volume with the key, gives no public address, uses the given groups, monitors', () => {
      expect(template.block_device_mappings).toEqual([
        {
          device_name: '/dev/xvda',
          ebs: {
            volume_type: 'gp3',
            volume_size: 30,
            encrypted: 'true',
            kms_key_id: expect.stringMatching(/^\$\{aws_kms_key\.Key_\w+\.arn\}$/),
            delete_on_termination: 'true',
          },
        },
      ]);
      expect(template.network_interfaces).toEqual([
        {
          device_index: 0,
          associate_public_ip_address: 'false',
          delete_on_termination: 'true',
          security_groups: [
            expect.stringMatching(/^\$\{aws_security_group\.N_RunnerSecurityGroup_\w+\.id\}$/),
          ],
        },
      ]);
      expect(template.vpc_security_group_ids).toBeUndefined();
      expect(template.monitoring).toEqual({ enabled: true });
    });

    it('scales from zero in the private subnets, protected from scale-in and marked AmazonECSManaged', () => {
      const group = only(json, 'aws_autoscaling_group');
      expect(group).toMatchObject({
        name: 'dev-runners-ec2',
        min_size: 0,
        max_size: 8,
        protect_from_scale_in: true,
        launch_template: { version: '$Latest' },
        lifecycle: { ignore_changes: ['desired_capacity'] },
      });
      expect(group.desired_capacity).toBeUndefined();
      expect(group.vpc_zone_identifier).toEqual([
        expect.stringMatching(/aws_subnet\.N_Private0_\w+\.id/),
        expect.stringMatching(/aws_subnet\.N_Private1_\w+\.id/),
      ]);
      expect(group.tag).toContainEqual({ key: 'AmazonECSManaged', value: 'true', propagate_at_launch: true });
    });

    it('lets the Auto Scaling service-linked role launch volumes with the key, once the group exists', () => {
      expect(only(json, 'aws_kms_grant')).toMatchObject({
        key_id: expect.stringMatching(/aws_kms_key\.Key_\w+\.arn/),
        grantee_principal: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
        operations: expect.arrayContaining(['GenerateDataKeyWithoutPlaintext', 'Decrypt', 'CreateGrant']),
        depends_on: [expect.stringMatching(/^aws_autoscaling_group\.C_Ec2_AutoScalingGroup_\w+$/)],
      });
    });

    it('adds a managed-scaling capacity provider with termination protection to the cluster, default strategy unchanged', () => {
      expect(only(json, 'aws_ecs_capacity_provider')).toMatchObject({
        name: 'dev-runners-ec2',
        auto_scaling_group_provider: {
          auto_scaling_group_arn: expect.stringMatching(
            /aws_autoscaling_group\.C_Ec2_AutoScalingGroup_\w+\.arn/,
          ),
          managed_termination_protection: 'ENABLED',
          managed_scaling: {
            status: 'ENABLED',
            target_capacity: 100,
            minimum_scaling_step_size: 1,
            maximum_scaling_step_size: 10,
          },
        },
      });
      expect(only(json, 'aws_ecs_cluster_capacity_providers')).toMatchObject({
        capacity_providers: [
          'FARGATE',
          'FARGATE_SPOT',
          expect.stringMatching(/^\$\{aws_ecs_capacity_provider\.C_Ec2_CapacityProvider_\w+\.name\}$/),
        ],
        default_capacity_provider_strategy: [
          { capacity_provider: 'FARGATE', base: 1, weight: 1 },
          { capacity_provider: 'FARGATE_SPOT', weight: 3 },
        ],
      });
      expect(cluster?.ec2CapacityProviderName).toBe('dev-runners-ec2');
    });

    it('gives the instances a role only EC2 may assume (for the instances this account launches with it)', () => {
      const role = resources(json, 'aws_iam_role').find(
        (r) => r.name === `dev-runners-ec2-${REGION}`,
      ) as Block;
      expect(JSON.parse(role.assume_role_policy as string).Statement).toEqual([
        {
          Effect: 'Allow',
          Principal: { Service: 'ec2.amazonaws.com' },
          Action: 'sts:AssumeRole',
        },
      ]);
      expect(only(json, 'aws_iam_instance_profile').role).toMatch(
        /aws_iam_role\.C_Ec2_InstanceRole_\w+\.name/,
      );
    });

    const instancePolicy = resources(json, 'aws_iam_role_policy').find(
      (p) => p.name === 'ecs-container-instance',
    ) as Block;
    const statements = asStatements(instancePolicy);

    it("grants the ECS agent's actions on this cluster and its container instances only", () => {
      const bySid = Object.fromEntries(statements.map((s) => [s.sid, s]));
      expect(bySid.JoinCluster?.resources).toEqual([
        expect.stringMatching(/aws_ecs_cluster\.C_Cluster_\w+\.arn/),
      ]);
      expect(bySid.ActAsContainerInstance?.resources).toEqual([
        `arn:aws:ecs:${REGION}:${ACCOUNT}:container-instance/dev-runners/*`,
      ]);
      const actions = statements.flatMap((s) => s.actions);
      expect(actions).toEqual(
        expect.arrayContaining([
          'ecs:RegisterContainerInstance',
          'ecs:DeregisterContainerInstance',
          'ecs:DiscoverPollEndpoint',
          'ecs:Poll',
          'ecs:StartTelemetrySession',
          'ecs:SubmitTaskStateChange',
          'ecs:UpdateContainerInstancesState',
        ]),
      );
      expect(actions).not.toContain('ecs:CreateCluster');
      // Image pulls and log writes are the tasks' execution role's: the instance role has neither.
      expect(actions.filter((a) => a.startsWith('ecr:') || a.startsWith('logs:'))).toEqual([]);
    });

    it('grants "*" only to the actions IAM cannot scope to a resource', () => {
      const onStar = statements.filter((s) => s.resources.includes('*')).flatMap((s) => s.actions);
      expect(onStar.sort()).toEqual(['ecs:DiscoverPollEndpoint']);
      for (const s of statements) expect(s.actions.some((a) => a.includes('*'))).toBe(false);
    });

    it('passes assertLeastPrivilege', () => {
      expect(() => assertLeastPrivilege('RunnerCluster instance role', statements)).not.toThrow();
    });
  });

  it('encrypts the root volume with the EBS default key, and grants nothing, when no key is given', () => {
    const synthesized = Testing.synthScope(
      (scope) => void withNetwork(scope, { rootVolumeSizeGiB: 100 }, false),
    );
    const template = only(synthesized, 'aws_launch_template');
    const ebs = (template.block_device_mappings as Block[])[0]?.ebs as Block;
    expect(ebs).toMatchObject({ encrypted: 'true', volume_size: 100 });
    expect(ebs.kms_key_id).toBeUndefined();
    expect(resources(synthesized, 'aws_kms_grant')).toEqual([]);
  });

  describe('refuses bad ec2 props, naming the prop', () => {
    const refusal =
      (ec2: Partial<RunnerClusterEc2Props>, clusterName = 'dev-runners') =>
      () =>
        Testing.synthScope((scope) => {
          new RunnerCluster(scope, 'C', {
            clusterName,
            ec2: {
              instanceType: 'm7i.large',
              maxInstances: 4,
              subnetIds: ['subnet-1'],
              securityGroupIds: ['sg-1'],
              region: REGION,
              accountId: ACCOUNT,
              ...ec2,
            },
          });
        });

    it.each([
      [
        { instanceType: 'large' },
        /invalid ec2\.instanceType: received "large"; expected an EC2 instance type/,
      ],
      [
        { instanceType: 'm7g.large' },
        /invalid ec2\.instanceType: received "m7g\.large"; expected an x86_64 type/,
      ],
      [{ maxInstances: 0 }, /invalid ec2\.maxInstances: received 0; expected an integer between 1 and 1000/],
      [{ maxInstances: 1001 }, /invalid ec2\.maxInstances: received 1001/],
      [{ maxInstances: 2.5 }, /invalid ec2\.maxInstances: received 2\.5/],
      [{ subnetIds: [] }, /invalid ec2\.subnetIds: received \[\]; expected at least one private subnet id/],
      [{ securityGroupIds: [] }, /invalid ec2\.securityGroupIds: received \[\]; expected 1 to 5/],
      [{ region: 'Europe' }, /invalid ec2\.region: received "Europe"/],
      [{ accountId: '12' }, /invalid ec2\.accountId: received "12"/],
      [
        { rootVolumeSizeGiB: 8 },
        /invalid ec2\.rootVolumeSizeGiB: received 8; expected an integer between 30/,
      ],
    ])('%j', (ec2, message) => {
      expect(refusal(ec2)).toThrow(message);
    });

    it('refuses a cluster name the capacity provider or the role name cannot carry', () => {
      expect(refusal({}, 'ecs-runners')).toThrow(
        /invalid clusterName: received "ecs-runners"; expected with ec2/,
      );
      expect(refusal({}, 'r'.repeat(60))).toThrow(/invalid clusterName: .*within 64 characters/);
    });
  });
});
