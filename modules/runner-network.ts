import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { DataAwsAvailabilityZones } from '@cdktf/provider-aws/lib/data-aws-availability-zones';
import { DefaultSecurityGroup } from '@cdktf/provider-aws/lib/default-security-group';
import { Eip } from '@cdktf/provider-aws/lib/eip';
import { FlowLog } from '@cdktf/provider-aws/lib/flow-log';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { InternetGateway } from '@cdktf/provider-aws/lib/internet-gateway';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway';
import { RouteTable } from '@cdktf/provider-aws/lib/route-table';
import { RouteTableAssociation } from '@cdktf/provider-aws/lib/route-table-association';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { Subnet } from '@cdktf/provider-aws/lib/subnet';
import { Vpc } from '@cdktf/provider-aws/lib/vpc';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint';
import { Fn } from 'cdktf';
import { Construct } from 'constructs';
import type { KmsKey } from './kms-key';
import { policyDocument, serviceTrustPolicy } from './lib/policy';
import { requireMatch } from './lib/validate';

export interface RunnerNetworkProps {
  /** Name prefix, e.g. `dev-runners`. */
  readonly name: string;
  /** The VPC's CIDR, a `10.x.0.0/16`. */
  readonly cidr: string;
  /** Region, for the endpoints' service names. */
  readonly region: string;
  /**
   * NAT gateways of the private subnets (runners reach GitHub through them): `per-zone` (each zone's
   * subnet leaves through its own zone's gateway), `one` (every subnet through the first zone's), or `none`.
   * Default: per-zone.
   */
  readonly natGateways?: 'per-zone' | 'one' | 'none';
  /** Interface endpoints for ECR (api and dkr), CloudWatch Logs and STS in the private subnets. Default: true. */
  readonly interfaceEndpoints?: boolean;
  /** Key for the flow-log group. */
  readonly kmsKey: KmsKey;
  /** Flow-log retention in days. Default: 365. */
  readonly flowLogRetentionDays?: number;
}

/** Services runners reach through interface endpoints: image pulls, their logs, their credentials. */
export const RUNNER_INTERFACE_ENDPOINTS = ['ecr.api', 'ecr.dkr', 'logs', 'sts'] as const;

/**
 * The runners' network in one region: a VPC over two availability zones with a public and a private subnet
 * in each, an internet gateway, NAT gateways (per zone, one, or none), gateway endpoints for S3 and
 * DynamoDB and interface endpoints for ECR, CloudWatch Logs and STS for the private subnets, flow logs, a
 * default security group that admits nothing, and a runner security group that only leaves over HTTPS.
 */
export class RunnerNetwork extends Construct {
  readonly vpc: Vpc;
  readonly publicSubnets: readonly Subnet[];
  readonly privateSubnets: readonly Subnet[];
  readonly runnerSecurityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: RunnerNetworkProps) {
    super(scope, id);
    const cidr = requireMatch(
      'RunnerNetwork',
      'cidr',
      props.cidr,
      /^10\.\d{1,3}\.0\.0\/16$/,
      'a 10.x.0.0/16 CIDR',
    );
    const prefix = cidr.split('.').slice(0, 2).join('.');
    const zones = new DataAwsAvailabilityZones(this, 'Zones', { state: 'available' });

    this.vpc = new Vpc(this, 'Vpc', {
      cidrBlock: cidr,
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: { Name: props.name },
    });
    const vpcId = this.vpc.id;
    const subnet = (kind: 'public' | 'private', index: number, third: number) =>
      new Subnet(this, `${kind === 'public' ? 'Public' : 'Private'}${index}`, {
        vpcId,
        cidrBlock: `${prefix}.${third}.0/20`,
        availabilityZone: Fn.element(zones.names, index),
        mapPublicIpOnLaunch: false,
        tags: { Name: `${props.name}-${kind}-${index}` },
      });
    this.publicSubnets = [subnet('public', 0, 0), subnet('public', 1, 16)];
    this.privateSubnets = [subnet('private', 0, 128), subnet('private', 1, 144)];

    const internet = new InternetGateway(this, 'Internet', { vpcId, tags: { Name: props.name } });
    const publicRoutes = new RouteTable(this, 'PublicRoutes', {
      vpcId,
      route: [{ cidrBlock: '0.0.0.0/0', gatewayId: internet.id }],
      tags: { Name: `${props.name}-public` },
    });
    const natMode = props.natGateways ?? 'per-zone';
    const gateways = (natMode === 'none' ? [] : natMode === 'one' ? [0] : [0, 1]).map(
      (zone) =>
        new NatGateway(this, `Nat${zone}`, {
          allocationId: new Eip(this, `NatAddress${zone}`, {
            domain: 'vpc',
            tags: { Name: `${props.name}-nat-${zone}` },
          }).id,
          subnetId: this.publicSubnets[zone]?.id ?? '',
          tags: { Name: `${props.name}-${zone}` },
          dependsOn: [internet],
        }),
    );
    // One private route table per zone, each leaving through its own zone's gateway (or the only one).
    const privateRoutes = this.privateSubnets.map((s, zone) => {
      const gateway = gateways[zone] ?? gateways[0];
      const table = new RouteTable(this, `PrivateRoutes${zone}`, {
        vpcId,
        route: gateway ? [{ cidrBlock: '0.0.0.0/0', natGatewayId: gateway.id }] : [],
        tags: { Name: `${props.name}-private-${zone}` },
      });
      new RouteTableAssociation(this, `PrivateRoute${zone}`, { subnetId: s.id, routeTableId: table.id });
      return table;
    });
    this.publicSubnets.forEach(
      (s, i) =>
        new RouteTableAssociation(this, `PublicRoute${i}`, { subnetId: s.id, routeTableId: publicRoutes.id }),
    );

    for (const service of ['s3', 'dynamodb'] as const) {
      new VpcEndpoint(this, `${service === 's3' ? 'S3' : 'Dynamodb'}Endpoint`, {
        vpcId,
        serviceName: `com.amazonaws.${props.region}.${service}`,
        vpcEndpointType: 'Gateway',
        routeTableIds: privateRoutes.map((table) => table.id),
        tags: { Name: `${props.name}-${service}` },
      });
    }

    new DefaultSecurityGroup(this, 'DefaultSecurityGroup', {
      vpcId,
      ingress: [],
      egress: [],
      tags: { Name: `${props.name}-default-closed` },
    });
    this.runnerSecurityGroup = new SecurityGroup(this, 'RunnerSecurityGroup', {
      name: `${props.name}-runner`,
      description: 'Self-hosted runners: no inbound, HTTPS out',
      vpcId,
      ingress: [],
      egress: [
        { description: 'HTTPS out', protocol: 'tcp', fromPort: 443, toPort: 443, cidrBlocks: ['0.0.0.0/0'] },
      ],
    });

    if (props.interfaceEndpoints ?? true) {
      const endpoints = new SecurityGroup(this, 'EndpointSecurityGroup', {
        name: `${props.name}-endpoints`,
        description: 'Interface endpoints: HTTPS from the VPC only',
        vpcId,
        ingress: [
          {
            description: 'HTTPS from the VPC',
            protocol: 'tcp',
            fromPort: 443,
            toPort: 443,
            cidrBlocks: [cidr],
          },
        ],
        egress: [],
      });
      for (const service of RUNNER_INTERFACE_ENDPOINTS) {
        new VpcEndpoint(this, `Endpoint-${service.replace('.', '-')}`, {
          vpcId,
          serviceName: `com.amazonaws.${props.region}.${service}`,
          vpcEndpointType: 'Interface',
          privateDnsEnabled: true,
          subnetIds: this.privateSubnets.map((s) => s.id),
          securityGroupIds: [endpoints.id],
          tags: { Name: `${props.name}-${service}` },
        });
      }
    }

    const flowLogs = new CloudwatchLogGroup(this, 'FlowLogs', {
      name: `/vpc/${props.name}/flow-logs`,
      retentionInDays: props.flowLogRetentionDays ?? 365,
      kmsKeyId: props.kmsKey.arn,
    });
    const flowLogRole = new IamRole(this, 'FlowLogRole', {
      name: `${props.name}-flow-logs-${props.region}`,
      assumeRolePolicy: serviceTrustPolicy('vpc-flow-logs.amazonaws.com', {
        sourceAccount: props.kmsKey.accountId,
        sourceArn: `arn:aws:ec2:${props.region}:${props.kmsKey.accountId}:vpc-flow-log/*`,
      }),
    });
    const flowLogPolicy = new IamRolePolicy(this, 'FlowLogPolicy', {
      name: 'write-flow-logs',
      role: flowLogRole.id,
      policy: policyDocument([
        {
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
          resources: [flowLogs.arn, `${flowLogs.arn}:*`],
        },
      ]),
    });
    new FlowLog(this, 'FlowLog', {
      vpcId,
      trafficType: 'ALL',
      logDestinationType: 'cloud-watch-logs',
      logDestination: flowLogs.arn,
      iamRoleArn: flowLogRole.arn,
      maxAggregationInterval: 60,
      dependsOn: [flowLogPolicy],
    });
  }
}
