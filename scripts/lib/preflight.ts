// Checks a rollout makes before it applies anything that would fail slowly: Lambda provisioned concurrency the
// account cannot grant (Terraform fails after creating the function), and a DNS zone nobody delegated to
// (certificate validation waits up to 75 minutes). Pure cores with injected clients; adapters at the end.
import { Resolver } from 'node:dns/promises';
import {
  GetAccountSettingsCommand,
  GetProvisionedConcurrencyConfigCommand,
  type GetAccountSettingsCommandOutput,
  type GetProvisionedConcurrencyConfigCommandOutput,
} from '@aws-sdk/client-lambda';
import type { EnvironmentConfig } from '../../environments';

/** A check that found the rollout cannot succeed: its message says what was expected, what was found, the fix. */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
}

// ---------------------------------------------------------------------------------------------------------
// Lambda concurrency
// ---------------------------------------------------------------------------------------------------------

/** AWS refuses provisioned or reserved concurrency that leaves fewer unreserved concurrent executions. */
export const MIN_UNRESERVED_CONCURRENCY = 100;
/** Service Quotas code of Lambda "Concurrent executions". */
export const CONCURRENT_EXECUTIONS_QUOTA = 'L-B99A9384';

/** Provisioned concurrency a synthesized stack asks for, on one function alias. */
export interface ProvisionedConcurrencyAsk {
  readonly stack: string;
  readonly region: string;
  /** The function and qualifier when the configuration names them (references within the stack resolved). */
  readonly functionName?: string;
  readonly qualifier?: string;
  readonly executions: number;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A literal, or what `${<type>.<name>.<attribute>}` refers to when that is a literal of the same stack. */
function resolveLiteral(value: unknown, resources: Json): string | undefined {
  if (typeof value !== 'string') return undefined;
  const reference = /^\$\{([\w-]+)\.([\w-]+)\.([\w-]+)\}$/.exec(value);
  if (!reference) return value.includes('${') ? undefined : value;
  const [, type = '', name = '', attribute = ''] = reference;
  const resource = (resources[type] as Json | undefined)?.[name];
  const target = isObject(resource) ? resource[attribute] : undefined;
  return typeof target === 'string' && !target.includes('${') ? target : undefined;
}

/** The region of each AWS provider of a stack by alias (`''` for the default one). */
function providerRegions(config: Json): Map<string, string> {
  const providers = (config.provider as Json | undefined)?.aws;
  const list = Array.isArray(providers) ? providers : isObject(providers) ? [providers] : [];
  return new Map(
    list
      .filter(isObject)
      .filter((p) => typeof p.region === 'string')
      .map((p) => [typeof p.alias === 'string' ? p.alias : '', p.region as string]),
  );
}

/**
 * The provisioned concurrency a synthesized stack (its `cdk.tf.json`) asks for: every
 * `aws_lambda_provisioned_concurrency_config`, in the region of its provider.
 */
export function provisionedConcurrencyAsks(stack: string, config: unknown): ProvisionedConcurrencyAsk[] {
  if (!isObject(config)) return [];
  const resources = isObject(config.resource) ? config.resource : {};
  const configs = resources.aws_lambda_provisioned_concurrency_config;
  if (!isObject(configs)) return [];
  const regions = providerRegions(config);
  return Object.entries(configs).flatMap(([id, resource]) => {
    if (!isObject(resource)) return [];
    const alias = typeof resource.provider === 'string' ? resource.provider.replace(/^aws\.?/, '') : '';
    const region = regions.get(alias);
    const executions = resource.provisioned_concurrent_executions;
    if (!region || typeof executions !== 'number') {
      throw new PreflightError(
        `${stack}: aws_lambda_provisioned_concurrency_config.${id} has no region (provider ${alias || 'default'}) ` +
          `or no numeric provisioned_concurrent_executions (${JSON.stringify(executions)})`,
      );
    }
    return [
      {
        stack,
        region,
        functionName: resolveLiteral(resource.function_name, resources),
        qualifier: resolveLiteral(resource.qualifier, resources),
        executions,
      },
    ];
  });
}

/** What the preflight reads of a Lambda account. */
export interface LambdaAccount {
  /** `GetAccountSettings`: the concurrency limit and what is left unreserved in a region. */
  limits(region: string): Promise<{ readonly concurrentExecutions: number; readonly unreserved: number }>;
  /** Provisioned concurrency already requested on a function's qualifier in a region; 0 when none. */
  provisioned(region: string, functionName: string, qualifier: string): Promise<number>;
}

/**
 * Fails when a region would be left with fewer than 100 unreserved concurrent executions by the provisioned
 * concurrency the rollout's stacks ask for. What is already provisioned on the same function alias is already
 * out of the unreserved pool, so only the increase counts. Returns one line per region checked; reports every
 * failing region at once.
 */
export async function checkLambdaConcurrency(
  asks: readonly ProvisionedConcurrencyAsk[],
  account: LambdaAccount,
  environment: string,
): Promise<string[]> {
  const regions = [...new Set(asks.map((ask) => ask.region))];
  if (regions.length === 0) {
    return ['Lambda concurrency: skipped, the stacks of this rollout ask for no provisioned concurrency'];
  }
  const lines: string[] = [];
  const failures: string[] = [];
  for (const region of regions) {
    const inRegion = asks.filter((ask) => ask.region === region);
    const increases = await Promise.all(
      inRegion.map(async (ask) => {
        const current =
          ask.functionName && ask.qualifier
            ? await account.provisioned(region, ask.functionName, ask.qualifier)
            : 0;
        return { ask, increase: Math.max(0, ask.executions - current) };
      }),
    );
    const needed = increases.reduce((sum, { increase }) => sum + increase, 0);
    const { concurrentExecutions: limit, unreserved } = await account.limits(region);
    const left = unreserved - needed;
    const what = increases
      .map(({ ask, increase }) => `${ask.functionName ?? ask.stack}:${ask.qualifier ?? '?'} +${increase}`)
      .join(', ');
    if (left >= MIN_UNRESERVED_CONCURRENCY) {
      lines.push(
        `Lambda concurrency in ${region}: ok, account limit ${limit}, ${unreserved} unreserved, ` +
          `the rollout provisions ${needed} more (${what}), ${left} stay unreserved`,
      );
      continue;
    }
    const quota = limit + (MIN_UNRESERVED_CONCURRENCY - left);
    failures.push(
      `Lambda concurrency in ${region} is too low for this rollout: the account limit is ${limit} concurrent ` +
        `executions, ${unreserved} of them unreserved, and the stacks provision ${needed} more (${what}); ` +
        `AWS keeps at least ${MIN_UNRESERVED_CONCURRENCY} unreserved, and ${unreserved} - ${needed} = ${left}. ` +
        `Fix: request a quota increase for Lambda "Concurrent executions" (quota code ` +
        `${CONCURRENT_EXECUTIONS_QUOTA}) in ${region} to at least ${quota}, or lower ` +
        `lambda.provisionedConcurrency in environments/${environment}.ts.`,
    );
  }
  if (failures.length > 0) throw new PreflightError(failures.join('\n'));
  return lines;
}

// ---------------------------------------------------------------------------------------------------------
// DNS delegation
// ---------------------------------------------------------------------------------------------------------

/** Resolves NS records (node:dns/promises Resolver's shape). */
export interface NsLookup {
  resolveNs(name: string): Promise<string[]>;
}

const normalizeName = (name: string): string => name.trim().toLowerCase().replace(/\.+$/, '');

/**
 * What a failed NS lookup says about the delegation, from its error code: NXDOMAIN and NODATA are answers
 * (the delegation is missing); anything else (a timeout, a refused or failed query, SERVFAIL) means the
 * resolvers could not be asked, which says nothing about the delegation.
 */
function lookupFailure(error: unknown): { answered: boolean; what: string } {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOTFOUND':
      return {
        answered: true,
        what: 'NXDOMAIN (the name does not exist in public DNS: nothing delegates it)',
      };
    case 'ENODATA':
      return { answered: true, what: 'no NS records' };
    case 'ESERVFAIL':
      return {
        answered: false,
        what:
          'SERVFAIL (the resolvers failed to get an answer: a network problem on their side, or a ' +
          'delegation to name servers that do not serve the zone)',
      };
    case 'ETIMEOUT':
      return { answered: false, what: 'no answer (the queries timed out)' };
    case 'ECONNREFUSED':
      return { answered: false, what: 'connection refused' };
    case 'EREFUSED':
      return { answered: false, what: 'the resolvers refused the query' };
    default:
      return {
        answered: false,
        what: `a failed lookup (${String(code ?? (error instanceof Error ? error.message : error))})`,
      };
  }
}

/**
 * Who writes the delegation of an environment's zone: the parent environment's global stack when the zone is
 * a child of another environment's zone (dev.estate.example.com in prod's estate.example.com), else the domain's
 * registrar.
 */
export function delegationWriter(environment: EnvironmentConfig, all: readonly EnvironmentConfig[]): string {
  const zone = normalizeName(environment.dns.zoneName);
  const parent = all
    .filter((other) => other.name !== environment.name && other.workloads)
    .filter((other) => zone.endsWith(`.${normalizeName(other.dns.zoneName)}`))
    .sort((a, b) => b.dns.zoneName.length - a.dns.zoneName.length)[0];
  if (parent) {
    const stack = `${parent.name}-global`;
    return (
      `${stack} writes it, as the NS record of ${zone} in ${parent.name}'s zone ` +
      `${normalizeName(parent.dns.zoneName)}, from the name servers it reads in ${environment.name}-global's ` +
      `state: apply it (npm run rollout -- ${parent.name} --apply --only ${stack}), then run this rollout again`
    );
  }
  return (
    `${zone} is an apex zone: its registrar must list these name servers (the documented registrar step; ` +
    'the parent TLD may cache the old delegation for up to 2 days)'
  );
}

/**
 * Fails in seconds when public DNS does not delegate the zone to the name servers of the zone the global stack
 * created (compared case-insensitively, trailing dots ignored); regional stacks would otherwise wait on
 * certificate validation until Terraform gives up. Resolvers that cannot be asked (a timeout, a refused query,
 * SERVFAIL) fail it too, saying so rather than blaming the delegation.
 */
export async function checkDnsDelegation(input: {
  readonly zoneName: string;
  /** The `name_servers` output of the environment's global stack. */
  readonly expected: readonly string[];
  /** Who writes the delegation (see delegationWriter). */
  readonly writer: string;
  readonly dns: NsLookup;
  /** The resolvers `dns` asks, for the message when they cannot be asked. */
  readonly resolvers?: readonly string[];
}): Promise<string> {
  const zone = normalizeName(input.zoneName);
  const expected = [...new Set(input.expected.map(normalizeName))].sort();
  let found: string[] | undefined;
  let failure: { answered: boolean; what: string } | undefined;
  try {
    found = [...new Set((await input.dns.resolveNs(zone)).map(normalizeName))].sort();
  } catch (error) {
    failure = lookupFailure(error);
  }
  if (found && found.length === expected.length && found.every((ns, i) => ns === expected[i])) {
    return `DNS delegation of ${zone}: ok, public DNS answers the zone's name servers ${expected.join(', ')}`;
  }
  if (failure && !failure.answered) {
    const resolvers = input.resolvers?.length
      ? `the public resolvers ${input.resolvers.join(', ')}`
      : 'public DNS';
    throw new PreflightError(
      `DNS delegation of ${zone} could not be checked: could not ask ${resolvers}: ${failure.what}; is ` +
        'outbound DNS blocked? (ESTATE_DNS_RESOLVERS=<ip>,<ip> names resolvers this machine can reach.) ' +
        'Nothing was concluded about the delegation.',
    );
  }
  const what = found ? (found.length ? found.join(', ') : 'no NS records') : failure?.what;
  throw new PreflightError(
    `DNS delegation of ${zone} is missing or wrong: expected the name servers of its Route 53 zone ` +
      `(${expected.join(', ')}); public DNS gives ${what}. ${input.writer}. The regional stacks validate their ` +
      'certificates through this zone and would wait until Terraform gives up. Once the delegation is ' +
      "written, resolvers may still answer that it is missing for up to the zone's negative TTL (the " +
      "minimum of its parent zone's SOA record), and an old one for its NS records' TTL.",
  );
}

/** The name servers in `terraform output -json name_servers`, or an error saying the stack was not applied. */
export function parseNameServers(json: string, globalStack: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((ns) => typeof ns === 'string')) {
    throw new PreflightError(
      `${globalStack} has no name_servers output (got ${JSON.stringify(json.trim()).slice(0, 200)}): ` +
        `apply ${globalStack} first`,
    );
  }
  return value as string[];
}

// ---------------------------------------------------------------------------------------------------------
// Adapters
// ---------------------------------------------------------------------------------------------------------

/** The two Lambda calls the preflight makes (a LambdaClient has them). */
export interface LambdaSender {
  send(command: GetAccountSettingsCommand): Promise<GetAccountSettingsCommandOutput>;
  send(
    command: GetProvisionedConcurrencyConfigCommand,
  ): Promise<GetProvisionedConcurrencyConfigCommandOutput>;
}

/** A LambdaAccount over SDK clients, one per region (`clientFor` creates them, with the default credentials). */
export function lambdaAccount(clientFor: (region: string) => LambdaSender): LambdaAccount {
  const clients = new Map<string, LambdaSender>();
  const client = (region: string) => {
    const existing = clients.get(region);
    if (existing) return existing;
    const created = clientFor(region);
    clients.set(region, created);
    return created;
  };
  return {
    async limits(region) {
      const settings = await client(region).send(new GetAccountSettingsCommand({}));
      const limit = settings.AccountLimit;
      if (limit?.ConcurrentExecutions === undefined || limit.UnreservedConcurrentExecutions === undefined) {
        throw new PreflightError(`GetAccountSettings in ${region} returned no concurrency limits`);
      }
      return {
        concurrentExecutions: limit.ConcurrentExecutions,
        unreserved: limit.UnreservedConcurrentExecutions,
      };
    },
    async provisioned(region, functionName, qualifier) {
      try {
        const config = await client(region).send(
          new GetProvisionedConcurrencyConfigCommand({ FunctionName: functionName, Qualifier: qualifier }),
        );
        return config.RequestedProvisionedConcurrentExecutions ?? 0;
      } catch (error) {
        const name = (error as { name?: unknown }).name;
        // No such function yet, or no provisioned concurrency on it: nothing is provisioned.
        if (
          name === 'ResourceNotFoundException' ||
          name === 'ProvisionedConcurrencyConfigNotFoundException'
        ) {
          return 0;
        }
        throw error;
      }
    },
  };
}

/** Public resolvers the DNS preflight asks by default, not the machine's (which may be split-horizon). */
export const PUBLIC_RESOLVERS: readonly string[] = ['1.1.1.1', '8.8.8.8'];

/** An NsLookup through public DNS that answers or gives up in seconds. */
export function publicDns(servers: readonly string[] = PUBLIC_RESOLVERS, timeoutMs = 3_000): NsLookup {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers([...servers]);
  return resolver;
}
