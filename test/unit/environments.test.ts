import { dev } from '../../environments/dev';
import { local } from '../../environments/local';
import { prod } from '../../environments/prod';
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
const withProd = (patch: Record<string, unknown>) => ({ ...prod, ...patch });
const withLocal = (patch: Record<string, unknown>) => ({ ...local({}), ...patch });
const terraformCloud = { type: 'terraform-cloud', organization: 'estate-platform', project: 'estate-dev' };

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
      'dev: deployRoleArn: received undefined (missing); expected the deploy role ARN that applies run under',
    ],
    [
      'a missing plan role',
      { planRoleArn: undefined },
      'dev: planRoleArn: received undefined (missing); expected the read-only plan role ARN that pull requests plan with',
    ],
    [
      'a plan role that is the deploy role',
      { planRoleArn: 'arn:aws:iam::222222222222:role/estate-deploy' },
      'dev: planRoleArn: received "arn:aws:iam::222222222222:role/estate-deploy"; expected a role other than deployRoleArn: a plan must never hold a role that can apply',
    ],
    [
      'a plan role in another account',
      { planRoleArn: 'arn:aws:iam::999999999999:role/estate-plan' },
      'dev: planRoleArn: received "arn:aws:iam::999999999999:role/estate-plan"; expected a role in the environment\'s own account 222222222222',
    ],
    [
      'no GitHub repository',
      { github: undefined },
      'dev: github: received undefined (missing); expected { repository: owner/name }',
    ],
    [
      "a repository without the ids GitHub's immutable subject carries",
      { github: { repository: 'estate-platform/estate' } },
      'dev: github.ids: received undefined (missing); expected { owner, repository }, the numeric ids',
    ],
    [
      'a repository id that is not a number',
      { github: { repository: 'estate-platform/estate', ids: { owner: '1', repository: 'estate' } } },
      'dev: github.ids.repository: received "estate"; expected the repository\'s numeric id as a string',
    ],
    [
      'an alarm e-mail that is not one',
      { alarms: { subscriptions: [{ protocol: 'email', endpoint: 'oncall' }] } },
      'dev: alarms.subscriptions[0].endpoint: received "oncall"; expected an e-mail address',
    ],
    [
      'an alarm web hook over plain HTTP',
      { alarms: { subscriptions: [{ protocol: 'https', endpoint: 'http://hooks.example.com/x' }] } },
      'dev: alarms.subscriptions[0].endpoint: received "http://hooks.example.com/x"; expected an https:// URL',
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
    [
      'a duplicate repository',
      { sharedServices: { repositories: ['runner', 'functions', 'runner'], consumerAccountIds: [] } },
      'dev: sharedServices.repositories[2]: received "runner"; expected each repository once; it already appears at sharedServices.repositories[0]',
    ],
    [
      'a duplicate consumer account',
      { sharedServices: { repositories: ['runner'], consumerAccountIds: ['333333333333', '333333333333'] } },
      'dev: sharedServices.consumerAccountIds[1]: received "333333333333"; expected each consumer account once; it already appears at sharedServices.consumerAccountIds[0]',
    ],
    [
      'a blank Terraform Cloud host name',
      { backend: { ...terraformCloud, hostname: '  ' } },
      'dev: backend.hostname: received "  "; expected the Terraform Cloud host name, a lower-case DNS name such as app.terraform.io',
    ],
    [
      'a Terraform Cloud host given as a URL',
      { backend: { ...terraformCloud, hostname: 'https://app.terraform.io' } },
      'dev: backend.hostname: received "https://app.terraform.io"; expected the Terraform Cloud host name',
    ],
    [
      'NaN memory',
      { lambda: { provisionedConcurrency: 1, memoryMiB: NaN } },
      'dev: lambda.memoryMiB: received NaN; expected an integer memory size in MiB between 128 and 10240',
    ],
    [
      'an infinite timeout',
      { lambda: { provisionedConcurrency: 1, timeoutSec: Infinity } },
      'dev: lambda.timeoutSec: received Infinity; expected an integer timeout in seconds between 1 and 900',
    ],
    [
      'minus infinite provisioned concurrency',
      { lambda: { provisionedConcurrency: -Infinity } },
      'dev: lambda.provisionedConcurrency: received -Infinity; expected an integer provisioned concurrency',
    ],
    [
      'no clock skew',
      { sync: { maxClockSkewSec: 0 } },
      'dev: sync.maxClockSkewSec: received 0; expected an integer clock skew in seconds between 1 and 3600',
    ],
    [
      'a clock skew over an hour',
      { sync: { maxClockSkewSec: 3601 } },
      'dev: sync.maxClockSkewSec: received 3601; expected an integer clock skew in seconds between 1 and 3600',
    ],
    [
      'a fractional clock skew',
      { sync: { maxClockSkewSec: 1.5 } },
      'dev: sync.maxClockSkewSec: received 1.5; expected an integer clock skew in seconds between 1 and 3600',
    ],
    [
      'a clock skew given as a string',
      { sync: { maxClockSkewSec: '300' } },
      'dev: sync.maxClockSkewSec: received "300"; expected an integer clock skew in seconds between 1 and 3600',
    ],
    [
      'no anti-entropy interval',
      { sync: { antiEntropyIntervalMin: 0 } },
      'dev: sync.antiEntropyIntervalMin: received 0; expected an integer anti-entropy interval in minutes between 1 and 1440',
    ],
    [
      'an anti-entropy interval over a day',
      { sync: { antiEntropyIntervalMin: 1441 } },
      'dev: sync.antiEntropyIntervalMin: received 1441; expected an integer anti-entropy interval in minutes between 1 and 1440',
    ],
    [
      'an unknown sync setting',
      { sync: { clockSkew: 300 } },
      'dev: sync.clockSkew: received 300; no such field (check its spelling)',
    ],
    [
      'a quota window that does not divide an hour',
      { quota: { syncWindowSec: 420 } },
      'dev: quota.syncWindowSec: received 420; expected whole minutes that divide an hour (60, 120, 180, 240, 300, 600, 900, 1800, 3600, ...)',
    ],
    [
      'a quota weight for a region the environment does not run',
      { quota: { weights: { 'sa-east-1': 2 } } },
      'dev: quota.weights.sa-east-1: received 2; expected a region of the environment',
    ],
    [
      'quota floors above the limit',
      { quota: { resources: { requests: { limitPerSec: 10, floorsPerSec: { 'eu-central-1': 11 } } } } },
      'dev: quota.resources.requests.floorsPerSec: received {"eu-central-1":11}; expected floors summing to at most limitPerSec',
    ],
    [
      'a fractional quota limit',
      { quota: { resources: { requests: { limitPerSec: 1.5 } } } },
      'dev: quota.resources.requests.limitPerSec: received 1.5; expected the global limit, a whole number of units per second from 0 to 1000000000',
    ],
  ];

  it.each(badConfigs)(
    'rejects %s with a message naming the field, the value and what is allowed',
    (_what, patch, message) => {
      expect(problemsFor('dev', withDev(patch))).toContain(message);
    },
  );

  const emulatorOnlySwitches: ReadonlyArray<[string, Record<string, unknown>, string]> = [
    [
      'per-region tables',
      { dynamodb: { replication: 'per-region' } },
      'prod: dynamodb.replication: received "per-region"; expected "global-tables": per-region tables exist only for the emulator (local), which cannot create global-table replicas',
    ],
    [
      'tables without deletion protection',
      { dynamodb: { deletionProtection: false } },
      'prod: dynamodb.deletionProtection: received false; expected true: unprotected tables exist only for the emulator (local), whose estate is torn down and a lost table simulated',
    ],
    [
      'secret replicas without their CMK',
      { features: { secretReplicaCmk: false } },
      "prod: features.secretReplicaCmk: received false; expected true: secret replicas under the AWS-managed key exist only for the emulator (local), which ignores a replica's key",
    ],
    [
      'no artifact replication',
      { features: { artifactReplication: false } },
      'prod: features.artifactReplication: received false; expected true: an unreplicated artifact bucket exists only for the emulator (local), which drops delete-marker replication and the SSE-KMS criteria',
    ],
    [
      'ignored redrive-policy drift',
      { features: { redrivePolicyDrift: false } },
      'prod: features.redrivePolicyDrift: received false; expected true: ignoring redrive-policy changes exists only for the emulator (local), which echoes the policy with spaces so every plan would show a change',
    ],
    [
      'ignored launch-template tag drift',
      { features: { launchTemplateTagsDrift: false } },
      "prod: features.launchTemplateTagsDrift: received false; expected true: ignoring a launch template's tag-specification changes exists only for the emulator (local), which echoes the default tags as a tag specification so every plan would show a change",
    ],
    [
      'disabled event-source mappings',
      { features: { eventSourceMappings: false } },
      'prod: features.eventSourceMappings: received false; expected true: disabled event-source mappings exist only for the emulator (local), which cannot run a function (no Docker); its event pump stands in',
    ],
    [
      'function environments without the CMK',
      { lambda: { ...prod.lambda, environmentCmk: false } },
      "prod: lambda.environmentCmk: received false; expected true: function environments without the CMK exist only for the emulator (local), which does not store a function's kms_key_arn",
    ],
    [
      'no registry replication',
      { sharedServices: { repositories: ['runner'], consumerAccountIds: [], registryReplication: false } },
      'prod: sharedServices.registryReplication: received false; expected true: no registry replication exists only for the emulator (local), from which the provider cannot read it back',
    ],
    [
      'runners without NAT',
      { network: { firstVpcCidr: '10.40.0.0/16', natGateways: 'none' } },
      'prod: network.natGateways: received "none"; expected "per-zone": runners without NAT exist only for the emulator (local): in AWS they could not reach GitHub (use \'one\' to save cost)',
    ],
    [
      'buckets that admit plain HTTP',
      { features: { tlsOnlyBuckets: false } },
      'prod: features.tlsOnlyBuckets: received false; expected true: buckets that admit plain HTTP exist only for the emulator (local), which serves plain HTTP and enforces bucket policies',
    ],
    [
      'destroyable keys, tables and zones',
      { features: { preventDestroy: false } },
      'prod: features.preventDestroy: received false; expected true: destroyable keys, tables and zones exist only for the emulator (local), whose estate the tests tear down',
    ],
    [
      'no custom domain',
      { dns: { ...prod.dns, customDomain: false } },
      'prod: dns.customDomain: received false; expected true: an API without a custom domain exists only for the emulator (local), where no certificate can be validated',
    ],
  ];

  it.each(emulatorOnlySwitches)('refuses %s outside the emulator, saying why', (_what, patch, message) => {
    expect(problemsFor('prod', withProd(patch))).toContain(message);
  });

  it('lets the local environment switch off all that the emulator cannot do', () => {
    const env = validateEnvironment('local', local({}));
    expect(env.dynamodb).toEqual({ replication: 'per-region', deletionProtection: false });
    expect(env.features).toEqual({
      secretReplicaCmk: false,
      artifactReplication: false,
      redrivePolicyDrift: false,
      launchTemplateTagsDrift: false,
      eventSourceMappings: false,
      preventDestroy: false,
      tlsOnlyBuckets: false,
    });
    expect(env.network).toMatchObject({ natGateways: 'none', interfaceEndpoints: false });
    expect([
      env.lambda.environmentCmk,
      env.sharedServices?.registryReplication,
      env.dns.customDomain,
    ]).toEqual([false, false, false]);
  });

  it.each(['not a url', 'ftp://x', 'http://', 'http:127.0.0.1:5000', 'http://under_score:5000'])(
    'refuses the emulator endpoint %j',
    (endpoint) => {
      expect(problemsFor('local', withLocal({ emulator: { endpoint } }))).toContain(
        `local: emulator.endpoint: received ${JSON.stringify(endpoint)}; expected the emulator endpoint, an http(s) URL with a host, e.g. http://127.0.0.1:5000`,
      );
    },
  );

  it.each([
    'http://127.0.0.1:5000',
    'https://emulator.internal:4566',
    'http://localhost:5000',
    'http://[::1]:5000',
  ])('accepts the emulator endpoint %s', (endpoint) => {
    expect(validateEnvironment('local', withLocal({ emulator: { endpoint } })).emulator?.endpoint).toBe(
      endpoint,
    );
  });

  it('defaults the sync settings, and each one alone', () => {
    const defaults = {
      maxClockSkewSec: 300,
      antiEntropyIntervalMin: 5,
      inboxMaxConcurrency: 5,
      mergeConcurrency: 4,
      inboxTimeoutSec: 120,
      inboxMemoryMiB: 512,
      antiEntropyTimeoutSec: 120,
      antiEntropyMemoryMiB: 256,
      sweepPageSize: 1000,
      settleSec: 60,
    };
    expect(validateEnvironment('dev', dev).sync).toEqual(defaults);
    expect(validateEnvironment('dev', withDev({ sync: { maxClockSkewSec: 60 } })).sync).toEqual({
      ...defaults,
      maxClockSkewSec: 60,
    });
    expect(validateEnvironment('dev', withDev({ sync: { antiEntropyIntervalMin: 1440 } })).sync).toEqual({
      ...defaults,
      antiEntropyIntervalMin: 1440,
    });
    expect(validateEnvironment('dev', withDev({ sync: { sweepPageSize: 20 } })).sync).toEqual({
      ...defaults,
      sweepPageSize: 20,
    });
  });

  it('bounds the message however large the values received', () => {
    const deep = Array.from({ length: 10_000 }).reduce<unknown>((inner) => ({ inner }), 1);
    const message = problemsFor(
      'dev',
      withDev({
        accountId: 'x'.repeat(1_000_000),
        dns: { zoneName: Array.from({ length: 100_000 }, (_, i) => i), apiRecordName: 'api' },
        lambda: { provisionedConcurrency: deep },
        ['k'.repeat(1_000_000)]: true,
      }),
    );
    expect(message.length).toBeLessThan(2_000);
    expect(message).toContain('dev: accountId: received "xxxxxxxxxx');
    expect(message).toContain('dev: dns.zoneName: received [0,1,2,3,4,5,6,7,8,9,');
    expect(message).toContain('dev: lambda.provisionedConcurrency: received {"inner":{"inner":');
    expect(message).toContain('dev: kkkkkkkkkk');
  });

  it("refuses a secrets replicator's document at synth, naming the region and the field, and a region it does not have", () => {
    const message = problemsFor(
      'dev',
      withDev({
        secrets: {
          replication: {
            'eu-central-1': { destinations: [{ region: 'us-east-1', filters: { 'app/**': 's/a/b/p' } }] },
            'ap-south-1': { destinations: [{ region: 'us-east-1', filters: { 'app/**': '' } }] },
          },
        },
      }),
    );
    expect(message).toContain(
      'dev: secrets.replication.eu-central-1: received "(a replicator document)"; destinations[0] (us-east-1).filters["app/**"]: line 1, column 7: flag p (print): not supported',
    );
    expect(message).toContain(
      'dev: secrets.replication.ap-south-1: received "ap-south-1"; expected a region of the environment',
    );
  });

  it("refuses a runner document at synth, naming the field: a cap the quota does not hold, regions not the environment's", () => {
    const message = problemsFor(
      'dev',
      withDev({
        runners: {
          document: {
            regions: [{ region: 'eu-central-1', priority: 1, capacity: 5 }],
            concurrencyResource: 'no-such-resource',
          },
        },
      }),
    );
    expect(message).toContain(
      'dev: runners.document.concurrencyResource: received "no-such-resource"; expected a resource of quota.resources',
    );
    expect(message).toContain(
      'dev: runners.document.regions: received ["eu-central-1"]; expected exactly the environment\'s regions',
    );
  });

  it('refuses an ec2 runner type in the Default runner group: labels do not keep other repositories off a Docker host', () => {
    const message = problemsFor(
      'dev',
      withDev({
        runners: {
          document: { runnerTypes: [{ name: 'docker', labels: ['self-hosted', 'docker'], launch: 'ec2' }] },
        },
      }),
    );
    expect(message).toContain(
      'dev: runners.document: received "(the runner document)"; document.runnerTypes.0.runnerGroup: expected a runner group other than Default for an ec2 type',
    );
  });

  it('lists the first 20 of many problems in its message and keeps them all', () => {
    const regions = Array.from({ length: 100_000 }, () => 'eu-central-1');
    let error: EnvironmentConfigError | undefined;
    try {
      validateEnvironments({ dev: withDev({ regions, secrets: { replication: {} } }) });
    } catch (e) {
      error = e as EnvironmentConfigError;
    }
    expect(error?.problems).toHaveLength(99_999);
    expect(error?.message.length).toBeLessThan(5_000);
    expect(error?.message).toContain('  - and 99979 more');
  });

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
