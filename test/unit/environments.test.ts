import { dev } from '../../environments/dev';
import { local } from '../../environments/local';
import {
  EnvironmentConfigError,
  loadEnvironments,
  validateEnvironment,
  validateEnvironments,
} from '../../environments';

function problemsFor(label: string, input: unknown): string {
  try {
    validateEnvironments({ [label]: input });
  } catch (error) {
    expect(error).toBeInstanceOf(EnvironmentConfigError);
    return (error as Error).message;
  }
  throw new Error(`expected ${label} to be rejected`);
}

const withDev = (patch: Record<string, unknown>) => ({ ...dev, ...patch });

describe('environments', () => {
  it('loads every declared environment with defaults applied', () => {
    const envs = loadEnvironments({});
    expect(Object.keys(envs)).toEqual(['shared', 'dev', 'prod', 'local']);
    expect(envs.prod?.lambda.provisionedConcurrency).toBe(2);
    expect(envs.dev?.lambda.provisionedConcurrency).toBe(1);
    expect(envs.local?.lambda.provisionedConcurrency).toBe(0);
    expect(envs.dev?.regions).toEqual(['eu-central-1', 'us-east-1']);
    expect(envs.dev?.lambda.timeoutSec).toBe(10);
    expect(envs.dev?.backend).toMatchObject({ type: 'terraform-cloud', hostname: 'app.terraform.io' });
  });

  it('points the local environment at the emulator endpoint it is given', () => {
    const env = validateEnvironment('local', local({ ESTATE_EMULATOR_ENDPOINT: 'http://127.0.0.1:4999' }));
    expect(env.emulator?.endpoint).toBe('http://127.0.0.1:4999');
    expect(env.backend.type).toBe('local');
  });

  it('accepts any number of regions from two up, in the order given', () => {
    const regions = ['us-west-2', 'eu-central-1', 'ap-southeast-1', 'us-east-1'];
    expect(validateEnvironment('dev', withDev({ regions })).regions).toEqual(regions);
  });

  const badConfigs: ReadonlyArray<[string, Record<string, unknown>, string]> = [
    [
      'an unknown region',
      { regions: ['eu-central-1', 'mars-north-1'] },
      'dev: regions[1]: received "mars-north-1"; expected an AWS region code',
    ],
    [
      'a duplicate region',
      { regions: ['eu-central-1', 'us-east-1', 'eu-central-1'] },
      'dev: regions[2]: received "eu-central-1"; expected each region once; it already appears at regions[0]',
    ],
    [
      'a single region',
      { regions: ['eu-central-1'] },
      'dev: regions: received ["eu-central-1"]; expected at least two regions',
    ],
    [
      'a malformed account id',
      { accountId: '2222-2222' },
      'dev: accountId: received "2222-2222"; expected a 12-digit AWS account id',
    ],
    [
      'a numeric account id',
      { accountId: 222222222222 },
      'dev: accountId: received 222222222222; expected a 12-digit AWS account id as a string',
    ],
    [
      'negative provisioned concurrency',
      { lambda: { provisionedConcurrency: -1 } },
      'dev: lambda.provisionedConcurrency: received -1; expected an integer provisioned concurrency between 0 and 1000',
    ],
    [
      'fractional provisioned concurrency',
      { lambda: { provisionedConcurrency: 1.5 } },
      'dev: lambda.provisionedConcurrency: received 1.5; expected an integer provisioned concurrency',
    ],
    [
      'a missing backend organisation',
      { backend: { type: 'terraform-cloud', project: 'estate-dev' } },
      'dev: backend.organization: received undefined (missing); expected the Terraform Cloud organisation name',
    ],
    [
      'an unknown backend type',
      { backend: { type: 's3', bucket: 'x' } },
      'dev: backend.type: received "s3"; expected a backend: { type: \'terraform-cloud\'',
    ],
    [
      'a local backend outside local',
      { backend: { type: 'local' } },
      'dev: backend.type: received "local"; expected \'terraform-cloud\'',
    ],
    [
      'a deploy role in another account',
      { deployRoleArn: 'arn:aws:iam::999999999999:role/estate-deploy' },
      'dev: deployRoleArn: received "arn:aws:iam::999999999999:role/estate-deploy"; expected a role in the environment\'s own account 222222222222',
    ],
    [
      'a missing deploy role',
      { deployRoleArn: undefined },
      'dev: deployRoleArn: received undefined (missing); expected the deploy role ARN every provider assumes',
    ],
    [
      'a malformed deploy role',
      { deployRoleArn: 'estate-deploy' },
      'dev: deployRoleArn: received "estate-deploy"; expected an IAM role ARN',
    ],
    [
      'an emulator outside local',
      { emulator: { endpoint: 'http://127.0.0.1:5000' } },
      'dev: emulator: received {"endpoint":"http://127.0.0.1:5000"}; expected no emulator',
    ],
    [
      'an unknown log retention',
      { lambda: { provisionedConcurrency: 1, logRetentionDays: 100 } },
      'dev: lambda.logRetentionDays: received 100; expected a CloudWatch Logs retention, one of 1, 3',
    ],
    [
      'a misspelt field',
      { regoins: ['eu-central-1', 'us-east-1'] },
      'dev: regoins: received ["eu-central-1","us-east-1"]; no such field (check its spelling)',
    ],
    [
      'an invalid DNS zone',
      { dns: { zoneName: 'Not A Zone', apiRecordName: 'api' } },
      'dev: dns.zoneName: received "Not A Zone"; expected a lower-case DNS name',
    ],
    [
      'memory out of range',
      { lambda: { provisionedConcurrency: 1, memoryMiB: 64 } },
      'dev: lambda.memoryMiB: received 64; expected an integer memory size in MiB between 128 and 10240',
    ],
  ];

  it.each(badConfigs)(
    'rejects %s with a message naming the field, the value and what is allowed',
    (_what, patch, message) => {
      expect(problemsFor('dev', withDev(patch))).toContain(message);
    },
  );

  it('reports every problem of every environment in one error', () => {
    const error = (() => {
      try {
        validateEnvironments({
          dev: withDev({ accountId: 'x', regions: ['eu-central-1', 'eu-central-1'] }),
          local: { ...local({}), emulator: { endpoint: 'not a url' } },
        });
      } catch (e) {
        return e as EnvironmentConfigError;
      }
      throw new Error('expected a rejection');
    })();
    expect(error.problems.map((p) => `${p.environment}:${p.path}`)).toEqual(
      expect.arrayContaining(['dev:accountId', 'dev:regions[1]', 'local:emulator.endpoint']),
    );
    expect(error.message).toMatch(/^Invalid environment config \(\d+ problems\):/);
  });

  it('refuses an environment registered under another name', () => {
    expect(problemsFor('prod', dev)).toContain('prod: name: received "dev"; expected "prod"');
  });
});
