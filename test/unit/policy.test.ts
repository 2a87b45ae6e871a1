import { assertLeastPrivilege, policyDocument, serviceTrustPolicy } from '../../modules/lib/policy';

describe('assertLeastPrivilege', () => {
  it('accepts named actions on named resources, and unscopable actions on *', () => {
    expect(() =>
      assertLeastPrivilege('f', [
        { actions: ['dynamodb:GetItem'], resources: ['arn:aws:dynamodb:eu-central-1:1:table/t'] },
        { actions: ['xray:PutTraceSegments'], resources: ['*'] },
      ]),
    ).not.toThrow();
  });

  it.each([
    [{ actions: ['*'], resources: ['arn:x'] }, 'grants "*"; expected named actions, never a wildcard'],
    [{ actions: ['s3:*'], resources: ['arn:x'] }, 'grants "s3:*"; expected named actions'],
    [{ actions: ['s3:PutObject'], resources: ['*'] }, 'grants "s3:PutObject" on "*"; expected resource ARNs'],
    [{ actions: [], resources: ['arn:x'] }, 'has no actions'],
    [{ actions: ['s3:GetObject'], resources: [] }, 'has no resources'],
  ])('refuses %j', (statement, message) => {
    expect(() => assertLeastPrivilege('fn', [statement])).toThrow(message);
  });
});

describe('policyDocument', () => {
  it('renders statements as an IAM policy with Allow by default', () => {
    expect(
      JSON.parse(policyDocument([{ sid: 'A', actions: ['sqs:SendMessage'], resources: ['arn:q'] }])),
    ).toEqual({
      Version: '2012-10-17',
      Statement: [{ Sid: 'A', Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: ['arn:q'] }],
    });
  });
});

describe('serviceTrustPolicy', () => {
  it('scopes a service to a source account (and resource) against the confused deputy', () => {
    const [statement] = (
      JSON.parse(
        serviceTrustPolicy('vpc-flow-logs.amazonaws.com', {
          sourceAccount: '222222222222',
          sourceArn: 'arn:aws:ec2:eu-central-1:222222222222:vpc-flow-log/*',
        }),
      ) as { Statement: unknown[] }
    ).Statement;
    expect(statement).toEqual({
      Effect: 'Allow',
      Principal: { Service: 'vpc-flow-logs.amazonaws.com' },
      Action: 'sts:AssumeRole',
      Condition: {
        StringEquals: { 'aws:SourceAccount': '222222222222' },
        ArnLike: { 'aws:SourceArn': 'arn:aws:ec2:eu-central-1:222222222222:vpc-flow-log/*' },
      },
    });
  });

  it('leaves conditions out only for the services whose documented trust has none', () => {
    expect(() => serviceTrustPolicy('lambda.amazonaws.com', 'documented-without-conditions')).toThrow(
      'lambda.amazonaws.com must be scoped to a source account',
    );
    expect(serviceTrustPolicy('ecr.amazonaws.com', 'documented-without-conditions')).not.toContain(
      'Condition',
    );
  });
});
