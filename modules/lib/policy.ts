/** One IAM policy statement, as constructs pass them to each other. */
export interface PolicyStatement {
  /** Optional statement id. */
  readonly sid?: string;
  /** Default: Allow. */
  readonly effect?: 'Allow' | 'Deny';
  /** Actions, e.g. `dynamodb:GetItem`; a bare `*` is never allowed. */
  readonly actions: readonly string[];
  /** Resource ARNs (tokens allowed); `*` only for actions AWS cannot scope to a resource. */
  readonly resources: readonly string[];
  /** IAM condition block, e.g. `{ StringEquals: { 'aws:SourceAccount': '123456789012' } }`. */
  readonly conditions?: Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;
}

/** Actions that AWS does not let a policy scope to a resource, so they may be granted on `*`. */
export const UNSCOPABLE_ACTIONS: ReadonlySet<string> = new Set([
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DeleteNetworkInterface',
  'ecr:GetAuthorizationToken',
  'cloudwatch:PutMetricData',
  'secretsmanager:ListSecrets',
  'ecs:DiscoverPollEndpoint',
  // Its resource is a container instance, which Fargate tasks have none of: scope it by `ecs:cluster`.
  'ecs:ListTasks',
]);

/** Throws when a statement grants `*` actions, or `*` resources to actions that can be scoped. */
export function assertLeastPrivilege(owner: string, statements: readonly PolicyStatement[]): void {
  statements.forEach((statement, index) => {
    if (statement.actions.length === 0) {
      throw new Error(`${owner}: statement ${index} has no actions; expected at least one action`);
    }
    if (statement.resources.length === 0) {
      throw new Error(`${owner}: statement ${index} has no resources; expected at least one resource ARN`);
    }
    for (const action of statement.actions) {
      if (action === '*' || action.endsWith(':*')) {
        throw new Error(
          `${owner}: statement ${index} grants "${action}"; expected named actions, never a wildcard`,
        );
      }
      if (statement.resources.includes('*') && !UNSCOPABLE_ACTIONS.has(action)) {
        throw new Error(
          `${owner}: statement ${index} grants "${action}" on "*"; expected resource ARNs (only ${[...UNSCOPABLE_ACTIONS].join(', ')} may use "*")`,
        );
      }
    }
  });
}

/** Renders statements as an IAM policy document (JSON; cdktf resolves embedded tokens). */
export function policyDocument(statements: readonly PolicyStatement[]): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: statements.map((s) => ({
      ...(s.sid ? { Sid: s.sid } : {}),
      Effect: s.effect ?? 'Allow',
      Action: [...s.actions],
      Resource: [...s.resources],
      ...(s.conditions ? { Condition: s.conditions } : {}),
    })),
  });
}

/**
 * Services whose documented role trust carries no condition, and which may not send `aws:SourceAccount`:
 * ECR's repository creation templates (cross-account replication would stop creating repositories).
 */
export const TRUST_WITHOUT_DOCUMENTED_CONDITIONS: ReadonlySet<string> = new Set([
  'ecr.amazonaws.com',
  // An instance profile's role: EC2 assumes it only for instances this account launches with it (iam:PassRole
  // guards that), and documents no source keys for it.
  'ec2.amazonaws.com',
]);

/** Who a service may act for when it assumes a role: the confused-deputy guard of a trust policy. */
export interface DeputyScope {
  /** The account the service must be acting for (`aws:SourceAccount`). */
  readonly sourceAccount: string;
  /** The resource it must be acting for (`aws:SourceArn`, wildcards allowed). Default: every resource of the account. */
  readonly sourceArn?: string;
}

/**
 * Trust policy letting one AWS service principal (e.g. `lambda.amazonaws.com`) assume a role, only while
 * acting for this account (and resource), so another account cannot make the service use the role.
 * `documented-without-conditions` is for the services whose documented trust has none (they may not send
 * the keys); the policy rules list them.
 */
export function serviceTrustPolicy(
  service: string,
  scope: DeputyScope | 'documented-without-conditions',
): string {
  if (scope === 'documented-without-conditions' && !TRUST_WITHOUT_DOCUMENTED_CONDITIONS.has(service))
    throw new Error(`serviceTrustPolicy: ${service} must be scoped to a source account (confused deputy)`);
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { Service: service },
        Action: 'sts:AssumeRole',
        ...(scope === 'documented-without-conditions'
          ? {}
          : {
              Condition: {
                StringEquals: { 'aws:SourceAccount': scope.sourceAccount },
                ...(scope.sourceArn ? { ArnLike: { 'aws:SourceArn': scope.sourceArn } } : {}),
              },
            }),
      },
    ],
  });
}
