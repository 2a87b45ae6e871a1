import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetAccountSettingsCommand, GetProvisionedConcurrencyConfigCommand } from '@aws-sdk/client-lambda';
import { loadEnvironments } from '../../environments';
import {
  PreflightError,
  checkDnsDelegation,
  checkLambdaConcurrency,
  delegationWriter,
  lambdaAccount,
  parseNameServers,
  provisionedConcurrencyAsks,
  type LambdaAccount,
  type LambdaSender,
  type ProvisionedConcurrencyAsk,
} from '../../scripts/lib/preflight';
import { synthesize } from '../../scripts/lib/synth';

const environments = loadEnvironments({});
const deployed = Object.values(environments).filter((environment) => !environment.emulator);
const { dev, prod } = environments;
if (!dev || !prod) throw new Error('missing environments');

/** A Lambda account with these limits per region and this provisioned concurrency per function alias. */
function account(
  limits: Record<string, { concurrentExecutions: number; unreserved: number }>,
  provisioned: Record<string, number> = {},
): LambdaAccount & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async limits(region) {
      const found = limits[region];
      if (!found) throw new Error(`no limits for ${region}`);
      return found;
    },
    async provisioned(region, functionName, qualifier) {
      asked.push(`${region}/${functionName}:${qualifier}`);
      return provisioned[`${region}/${functionName}:${qualifier}`] ?? 0;
    },
  };
}

const ask = (region: string, executions: number, functionName = 'dev-health'): ProvisionedConcurrencyAsk => ({
  stack: `dev-${region}`,
  region,
  functionName,
  qualifier: 'live',
  executions,
});

async function preflightFailure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PreflightError) return error.message;
    throw error;
  }
  throw new Error('expected the preflight to fail');
}

describe('provisionedConcurrencyAsks', () => {
  it("reads what dev's synthesized stacks provision, per region, with the function and alias resolved", () => {
    const stacks = synthesize(deployed, mkdtempSync(join(tmpdir(), 'preflight-')));
    const asks = stacks
      .filter((stack) => stack.name.startsWith('dev-'))
      .flatMap((stack) =>
        provisionedConcurrencyAsks(
          stack.name,
          JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')),
        ),
      );
    const ask = (region: string, functionName: string) => ({
      stack: `dev-${region}`,
      region,
      functionName,
      qualifier: 'live',
      executions: dev.lambda.provisionedConcurrency,
    });
    expect(asks).toEqual([
      ask('eu-central-1', 'dev-health'),
      ask('eu-central-1', 'dev-runners-router'),
      ask('us-east-1', 'dev-health'),
      ask('us-east-1', 'dev-runners-router'),
    ]);
  });

  it("takes an aliased provider's region, and leaves a name it cannot resolve unnamed", () => {
    const config = {
      provider: { aws: [{ region: 'eu-central-1' }, { alias: 'us-east-1', region: 'us-east-1' }] },
      resource: {
        aws_lambda_provisioned_concurrency_config: {
          Pc: {
            provider: 'aws.us-east-1',
            function_name: '${aws_lambda_function.Missing.function_name}',
            qualifier: 'live',
            provisioned_concurrent_executions: 3,
          },
        },
      },
    };
    expect(provisionedConcurrencyAsks('s', config)).toEqual([
      { stack: 's', region: 'us-east-1', functionName: undefined, qualifier: 'live', executions: 3 },
    ]);
  });

  it('refuses a configuration it cannot place in a region', () => {
    const config = {
      provider: { aws: [{ region: 'eu-central-1' }] },
      resource: {
        aws_lambda_provisioned_concurrency_config: {
          Pc: { provider: 'aws.elsewhere', provisioned_concurrent_executions: 1 },
        },
      },
    };
    expect(() => provisionedConcurrencyAsks('s', config)).toThrow(
      's: aws_lambda_provisioned_concurrency_config.Pc has no region (provider elsewhere)',
    );
  });
});

describe('checkLambdaConcurrency', () => {
  it('passes when at least 100 concurrent executions stay unreserved, and says what it found', async () => {
    const lines = await checkLambdaConcurrency(
      [ask('eu-central-1', 1)],
      account({ 'eu-central-1': { concurrentExecutions: 1000, unreserved: 101 } }),
      'dev',
    );
    expect(lines).toEqual([
      'Lambda concurrency in eu-central-1: ok, account limit 1000, 101 unreserved, the rollout provisions 1 more ' +
        '(dev-health:live +1), 100 stay unreserved',
    ]);
  });

  it('fails a new account (limit 10) naming the region, limit, unreserved, need and both fixes', async () => {
    const message = await preflightFailure(
      checkLambdaConcurrency(
        [ask('eu-central-1', 1)],
        account({ 'eu-central-1': { concurrentExecutions: 10, unreserved: 10 } }),
        'dev',
      ),
    );
    expect(message).toBe(
      'Lambda concurrency in eu-central-1 is too low for this rollout: the account limit is 10 concurrent ' +
        'executions, 10 of them unreserved, and the stacks provision 1 more (dev-health:live +1); AWS keeps at ' +
        'least 100 unreserved, and 10 - 1 = 9. Fix: request a quota increase for Lambda "Concurrent executions" ' +
        '(quota code L-B99A9384) in eu-central-1 to at least 101, or lower lambda.provisionedConcurrency in ' +
        'environments/dev.ts.',
    );
  });

  it('counts only the increase over what the same function alias already has provisioned', async () => {
    const existing = account(
      { 'eu-central-1': { concurrentExecutions: 1000, unreserved: 100 } },
      { 'eu-central-1/dev-health:live': 2 },
    );
    await expect(checkLambdaConcurrency([ask('eu-central-1', 2)], existing, 'dev')).resolves.toEqual([
      expect.stringContaining('the rollout provisions 0 more (dev-health:live +0), 100 stay unreserved'),
    ]);
    expect(existing.asked).toEqual(['eu-central-1/dev-health:live']);
    await expect(
      checkLambdaConcurrency([ask('eu-central-1', 3)], existing, 'dev').catch((e: Error) => e.message),
    ).resolves.toContain('the stacks provision 1 more (dev-health:live +1)');
  });

  it('counts in full what it cannot name, and reports every failing region at once', async () => {
    const unnamed = { stack: 'dev-us-east-1', region: 'us-east-1', executions: 5 };
    const message = await preflightFailure(
      checkLambdaConcurrency(
        [ask('eu-central-1', 1), unnamed],
        account({
          'eu-central-1': { concurrentExecutions: 50, unreserved: 50 },
          'us-east-1': { concurrentExecutions: 104, unreserved: 104 },
        }),
        'dev',
      ),
    );
    expect(message.split('\n')).toEqual([
      expect.stringMatching(/^Lambda concurrency in eu-central-1 .* to at least 101,/),
      expect.stringMatching(/^Lambda concurrency in us-east-1 .*\(dev-us-east-1:\? \+5\).* to at least 105,/),
    ]);
  });

  it('says it skipped when the stacks provision nothing', async () => {
    await expect(checkLambdaConcurrency([], account({}), 'shared')).resolves.toEqual([
      'Lambda concurrency: skipped, the stacks of this rollout ask for no provisioned concurrency',
    ]);
  });
});

describe('lambdaAccount', () => {
  /** A LambdaClient stand-in answering the two calls the preflight makes. */
  const sender = (answers: { settings?: unknown; provisioned?: () => Promise<unknown> }): LambdaSender => {
    const fake = {
      send: async (command: unknown) => {
        if (command instanceof GetAccountSettingsCommand) return answers.settings;
        if (command instanceof GetProvisionedConcurrencyConfigCommand) {
          expect(command.input).toEqual({ FunctionName: 'dev-health', Qualifier: 'live' });
          return answers.provisioned?.();
        }
        throw new Error('unexpected command');
      },
    };
    return fake as unknown as LambdaSender;
  };
  const notFound = (name: string) => Object.assign(new Error(name), { name });

  it('reads the account limit and what is unreserved, one client per region', async () => {
    const regions: string[] = [];
    const client = sender({
      settings: { AccountLimit: { ConcurrentExecutions: 1000, UnreservedConcurrentExecutions: 990 } },
    });
    const lambda = lambdaAccount((region) => {
      regions.push(region);
      return client;
    });
    await expect(lambda.limits('eu-central-1')).resolves.toEqual({
      concurrentExecutions: 1000,
      unreserved: 990,
    });
    await lambda.limits('eu-central-1');
    expect(regions).toEqual(['eu-central-1']);
  });

  it('refuses account settings without limits', async () => {
    const lambda = lambdaAccount(() => sender({ settings: {} }));
    await expect(lambda.limits('eu-central-1')).rejects.toThrow(
      'GetAccountSettings in eu-central-1 returned no concurrency limits',
    );
  });

  it('reads provisioned concurrency as requested, 0 for a function or configuration not there yet', async () => {
    const read = (provisioned: () => Promise<unknown>) =>
      lambdaAccount(() => sender({ provisioned })).provisioned('eu-central-1', 'dev-health', 'live');
    await expect(read(async () => ({ RequestedProvisionedConcurrentExecutions: 2 }))).resolves.toBe(2);
    await expect(read(async () => Promise.reject(notFound('ResourceNotFoundException')))).resolves.toBe(0);
    await expect(
      read(async () => Promise.reject(notFound('ProvisionedConcurrencyConfigNotFoundException'))),
    ).resolves.toBe(0);
    await expect(read(async () => Promise.reject(notFound('AccessDeniedException')))).rejects.toThrow(
      'AccessDeniedException',
    );
  });
});

describe('checkDnsDelegation', () => {
  const expected = ['ns-1.awsdns-01.org', 'ns-2.awsdns-02.com'];
  const answering = (answer: string[] | Error) => ({
    resolveNs: async (name: string) => {
      expect(name).toBe('dev.estate.example.com');
      if (answer instanceof Error) throw answer;
      return answer;
    },
  });
  const check = (answer: string[] | Error) =>
    checkDnsDelegation({
      zoneName: 'dev.estate.example.com',
      expected,
      writer: 'prod-global writes it',
      dns: answering(answer),
      resolvers: ['1.1.1.1', '8.8.8.8'],
    });
  const failing = (code: string) =>
    Object.assign(new Error(`queryNs ${code} dev.estate.example.com`), { code });

  it('passes when public DNS answers the zone name servers, whatever their case and trailing dots', async () => {
    await expect(check(['NS-2.awsdns-02.com.', 'ns-1.awsdns-01.org.'])).resolves.toBe(
      "DNS delegation of dev.estate.example.com: ok, public DNS answers the zone's name servers " +
        'ns-1.awsdns-01.org, ns-2.awsdns-02.com',
    );
  });

  it('fails naming the zone, the name servers expected, those found and who writes the delegation', async () => {
    const message = await preflightFailure(check(['ns-9.old-zone.net']));
    expect(message).toBe(
      'DNS delegation of dev.estate.example.com is missing or wrong: expected the name servers of its Route 53 ' +
        'zone (ns-1.awsdns-01.org, ns-2.awsdns-02.com); public DNS gives ns-9.old-zone.net. prod-global writes it. ' +
        'The regional stacks validate their certificates through this zone and would wait until Terraform gives up. ' +
        "Once the delegation is written, resolvers may still answer that it is missing for up to the zone's " +
        "negative TTL (the minimum of its parent zone's SOA record), and an old one for its NS records' TTL.",
    );
  });

  it('fails on a partial delegation too', async () => {
    await expect(preflightFailure(check(['ns-1.awsdns-01.org']))).resolves.toContain(
      'public DNS gives ns-1.awsdns-01.org.',
    );
  });

  it('says NXDOMAIN when nothing delegates the name, and that resolvers may cache that answer', async () => {
    const message = await preflightFailure(check(failing('ENOTFOUND')));
    expect(message).toContain(
      'is missing or wrong: expected the name servers of its Route 53 zone (ns-1.awsdns-01.org, ' +
        'ns-2.awsdns-02.com); public DNS gives NXDOMAIN (the name does not exist in public DNS: nothing delegates it)',
    );
    expect(message).toContain("for up to the zone's negative TTL");
    await expect(preflightFailure(check(failing('ENODATA')))).resolves.toContain(
      'is missing or wrong: expected the name servers of its Route 53 zone (ns-1.awsdns-01.org, ' +
        'ns-2.awsdns-02.com); public DNS gives no NS records.',
    );
  });

  it('tells resolvers it could not ask (timeout, refused, SERVFAIL) from a delegation that is wrong', async () => {
    const because = {
      ETIMEOUT: 'no answer (the queries timed out)',
      ECONNREFUSED: 'connection refused',
      ESERVFAIL:
        'SERVFAIL (the resolvers failed to get an answer: a network problem on their side, or a delegation ' +
        'to name servers that do not serve the zone)',
      EREFUSED: 'the resolvers refused the query',
      ECONNRESET: 'a failed lookup (ECONNRESET)',
    };
    for (const [code, what] of Object.entries(because)) {
      const message = await preflightFailure(check(failing(code)));
      expect(message).toBe(
        'DNS delegation of dev.estate.example.com could not be checked: could not ask the public resolvers ' +
          `1.1.1.1, 8.8.8.8: ${what}; is outbound DNS blocked? (ESTATE_DNS_RESOLVERS=<ip>,<ip> names ` +
          'resolvers this machine can reach.) Nothing was concluded about the delegation.',
      );
      expect(message).not.toContain('missing or wrong');
    }
  });
});

describe('delegationWriter', () => {
  it("names the parent environment's global stack for a child zone", () => {
    expect(delegationWriter(dev, deployed)).toBe(
      "prod-global writes it, as the NS record of dev.estate.example.com in prod's zone estate.example.com, " +
        "from the name servers it reads in dev-global's state: apply it " +
        '(npm run rollout -- prod --apply --only prod-global), then run this rollout again',
    );
  });

  it('names the registrar for an apex zone', () => {
    expect(delegationWriter(prod, deployed)).toMatch(
      /^estate\.example\.com is an apex zone: its registrar must list these name servers/,
    );
  });
});

describe('parseNameServers', () => {
  it("reads the global stack's name_servers output", () => {
    expect(parseNameServers('["ns-1.awsdns-01.org","ns-2.awsdns-02.com"]\n', 'dev-global')).toEqual([
      'ns-1.awsdns-01.org',
      'ns-2.awsdns-02.com',
    ]);
  });

  it('says the global stack must be applied first when it has no such output', () => {
    expect(() => parseNameServers('{}', 'dev-global')).toThrow(
      'dev-global has no name_servers output (got "{}"): apply dev-global first',
    );
    expect(() => parseNameServers('', 'dev-global')).toThrow('apply dev-global first');
  });
});
