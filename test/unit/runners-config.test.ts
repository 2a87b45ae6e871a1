import {
  parseRunnerConfig,
  RunnerConfigError,
  runnerConfigFromJson,
  runnerTypeFor,
} from '../../runtime/runners/config';

const BASE = {
  regions: [
    { region: 'us-east-1', priority: 2, capacity: 10 },
    { region: 'eu-central-1', priority: 1, capacity: 20 },
  ],
  runnerTypes: [
    { name: 'standard', labels: ['Self-Hosted', 'Linux'] },
    {
      name: 'docker',
      labels: ['self-hosted', 'linux', 'docker'],
      launch: 'ec2',
      runnerGroup: 'docker-trusted',
    },
  ],
};

const issuesOf = (input: unknown): readonly string[] => {
  try {
    parseRunnerConfig(input);
  } catch (error) {
    if (error instanceof RunnerConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected the configuration to be refused');
};

describe('the runner configuration', () => {
  it('sorts regions by priority, lower-cases names and labels, and fills the defaults', () => {
    const config = parseRunnerConfig({
      ...BASE,
      organizations: { ACME: 'us-east-1' },
      repositories: { 'Acme/Mobile': 'eu-central-1' },
    });
    expect(config.regions.map((r) => r.region)).toEqual(['eu-central-1', 'us-east-1']);
    expect(config.defaultRegion).toBe('eu-central-1');
    expect(config.organizations).toEqual({ acme: 'us-east-1' });
    expect(config.repositories).toEqual({ 'acme/mobile': 'eu-central-1' });
    expect(config.runnerTypes[0]?.labels).toEqual(['self-hosted', 'linux']);
    expect(config.regions[0]?.spillover).toEqual({
      queueDepth: 100,
      concurrencyPercent: 80,
      errorRate: 0.05,
    });
    expect(config.regions[0]?.recover).toEqual({ queueDepth: 50, concurrencyPercent: 40, errorRate: 0.025 });
    expect(config.cacheDistance).toEqual({ 'eu-central-1': ['us-east-1'], 'us-east-1': ['eu-central-1'] });
    expect(config.maxBodyBytes).toBe(1_048_576);
  });

  it('refuses __proto__ as an organisation (no login), and keeps the homes off the prototype', () => {
    const organizations = JSON.parse('{"__proto__": "us-east-1"}') as object;
    expect(issuesOf({ ...BASE, organizations })).toEqual([
      'runners.organizations: expected keys that are GitHub logins',
    ]);
    const config = parseRunnerConfig({ ...BASE, organizations: { constructor: 'us-east-1' } });
    expect(Object.getPrototypeOf(config.organizations)).toBeNull();
    expect(config.organizations).toEqual({ constructor: 'us-east-1' });
  });

  it.each<[string, unknown, RegExp]>([
    ['no regions', { ...BASE, regions: [] }, /^runners\.regions: expected at least one region$/],
    [
      'a region twice',
      { ...BASE, regions: [BASE.regions[0], { ...BASE.regions[0], priority: 3 }] },
      /^runners\.regions: expected each region once$/,
    ],
    [
      'two regions of one priority',
      { ...BASE, regions: [BASE.regions[0], { ...BASE.regions[1], priority: 2 }] },
      /expected distinct priorities/,
    ],
    [
      'a recovery threshold above the spillover one',
      {
        ...BASE,
        regions: [
          {
            ...BASE.regions[1],
            spillover: { queueDepth: 10, concurrencyPercent: 80, errorRate: 0.05 },
            recover: { queueDepth: 11, concurrencyPercent: 40, errorRate: 0.01 },
          },
        ],
      },
      /^runners\.regions\.0\.recover\.queueDepth: expected at most the spillover threshold/,
    ],
    [
      'a recovery threshold of 0 under a spillover above it (it would never clear)',
      {
        ...BASE,
        regions: [
          {
            ...BASE.regions[1],
            spillover: { queueDepth: 10, concurrencyPercent: 80, errorRate: 0.05 },
            recover: { queueDepth: 0, concurrencyPercent: 40, errorRate: 0.01 },
          },
        ],
      },
      /^runners\.regions\.0\.recover\.queueDepth: expected above 0/,
    ],
    [
      'a home outside the regions',
      { ...BASE, organizations: { acme: 'eu-west-1' } },
      /^runners\.organizations: expected home regions among/,
    ],
    [
      'an organisation that is no login',
      { ...BASE, organizations: { 'a b': 'us-east-1' } },
      /^runners\.organizations: expected keys that are GitHub logins/,
    ],
    [
      'one organisation twice, by case',
      { ...BASE, organizations: { acme: 'us-east-1', ACME: 'eu-central-1' } },
      /expected each name once/,
    ],
    [
      'a repository that is not owner/name',
      { ...BASE, repositories: { acme: 'us-east-1' } },
      /^runners\.repositories: expected keys that are owner\/name/,
    ],
    [
      'an unknown default region',
      { ...BASE, defaultRegion: 'eu-west-1' },
      /^runners\.defaultRegion: expected one of the configured regions/,
    ],
    [
      'a label with a comma',
      { ...BASE, runnerTypes: [{ name: 'x', labels: ['a,b'] }] },
      /^runners\.runnerTypes\.0\.labels: expected 1-100 printable/,
    ],
    [
      'two runner types of one name',
      { ...BASE, runnerTypes: [BASE.runnerTypes[0], BASE.runnerTypes[0]] },
      /^runners\.runnerTypes: expected distinct names/,
    ],
    [
      'an unknown launch',
      { ...BASE, runnerTypes: [{ name: 'x', labels: ['a'], launch: 'lambda' }] },
      /^runners\.runnerTypes\.0\.launch/,
    ],
    [
      'a cache distance missing a region',
      { ...BASE, cacheDistance: { 'us-east-1': [] } },
      /^runners\.cacheDistance\.us-east-1: expected every other configured region exactly once/,
    ],
    [
      'a queued timeout past the lease',
      { ...BASE, queuedTimeoutSec: 900, leaseTtlSec: 600 },
      /^runners\.queuedTimeoutSec: expected less than leaseTtlSec/,
    ],
    [
      'an unknown field',
      { ...BASE, routing: {} },
      /^runners\.\(document\): expected no field named routing$/,
    ],
    [
      'a fractional capacity',
      { ...BASE, regions: [{ ...BASE.regions[0], capacity: 1.5 }] },
      /^runners\.regions\.0\.capacity: expected a capacity in runners, a whole number/,
    ],
    [
      'NaN as a threshold',
      {
        ...BASE,
        regions: [
          { ...BASE.regions[0], spillover: { queueDepth: NaN, concurrencyPercent: 1, errorRate: 0 } },
        ],
      },
      /^runners\.regions\.0\.spillover\.queueDepth/,
    ],
  ])('refuses %s, naming the field', (_name, input, expected) => {
    const issues = issuesOf(input);
    expect(issues.some((issue) => expected.test(issue))).toBe(true);
  });

  it('names the field (a name is part of its path) but never quotes a value', () => {
    const issues = issuesOf({ ...BASE, organizations: { acme: 'nowhere-1' }, maxBodyBytes: 123456789012 });
    expect(issues.join('\n')).toContain('runners.organizations.acme');
    expect(issues.join('\n')).not.toContain('nowhere-1');
    expect(issues.join('\n')).not.toContain('123456789012');
  });

  it('names unreadable JSON as such', () => {
    expect(() => runnerConfigFromJson('{not json')).toThrow(
      /RUNNERS_CONFIG: expected the runner configuration as JSON/,
    );
  });

  it('gives a job the first runner type holding all of its labels, and none to a job naming no label', () => {
    const config = parseRunnerConfig(BASE);
    expect(runnerTypeFor(config, ['self-hosted'])?.name).toBe('standard');
    expect(runnerTypeFor(config, ['self-hosted', 'docker'])?.name).toBe('docker');
    expect(runnerTypeFor(config, ['self-hosted', 'gpu'])).toBeUndefined();
    expect(runnerTypeFor(config, [])).toBeUndefined();
  });
});
