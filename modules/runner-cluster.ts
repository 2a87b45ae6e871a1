import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group';
import { DataAwsSsmParameter } from '@cdktf/provider-aws/lib/data-aws-ssm-parameter';
import { EcsCapacityProvider } from '@cdktf/provider-aws/lib/ecs-capacity-provider';
import { EcsCluster } from '@cdktf/provider-aws/lib/ecs-cluster';
import { EcsClusterCapacityProviders } from '@cdktf/provider-aws/lib/ecs-cluster-capacity-providers';
import { IamInstanceProfile } from '@cdktf/provider-aws/lib/iam-instance-profile';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { KmsGrant } from '@cdktf/provider-aws/lib/kms-grant';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template';
import { Construct } from 'constructs';
import { policyDocument, serviceTrustPolicy, type PolicyStatement } from './lib/policy';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

/** EC2 capacity of the runner cluster: container instances for jobs that build or run containers. */
export interface RunnerClusterEc2Props {
  /** x86_64 instance type of the container instances, e.g. `m7i.large` (the AMI is the x86_64 one). */
  readonly instanceType: string;
  /** Most instances the Auto Scaling group runs (1 to 1000); ECS managed scaling sets the desired count. */
  readonly maxInstances: number;
  /** Private subnets the instances launch in (ids), e.g. the runner network's `privateSubnets`; never a public address. */
  readonly subnetIds: readonly string[];
  /** Security groups of the instances (ids, 1 to 5), e.g. the runner network's `runnerSecurityGroup`. */
  readonly securityGroupIds: readonly string[];
  /** Customer key (ARN) encrypting the root volumes. Default: the account's EBS default key (`aws/ebs`). */
  readonly kmsKeyArn?: string;
  /** Root volume size in GiB, 30 (the AMI's own size) to 16384: images and build layers live there. Default: 30. */
  readonly rootVolumeSizeGiB?: number;
  /** Region of the cluster: scopes the instance role's grants and keeps its name apart from other regions'. */
  readonly region: string;
  /** Account of the cluster: the instance role's trust and grants are limited to it. */
  readonly accountId: string;
  /** Ignore drift of the launch template's tag specifications (the emulator echoes them changed). Default: false. */
  readonly ignoreTagSpecificationsDrift?: boolean;
}

export interface RunnerClusterProps {
  /** Cluster name, e.g. `dev-runners`. */
  readonly clusterName: string;
  /** Tasks always placed on on-demand Fargate before the spot split applies. Default: 1. */
  readonly onDemandBase?: number;
  /** Spot tasks per on-demand task beyond the base. Default: 3. */
  readonly spotWeight?: number;
  /**
   * EC2 capacity for jobs that build or run containers (Fargate cannot run Docker): an Auto Scaling group of
   * ECS-optimized Amazon Linux 2023 instances behind a capacity provider `<clusterName>-ec2`, which tasks
   * name in their capacity provider strategy. Default: none (Fargate only).
   */
  readonly ec2?: RunnerClusterEc2Props;
}

/** The runner image's user and its docker group (ghcr.io/actions/actions-runner), and its work folder. */
export const RUNNER_UID = 1001;
export const RUNNER_DOCKER_GID = 123;
export const RUNNER_WORK_FOLDER = '/home/runner/_work';

/** Where AWS publishes the current ECS-optimized Amazon Linux 2023 (x86_64) AMI. */
export const ECS_AL2023_AMI_PARAMETER =
  '/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id';

/** Graviton (arm64) families: `a1` and families whose generation digit is followed by `g` (m7g, c6gn, t4g). */
const ARM64_INSTANCE_TYPE = /^(a1|[a-z]+\d+g[a-z]*)\./;

/** What KMS must let the Auto Scaling service-linked role do with a customer key to launch encrypted volumes. */
const EBS_LAUNCH_OPERATIONS = [
  'Encrypt',
  'Decrypt',
  'ReEncryptFrom',
  'ReEncryptTo',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'DescribeKey',
  'CreateGrant',
];

/**
 * The ECS cluster self-hosted runners run on: Fargate and Fargate Spot, container insights on, and optionally
 * an EC2 capacity provider whose instances run Docker.
 */
export class RunnerCluster extends Construct {
  readonly cluster: EcsCluster;
  /** Name of the EC2 capacity provider, for task capacity provider strategies; undefined without `ec2`. */
  readonly ec2CapacityProviderName?: string;

  constructor(scope: Construct, id: string, props: RunnerClusterProps) {
    super(scope, id);
    requireMatch(
      'RunnerCluster',
      'clusterName',
      props.clusterName,
      /^[a-zA-Z0-9_-]{1,255}$/,
      '1-255 letters, digits, - or _',
    );
    const base = requireIntInRange('RunnerCluster', 'onDemandBase', props.onDemandBase ?? 1, 0, 100000);
    const spotWeight = requireIntInRange('RunnerCluster', 'spotWeight', props.spotWeight ?? 3, 0, 1000);
    const ec2 = props.ec2 ? validateEc2(props.clusterName, props.ec2) : undefined;
    this.cluster = new EcsCluster(this, 'Cluster', {
      name: props.clusterName,
      setting: [{ name: 'containerInsights', value: 'enabled' }],
    });
    const ec2Provider = ec2 ? this.ec2Capacity(props.clusterName, ec2) : undefined;
    this.ec2CapacityProviderName = ec2Provider ? `${props.clusterName}-ec2` : undefined;
    new EcsClusterCapacityProviders(this, 'CapacityProviders', {
      clusterName: this.cluster.name,
      capacityProviders: ['FARGATE', 'FARGATE_SPOT', ...(ec2Provider ? [ec2Provider.name] : [])],
      defaultCapacityProviderStrategy: [
        { capacityProvider: 'FARGATE', base, weight: 1 },
        { capacityProvider: 'FARGATE_SPOT', weight: spotWeight },
      ],
    });
  }

  private ec2Capacity(clusterName: string, props: ValidatedEc2): EcsCapacityProvider {
    const scope = new Construct(this, 'Ec2');
    const { region, accountId } = props;
    const name = `${clusterName}-ec2`;

    const ami = new DataAwsSsmParameter(scope, 'Ami', { name: ECS_AL2023_AMI_PARAMETER });
    const role = new IamRole(scope, 'InstanceRole', {
      name: instanceRoleName(clusterName, region),
      description: `ECS container instances of ${clusterName}`,
      assumeRolePolicy: serviceTrustPolicy('ec2.amazonaws.com', 'documented-without-conditions'),
    });
    new IamRolePolicy(scope, 'InstancePolicy', {
      name: 'ecs-container-instance',
      role: role.id,
      policy: policyDocument(containerInstanceStatements(this.cluster.arn, clusterName, region, accountId)),
    });
    const profile = new IamInstanceProfile(scope, 'InstanceProfile', { name: role.name, role: role.name });

    // Tasks must not reach the instance role: Docker's DOCKER-USER chain (which Docker evaluates before its
    // own forwarding rules, whatever order it inserts them in) drops every container's traffic to IMDS, on
    // whichever bridge; hop limit 1 keeps containers from it too, and ECS_AWSVPC_BLOCK_IMDS keeps awsvpc
    // tasks from it. A container on the host's network (what a job with the Docker socket can start) is
    // the host: only the runner group's trust protects that.
    const userData = [
      '#!/bin/bash',
      "cat >> /etc/ecs/ecs.config <<'EOF'",
      `ECS_CLUSTER=${clusterName}`,
      'ECS_ENABLE_TASK_IAM_ROLE=true',
      'ECS_AWSVPC_BLOCK_IMDS=true',
      'EOF',
      'set -euo pipefail',
      // The runner image's user (uid 1001, group docker = 123, as ghcr.io/actions/actions-runner) owns the
      // work folder the host's daemon shares at the same path, and reaches the socket through gid 123
      // (set after every start of the daemon, socket-activated or not).
      `install -d -o ${RUNNER_UID} -g ${RUNNER_UID} ${RUNNER_WORK_FOLDER}`,
      `getent group ${RUNNER_DOCKER_GID} >/dev/null || groupadd --gid ${RUNNER_DOCKER_GID} runner-docker`,
      'mkdir -p /etc/systemd/system/docker.service.d',
      `printf '[Service]\\nExecStartPost=/usr/bin/chgrp ${RUNNER_DOCKER_GID} /var/run/docker.sock\\n' > /etc/systemd/system/docker.service.d/runner.conf`,
      // What jobs leave behind (stopped containers, networks, dangling images, build cache) must not fill
      // the disk; tagged images are the ECS agent's to clean up (ECS_IMAGE_CLEANUP), as they may be reused.
      "printf '[Service]\\nType=oneshot\\nExecStart=/usr/bin/docker system prune --force --filter until=24h\\n' > /etc/systemd/system/runner-prune.service",
      "printf '[Timer]\\nOnCalendar=hourly\\n[Install]\\nWantedBy=timers.target\\n' > /etc/systemd/system/runner-prune.timer",
      'systemctl daemon-reload',
      'systemctl restart docker',
      'systemctl enable --now runner-prune.timer',
      'iptables --insert DOCKER-USER 1 --destination 169.254.169.254/32 --jump DROP',
      // Kept across reboots where the package is reachable; the rule above is in force either way.
      'if dnf install -y iptables-services; then iptables-save > /etc/sysconfig/iptables && systemctl enable iptables; fi',
      '',
    ].join('\n');
    const template = new LaunchTemplate(scope, 'LaunchTemplate', {
      name,
      description: `ECS container instances of ${clusterName}`,
      imageId: ami.insecureValue,
      instanceType: props.instanceType,
      iamInstanceProfile: { arn: profile.arn },
      userData: Buffer.from(userData, 'utf8').toString('base64'),
      updateDefaultVersion: true,
      metadataOptions: {
        httpEndpoint: 'enabled',
        httpTokens: 'required',
        httpPutResponseHopLimit: 1,
        instanceMetadataTags: 'disabled',
      },
      blockDeviceMappings: [
        {
          deviceName: '/dev/xvda',
          ebs: {
            volumeType: 'gp3',
            volumeSize: props.rootVolumeSizeGiB,
            encrypted: 'true',
            kmsKeyId: props.kmsKeyArn,
            deleteOnTermination: 'true',
          },
        },
      ],
      networkInterfaces: [
        {
          deviceIndex: 0,
          associatePublicIpAddress: 'false',
          deleteOnTermination: 'true',
          securityGroups: [...props.securityGroupIds],
        },
      ],
      monitoring: { enabled: true },
      tagSpecifications: ['instance', 'volume'].map((resourceType) => ({
        resourceType,
        tags: { Name: name },
      })),
      ...(props.ignoreTagSpecificationsDrift ? { lifecycle: { ignoreChanges: ['tag_specifications'] } } : {}),
    });

    const group = new AutoscalingGroup(scope, 'AutoScalingGroup', {
      name,
      minSize: 0,
      maxSize: props.maxInstances,
      vpcZoneIdentifier: [...props.subnetIds],
      launchTemplate: { id: template.id, version: '$Latest' },
      // ECS managed termination protection needs both: it only scales in instances that run no task.
      protectFromScaleIn: true,
      tag: [
        { key: 'AmazonECSManaged', value: 'true', propagateAtLaunch: true },
        { key: 'Name', value: name, propagateAtLaunch: true },
      ],
      lifecycle: { ignoreChanges: ['desired_capacity'] },
    });

    if (props.kmsKeyArn) {
      // The Auto Scaling service-linked role launches the instances, and no policy of its own covers a customer
      // key: without this grant no encrypted volume, so no instance, launches. The role exists once a group
      // does, hence after the group.
      new KmsGrant(scope, 'VolumeKeyGrant', {
        name: `${name}-volumes`,
        keyId: props.kmsKeyArn,
        granteePrincipal: `arn:aws:iam::${accountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
        operations: EBS_LAUNCH_OPERATIONS,
        dependsOn: [group],
      });
    }

    return new EcsCapacityProvider(scope, 'CapacityProvider', {
      name,
      autoScalingGroupProvider: {
        autoScalingGroupArn: group.arn,
        managedTerminationProtection: 'ENABLED',
        managedDraining: 'ENABLED',
        managedScaling: {
          status: 'ENABLED',
          targetCapacity: 100,
          minimumScalingStepSize: 1,
          maximumScalingStepSize: 10,
        },
      },
    });
  }
}

interface ValidatedEc2 extends RunnerClusterEc2Props {
  readonly rootVolumeSizeGiB: number;
}

const instanceRoleName = (clusterName: string, region: string) => `${clusterName}-ec2-${region}`;

function validateEc2(clusterName: string, props: RunnerClusterEc2Props): ValidatedEc2 {
  const owner = 'RunnerCluster';
  requireMatch(
    owner,
    'ec2.instanceType',
    props.instanceType,
    /^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+$/,
    'an EC2 instance type such as m7i.large',
  );
  if (ARM64_INSTANCE_TYPE.test(props.instanceType))
    fail(owner, 'ec2.instanceType', props.instanceType, 'an x86_64 type (the AMI is x86_64), not Graviton');
  requireIntInRange(owner, 'ec2.maxInstances', props.maxInstances, 1, 1000);
  if (props.subnetIds.length === 0) fail(owner, 'ec2.subnetIds', [], 'at least one private subnet id');
  if (props.securityGroupIds.length < 1 || props.securityGroupIds.length > 5)
    fail(owner, 'ec2.securityGroupIds', [...props.securityGroupIds], '1 to 5 security group ids');
  requireMatch(
    owner,
    'ec2.region',
    props.region,
    /^[a-z]{2}(-[a-z]+)+-\d$/,
    'an AWS region such as eu-central-1',
  );
  requireMatch(owner, 'ec2.accountId', props.accountId, /^\d{12}$/, 'a 12-digit AWS account id');
  const rootVolumeSizeGiB = requireIntInRange(
    owner,
    'ec2.rootVolumeSizeGiB',
    props.rootVolumeSizeGiB ?? 30,
    30,
    16384,
  );
  if (/^(aws|ecs|fargate)/i.test(clusterName))
    fail(
      owner,
      'clusterName',
      clusterName,
      'with ec2, a name not starting with aws, ecs or fargate (capacity provider)',
    );
  const roleName = instanceRoleName(clusterName, props.region);
  if (roleName.length > 64)
    fail(owner, 'clusterName', clusterName, `with ec2, a name that keeps "${roleName}" within 64 characters`);
  return { ...props, rootVolumeSizeGiB };
}

/**
 * What the ECS agent needs (AmazonEC2ContainerServiceforEC2Role without CreateCluster, which a named cluster
 * never calls), scoped to this cluster and its container instances wherever IAM allows a resource.
 */
export function containerInstanceStatements(
  clusterArn: string,
  clusterName: string,
  region: string,
  accountId: string,
): PolicyStatement[] {
  return [
    {
      sid: 'JoinCluster',
      actions: [
        'ecs:RegisterContainerInstance',
        'ecs:DeregisterContainerInstance',
        'ecs:SubmitAttachmentStateChanges',
        'ecs:SubmitContainerStateChange',
        'ecs:SubmitTaskStateChange',
      ],
      resources: [clusterArn],
    },
    {
      sid: 'ActAsContainerInstance',
      actions: ['ecs:Poll', 'ecs:StartTelemetrySession', 'ecs:UpdateContainerInstancesState'],
      resources: [`arn:aws:ecs:${region}:${accountId}:container-instance/${clusterName}/*`],
    },
    // DiscoverPollEndpoint has no resource type in IAM: it can only be granted on "*".
    { sid: 'DiscoverPollEndpoint', actions: ['ecs:DiscoverPollEndpoint'], resources: ['*'] },
    // No ECR pulls and no log writes: every task definition run here names an execution role, which the
    // agent uses for both; the instance's own role stays the agent's.
  ];
}
