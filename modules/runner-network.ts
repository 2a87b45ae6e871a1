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
  /** Region, for the gateway endpoints' service names. */
  readonly region: string;
  /** One NAT gateway for the private subnets (egress for runners). Default: true. */
  readonly natGateway?: boolean;
  /** Key for the flow-log group. */
  readonly kmsKey: KmsKey;
  /** Flow-log retention in days. Default: 365. */
  readonly flowLogRetentionDays?: number;
}

/**
 * The runners' network in one region: a VPC over two availability zones with a public and a private subnet
 * in each, an internet gateway, an optional NAT gateway, gateway endpoints for S3 and DynamoDB on the
 * private route table, flow logs, a default security group that admits nothing, and a runner security
 * group that only leaves over HTTPS.
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
    const nat =
      props.natGateway === false
        ? undefined
        : new NatGateway(this, 'Nat', {
            allocationId: new Eip(this, 'NatAddress', { domain: 'vpc', tags: { Name: `${props.name}-nat` } })
              .id,
            subnetId: this.publicSubnets[0]?.id ?? '',
            tags: { Name: props.name },
            dependsOn: [internet],
          });
    const privateRoutes = new RouteTable(this, 'PrivateRoutes', {
      vpcId,
      route: nat ? [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }] : [],
      tags: { Name: `${props.name}-private` },
    });
    this.publicSubnets.forEach(
      (s, i) =>
        new RouteTableAssociation(this, `PublicRoute${i}`, { subnetId: s.id, routeTableId: publicRoutes.id }),
    );
    this.privateSubnets.forEach(
      (s, i) =>
        new RouteTableAssociation(this, `PrivateRoute${i}`, {
          subnetId: s.id,
          routeTableId: privateRoutes.id,
        }),
    );

    for (const service of ['s3', 'dynamodb'] as const) {
      new VpcEndpoint(this, `${service === 's3' ? 'S3' : 'Dynamodb'}Endpoint`, {
        vpcId,
        serviceName: `com.amazonaws.${props.region}.${service}`,
        vpcEndpointType: 'Gateway',
        routeTableIds: [privateRoutes.id],
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

    const flowLogs = new CloudwatchLogGroup(this, 'FlowLogs', {
      name: `/vpc/${props.name}/flow-logs`,
      retentionInDays: props.flowLogRetentionDays ?? 365,
      kmsKeyId: props.kmsKey.arn,
    });
    const flowLogRole = new IamRole(this, 'FlowLogRole', {
      name: `${props.name}-flow-logs-${props.region}`,
      assumeRolePolicy: serviceTrustPolicy('vpc-flow-logs.amazonaws.com'),
    });
    new IamRolePolicy(this, 'FlowLogPolicy', {
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
    });
  }
}
