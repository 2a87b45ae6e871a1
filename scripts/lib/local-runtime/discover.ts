/**
 * The triggers of a synthesized and applied stack, discovered from its Terraform JSON and state (never from a
 * hand-kept list): functions and aliases, SQS event-source mappings, EventBridge schedules and pattern rules
 * with their targets, HTTP APIs with their routes. Pure: parsed JSON in, a description out.
 */
import {
  DiscoveryError,
  StackModel,
  isObject,
  own,
  wholeReference,
  type ConfigResource,
  type Json,
  type JsonObject,
} from './terraform-refs';

/** Moto's account (the emulator's default), used when the state names none. */
export const EMULATOR_ACCOUNT = '123456789012';

/** A function as a trigger names it: its name, and the alias (or version) invoked, if any. */
export interface FunctionRef {
  readonly functionName: string;
  readonly qualifier?: string;
}

export interface DiscoveredFunction {
  /** `aws_lambda_function.<name>`. */
  readonly address: string;
  readonly region: string;
  readonly functionName: string;
  /** `<module path>.<export>`, e.g. `index.handler`. */
  readonly handler: string;
  /** The deployment archive, relative to the stack's directory (as `filename` is). */
  readonly filename: string;
  readonly runtime: string;
  readonly timeoutSec: number;
  readonly memoryMiB: number;
  /** `reserved_concurrent_executions`, when set (and not -1). */
  readonly reservedConcurrency?: number;
  readonly arn: string;
}

export interface DiscoveredAlias {
  readonly address: string;
  readonly region: string;
  readonly name: string;
  readonly functionName: string;
  readonly arn: string;
}

/** What Lambda does with a failed asynchronous invocation of a function (or one of its aliases). */
export interface DiscoveredAsyncConfig {
  readonly address: string;
  readonly target: FunctionRef;
  /** 0-2. Lambda's default: 2. */
  readonly maximumRetryAttempts: number;
  readonly maximumEventAgeSec?: number;
  /** Where the event goes once retries are exhausted (an SQS queue, SNS topic, function or bus ARN). */
  readonly onFailureArn?: string;
}

export interface RedrivePolicy {
  readonly deadLetterTargetArn: string;
  readonly maxReceiveCount: number;
}

export interface DiscoveredQueue {
  readonly address: string;
  readonly region: string;
  readonly name: string;
  readonly arn: string;
  /** Undefined before the stack is applied (the state holds it). */
  readonly url?: string;
  readonly visibilityTimeoutSec: number;
  readonly fifo: boolean;
  readonly redrivePolicy?: RedrivePolicy;
}

export interface DiscoveredMapping {
  readonly address: string;
  readonly region: string;
  readonly queue: DiscoveredQueue;
  readonly target: FunctionRef;
  /** 1-10000; SQS's default 10. */
  readonly batchSize: number;
  readonly maximumBatchingWindowSec: number;
  readonly reportBatchItemFailures: boolean;
  /** `scaling_config.maximum_concurrency`, when set. */
  readonly maximumConcurrency?: number;
  /** As synthesized: the `local` environment creates its mappings disabled (the emulator cannot run them). */
  readonly enabled: boolean;
}

/** Where a rule delivers: a function (alias), an SQS queue, an SNS topic, or something not served locally. */
export type TargetDestination =
  | { readonly kind: 'function'; readonly function: FunctionRef }
  | { readonly kind: 'queue'; readonly queue: DiscoveredQueue; readonly messageGroupId?: string }
  | { readonly kind: 'topic'; readonly topicArn: string }
  | { readonly kind: 'unsupported'; readonly arn: string };

export interface InputTransformer {
  /** Names to JSONPath expressions (`$.detail.x`). */
  readonly inputPaths: Readonly<Record<string, string>>;
  /** The template with `<name>` placeholders. */
  readonly inputTemplate: string;
}

export interface DiscoveredTarget {
  readonly address: string;
  readonly targetId?: string;
  readonly destination: TargetDestination;
  /** A constant JSON text sent instead of the event. */
  readonly input?: string;
  /** A JSONPath (`$.detail`) selecting the part of the event sent. */
  readonly inputPath?: string;
  readonly inputTransformer?: InputTransformer;
  /** The target's dead-letter queue, when configured. */
  readonly deadLetterArn?: string;
}

export interface DiscoveredRule {
  readonly address: string;
  readonly region: string;
  readonly name: string;
  readonly arn: string;
  readonly eventBusName: string;
  readonly enabled: boolean;
  readonly scheduleExpression?: string;
  /** The parsed `event_pattern`. */
  readonly eventPattern?: JsonObject;
  readonly targets: readonly DiscoveredTarget[];
}

export interface DiscoveredRoute {
  readonly address: string;
  /** `GET /health`, `POST /admin/failover/{region}`, `ANY /{proxy+}`, `$default`. */
  readonly routeKey: string;
  /** `NONE`, `AWS_IAM`, `JWT`, `CUSTOM`. */
  readonly authorizationType: string;
  readonly integration: {
    readonly address: string;
    readonly function: FunctionRef;
    /** `1.0` or `2.0`. */
    readonly payloadFormatVersion: string;
    /** API Gateway's integration timeout (HTTP APIs: at most 30 s). */
    readonly timeoutMs: number;
  };
}

export interface DiscoveredApi {
  readonly address: string;
  readonly region: string;
  readonly name: string;
  /** The API id, once applied (else the address). */
  readonly id: string;
  /** The stage the routes are served under: `$default` serves at the root. */
  readonly stageName: string;
  readonly routes: readonly DiscoveredRoute[];
}

export interface StackTriggers {
  readonly stackName: string;
  /** The region of the stack's default AWS provider. */
  readonly region: string;
  readonly account: string;
  /** Whether a state was read (unapplied stacks have no queue URLs or API ids). */
  readonly applied: boolean;
  readonly functions: readonly DiscoveredFunction[];
  readonly aliases: readonly DiscoveredAlias[];
  readonly asyncConfigs: readonly DiscoveredAsyncConfig[];
  readonly queues: readonly DiscoveredQueue[];
  readonly mappings: readonly DiscoveredMapping[];
  readonly rules: readonly DiscoveredRule[];
  readonly apis: readonly DiscoveredApi[];
  /** What was found but cannot be served locally (a mapping of a DynamoDB stream, a WebSocket API...). */
  readonly skipped: readonly string[];
}

const address = (resource: ConfigResource) => `${resource.type}.${resource.name}`;

/** Region per provider reference (`aws`, `aws.<alias>`). */
function providerRegions(model: StackModel): Map<string, string> {
  const regions = new Map<string, string>();
  const providers = own(own(model.config, 'provider') as JsonObject | undefined, 'aws');
  const list = Array.isArray(providers) ? (providers as readonly Json[]) : providers ? [providers] : [];
  for (const provider of list) {
    if (!isObject(provider)) continue;
    const region = own(provider, 'region');
    const alias = own(provider, 'alias');
    if (typeof region !== 'string') continue;
    regions.set(typeof alias === 'string' ? `aws.${alias}` : 'aws', region);
  }
  return regions;
}

/** Discovers the triggers of one stack from its parsed `cdk.tf.json` and (optional) parsed state. */
export function discoverTriggers(stackName: string, config: unknown, state?: unknown): StackTriggers {
  const model = new StackModel(config, state);
  const regions = providerRegions(model);
  const defaultRegion = regions.get('aws');
  if (!defaultRegion)
    throw new DiscoveryError(stackName, 'provider.aws: expected a default AWS provider with a region');
  const account = accountOf(model) ?? EMULATOR_ACCOUNT;
  const regionOf = (resource: ConfigResource) => {
    const provider = own(resource.block, 'provider');
    return (typeof provider === 'string' && regions.get(provider)) || defaultRegion;
  };
  const skipped: string[] = [];
  const ctx: Context = { model, account, regionOf, skipped };

  const functions = model.ofType('aws_lambda_function').flatMap((fn) => discoverFunction(ctx, fn));
  const aliases = model.ofType('aws_lambda_alias').map((alias) => discoverAlias(ctx, alias));
  const queues = model.ofType('aws_sqs_queue').map((queue) => discoverQueue(ctx, queue));
  ctx.queues = queues;
  const asyncConfigs = model
    .ofType('aws_lambda_function_event_invoke_config')
    .map((resource) => discoverAsyncConfig(ctx, resource));
  const mappings = model
    .ofType('aws_lambda_event_source_mapping')
    .flatMap((mapping) => discoverMapping(ctx, mapping));
  const targets = model.ofType('aws_cloudwatch_event_target');
  const rules = model
    .ofType('aws_cloudwatch_event_rule')
    .map((rule) => discoverRule(ctx, rule, targets))
    .filter((rule): rule is DiscoveredRule => rule !== undefined);
  const apis = model.ofType('aws_apigatewayv2_api').flatMap((api) => discoverApi(ctx, api));
  return {
    stackName,
    region: defaultRegion,
    account,
    applied: model.hasState,
    functions,
    aliases,
    asyncConfigs,
    queues,
    mappings,
    rules,
    apis,
    skipped,
  };
}

interface Context {
  readonly model: StackModel;
  readonly account: string;
  readonly regionOf: (resource: ConfigResource) => string;
  readonly skipped: string[];
  queues?: readonly DiscoveredQueue[];
}

/** The account of the first ARN the state holds. */
function accountOf(model: StackModel): string | undefined {
  for (const type of ['aws_lambda_function', 'aws_sqs_queue', 'aws_cloudwatch_event_rule', 'aws_iam_role']) {
    for (const resource of model.ofType(type)) {
      const arn = own(model.applied(type, resource.name), 'arn');
      const account = typeof arn === 'string' ? arn.split(':')[4] : undefined;
      if (account && /^\d{12}$/.test(account)) return account;
    }
  }
  return undefined;
}

function text(ctx: Context, resource: ConfigResource, field: string): string | undefined {
  const value = ctx.model.attribute(resource.type, resource.name, field);
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
}

function requiredText(ctx: Context, resource: ConfigResource, field: string): string {
  const value = text(ctx, resource, field);
  if (value === undefined || value === '')
    throw new DiscoveryError(
      address(resource),
      `${field}: expected a string (a literal or a resolvable reference)`,
    );
  return value;
}

function integer(ctx: Context, resource: ConfigResource, field: string, fallback: number): number {
  const value = ctx.model.attribute(resource.type, resource.name, field);
  if (value === undefined || value === null) return fallback;
  const number = typeof value === 'string' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number))
    throw new DiscoveryError(address(resource), `${field}: expected an integer`);
  return number;
}

/** A nested block (`scaling_config`, `retry_policy`): cdktf writes single blocks as objects, state as lists. */
function block(ctx: Context, resource: ConfigResource, field: string): JsonObject | undefined {
  const applied = own(ctx.model.applied(resource.type, resource.name), field);
  const value =
    applied !== undefined && !(Array.isArray(applied) && applied.length === 0)
      ? applied
      : own(resource.block, field);
  const first = Array.isArray(value) ? (value as readonly Json[])[0] : value;
  if (!isObject(first)) return undefined;
  const resolved = ctx.model.resolve(first);
  return isObject(resolved) ? resolved : undefined;
}

function discoverFunction(ctx: Context, fn: ConfigResource): DiscoveredFunction[] {
  const region = ctx.regionOf(fn);
  const functionName = requiredText(ctx, fn, 'function_name');
  const filename = own(fn.block, 'filename');
  if (typeof filename !== 'string') {
    ctx.skipped.push(
      `${address(fn)}: not deployed from a local archive (S3 or image functions are not run locally)`,
    );
    return [];
  }
  const runtime = text(ctx, fn, 'runtime') ?? 'nodejs22.x';
  if (!runtime.startsWith('nodejs')) {
    ctx.skipped.push(`${address(fn)}: a ${runtime} function (only Node.js functions are run locally)`);
    return [];
  }
  const reserved = integer(ctx, fn, 'reserved_concurrent_executions', -1);
  return [
    {
      address: address(fn),
      region,
      functionName,
      handler: requiredText(ctx, fn, 'handler'),
      filename,
      runtime,
      timeoutSec: integer(ctx, fn, 'timeout', 3),
      memoryMiB: integer(ctx, fn, 'memory_size', 128),
      ...(reserved >= 0 ? { reservedConcurrency: reserved } : {}),
      arn: text(ctx, fn, 'arn') ?? `arn:aws:lambda:${region}:${ctx.account}:function:${functionName}`,
    },
  ];
}

function discoverAlias(ctx: Context, alias: ConfigResource): DiscoveredAlias {
  const region = ctx.regionOf(alias);
  const functionName = functionNameOf(requiredText(ctx, alias, 'function_name'));
  const name = requiredText(ctx, alias, 'name');
  return {
    address: address(alias),
    region,
    name,
    functionName,
    arn:
      text(ctx, alias, 'arn') ?? `arn:aws:lambda:${region}:${ctx.account}:function:${functionName}:${name}`,
  };
}

/** A function name from a name, a (qualified) function ARN or an API Gateway invoke ARN. */
function functionNameOf(value: string): string {
  return parseFunctionArn(value)?.functionName ?? value;
}

/** `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`, or an invoke ARN wrapping one. */
export function parseFunctionArn(value: string): FunctionRef | undefined {
  const invoke = /^arn:[a-z-]+:apigateway:[a-z0-9-]+:lambda:path\/[^/]+\/functions\/(.+)\/invocations$/.exec(
    value,
  );
  const arn = invoke ? (invoke[1] as string) : value;
  const match =
    /^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9_$-]+))?$/.exec(arn);
  if (!match) return undefined;
  return { functionName: match[1] as string, ...(match[2] ? { qualifier: match[2] } : {}) };
}

/**
 * The function a field names: through the reference as synthesized (an alias's or function's attribute: the
 * state may read an alias back as a version), else the resolved value (a name or an ARN).
 */
function functionRef(ctx: Context, resource: ConfigResource, field: string): FunctionRef {
  const raw = own(resource.block, field);
  const reference = wholeReference(raw);
  if (reference?.type === 'aws_lambda_alias') {
    const alias = ctx.model.find('aws_lambda_alias', reference.name);
    if (!alias)
      throw new DiscoveryError(address(resource), `${field}: names a missing alias ${reference.name}`);
    return {
      functionName: functionNameOf(requiredText(ctx, alias, 'function_name')),
      qualifier: requiredText(ctx, alias, 'name'),
    };
  }
  if (reference?.type === 'aws_lambda_function') {
    const fn = ctx.model.find('aws_lambda_function', reference.name);
    if (!fn)
      throw new DiscoveryError(address(resource), `${field}: names a missing function ${reference.name}`);
    return { functionName: requiredText(ctx, fn, 'function_name') };
  }
  const value = raw === undefined ? undefined : ctx.model.resolve(raw);
  if (typeof value !== 'string' || value === '')
    throw new DiscoveryError(address(resource), `${field}: expected a function name, ARN or reference`);
  const qualifier = text(ctx, resource, 'qualifier');
  const parsed = parseFunctionArn(value);
  if (parsed) return parsed;
  return { functionName: value, ...(qualifier ? { qualifier } : {}) };
}

function discoverAsyncConfig(ctx: Context, resource: ConfigResource): DiscoveredAsyncConfig {
  const target = functionRef(ctx, resource, 'function_name');
  const qualifier = text(ctx, resource, 'qualifier');
  const onFailure = own(block(ctx, resource, 'destination_config'), 'on_failure');
  const onFailureBlock = Array.isArray(onFailure) ? (onFailure as readonly Json[])[0] : onFailure;
  const destination = isObject(onFailureBlock) ? own(onFailureBlock, 'destination') : undefined;
  const maxAge = integer(ctx, resource, 'maximum_event_age_in_seconds', -1);
  return {
    address: address(resource),
    target: qualifier && !target.qualifier ? { ...target, qualifier } : target,
    maximumRetryAttempts: integer(ctx, resource, 'maximum_retry_attempts', 2),
    ...(maxAge >= 0 ? { maximumEventAgeSec: maxAge } : {}),
    ...(typeof destination === 'string' && destination ? { onFailureArn: destination } : {}),
  };
}

function parseRedrive(value: Json | undefined, where: string): RedrivePolicy | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let policy: unknown = value;
  if (typeof value === 'string') {
    try {
      policy = JSON.parse(value);
    } catch {
      throw new DiscoveryError(where, 'redrive_policy: expected JSON');
    }
  }
  if (!isObject(policy)) throw new DiscoveryError(where, 'redrive_policy: expected a JSON object');
  const target = own(policy, 'deadLetterTargetArn');
  const count = Number(own(policy, 'maxReceiveCount'));
  if (typeof target !== 'string' || !Number.isSafeInteger(count) || count < 1)
    throw new DiscoveryError(
      where,
      'redrive_policy: expected deadLetterTargetArn and a maxReceiveCount >= 1',
    );
  return { deadLetterTargetArn: target, maxReceiveCount: count };
}

function discoverQueue(ctx: Context, queue: ConfigResource): DiscoveredQueue {
  const region = ctx.regionOf(queue);
  const name = requiredText(ctx, queue, 'name');
  const url = text(ctx, queue, 'url') ?? text(ctx, queue, 'id');
  const redrive = ctx.model.attribute(queue.type, queue.name, 'redrive_policy');
  const fifo = ctx.model.attribute(queue.type, queue.name, 'fifo_queue');
  const redrivePolicy = parseRedrive(redrive, address(queue));
  return {
    address: address(queue),
    region,
    name,
    arn: text(ctx, queue, 'arn') ?? `arn:aws:sqs:${region}:${ctx.account}:${name}`,
    ...(url && /^https?:\/\//.test(url) ? { url } : {}),
    visibilityTimeoutSec: integer(ctx, queue, 'visibility_timeout_seconds', 30),
    fifo: fifo === true || fifo === 'true' || name.endsWith('.fifo'),
    ...(redrivePolicy ? { redrivePolicy } : {}),
  };
}

/** The queue a field names: by reference, else by ARN among the stack's queues. */
function queueRef(ctx: Context, resource: ConfigResource, field: string): DiscoveredQueue | undefined {
  const raw = own(resource.block, field);
  const reference = wholeReference(raw);
  if (reference?.type === 'aws_sqs_queue')
    return ctx.queues?.find((queue) => queue.address === `aws_sqs_queue.${reference.name}`);
  const arn = raw === undefined ? undefined : ctx.model.resolve(raw);
  return typeof arn === 'string' ? ctx.queues?.find((queue) => queue.arn === arn) : undefined;
}

function discoverMapping(ctx: Context, mapping: ConfigResource): DiscoveredMapping[] {
  const where = address(mapping);
  const queue = queueRef(ctx, mapping, 'event_source_arn');
  if (!queue) {
    const source = ctx.model.resolve(own(mapping.block, 'event_source_arn') ?? '');
    const service = typeof source === 'string' ? source.split(':')[2] : undefined;
    ctx.skipped.push(
      `${where}: its source ${service ? `(${service}) ` : ''}is not an SQS queue of this stack`,
    );
    return [];
  }
  const types = ctx.model.resolve(own(mapping.block, 'function_response_types') ?? []);
  const scaling = block(ctx, mapping, 'scaling_config');
  const maximumConcurrency = Number(own(scaling, 'maximum_concurrency'));
  const enabled = ctx.model.resolve(own(mapping.block, 'enabled') ?? true);
  return [
    {
      address: where,
      region: ctx.regionOf(mapping),
      queue,
      target: functionRef(ctx, mapping, 'function_name'),
      batchSize: integer(ctx, mapping, 'batch_size', 10),
      maximumBatchingWindowSec: integer(ctx, mapping, 'maximum_batching_window_in_seconds', 0),
      reportBatchItemFailures: Array.isArray(types) && types.includes('ReportBatchItemFailures'),
      ...(Number.isSafeInteger(maximumConcurrency) && maximumConcurrency > 0 ? { maximumConcurrency } : {}),
      enabled: enabled !== false && enabled !== 'false',
    },
  ];
}

/** The rule a target names, by reference or by name. */
function targetsOf(ctx: Context, rule: ConfigResource, ruleName: string, targets: readonly ConfigResource[]) {
  return targets.filter((target) => {
    const reference = wholeReference(own(target.block, 'rule'));
    if (reference) return reference.type === 'aws_cloudwatch_event_rule' && reference.name === rule.name;
    return text(ctx, target, 'rule') === ruleName;
  });
}

function destinationOf(ctx: Context, target: ConfigResource): TargetDestination {
  const raw = own(target.block, 'arn');
  const reference = wholeReference(raw);
  if (reference?.type === 'aws_lambda_alias' || reference?.type === 'aws_lambda_function')
    return { kind: 'function', function: functionRef(ctx, target, 'arn') };
  const queue = queueRef(ctx, target, 'arn');
  if (queue) {
    const sqs = block(ctx, target, 'sqs_target');
    const group = own(sqs, 'message_group_id');
    return { kind: 'queue', queue, ...(typeof group === 'string' ? { messageGroupId: group } : {}) };
  }
  const arn = requiredText(ctx, target, 'arn');
  const fn = parseFunctionArn(arn);
  if (fn) return { kind: 'function', function: fn };
  if (/^arn:[a-z-]+:sns:/.test(arn)) return { kind: 'topic', topicArn: arn };
  return { kind: 'unsupported', arn };
}

function discoverTarget(ctx: Context, target: ConfigResource): DiscoveredTarget {
  const transformer = block(ctx, target, 'input_transformer');
  const template = own(transformer, 'input_template');
  const paths = own(transformer, 'input_paths');
  const deadLetter = own(block(ctx, target, 'dead_letter_config'), 'arn');
  const input = text(ctx, target, 'input');
  const inputPath = text(ctx, target, 'input_path');
  const targetId = text(ctx, target, 'target_id');
  return {
    address: address(target),
    ...(targetId ? { targetId } : {}),
    destination: destinationOf(ctx, target),
    ...(input ? { input } : {}),
    ...(inputPath ? { inputPath } : {}),
    ...(typeof template === 'string'
      ? {
          inputTransformer: {
            inputTemplate: template,
            inputPaths: Object.fromEntries(
              Object.entries(isObject(paths) ? paths : {}).filter(
                (entry): entry is [string, string] => typeof entry[1] === 'string',
              ),
            ),
          },
        }
      : {}),
    ...(typeof deadLetter === 'string' && deadLetter ? { deadLetterArn: deadLetter } : {}),
  };
}

function discoverRule(
  ctx: Context,
  rule: ConfigResource,
  targets: readonly ConfigResource[],
): DiscoveredRule | undefined {
  const where = address(rule);
  const region = ctx.regionOf(rule);
  const name = requiredText(ctx, rule, 'name');
  const bus = text(ctx, rule, 'event_bus_name') ?? 'default';
  const schedule = text(ctx, rule, 'schedule_expression');
  const patternText = text(ctx, rule, 'event_pattern');
  let eventPattern: JsonObject | undefined;
  if (patternText) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(patternText);
    } catch {
      throw new DiscoveryError(where, 'event_pattern: expected JSON');
    }
    if (!isObject(parsed)) throw new DiscoveryError(where, 'event_pattern: expected a JSON object');
    eventPattern = parsed;
  }
  if (!schedule && !eventPattern) {
    ctx.skipped.push(`${where}: neither a schedule nor an event pattern`);
    return undefined;
  }
  const state = text(ctx, rule, 'state');
  const isEnabled = ctx.model.attribute(rule.type, rule.name, 'is_enabled');
  const busPart = bus === 'default' ? '' : `${bus}/`;
  return {
    address: where,
    region,
    name,
    arn: text(ctx, rule, 'arn') ?? `arn:aws:events:${region}:${ctx.account}:rule/${busPart}${name}`,
    eventBusName: bus,
    enabled: state ? state === 'ENABLED' : isEnabled !== false,
    ...(schedule ? { scheduleExpression: schedule } : {}),
    ...(eventPattern ? { eventPattern } : {}),
    targets: targetsOf(ctx, rule, name, targets).map((target) => discoverTarget(ctx, target)),
  };
}

function discoverApi(ctx: Context, api: ConfigResource): DiscoveredApi[] {
  const where = address(api);
  const protocol = text(ctx, api, 'protocol_type') ?? 'HTTP';
  if (protocol !== 'HTTP') {
    ctx.skipped.push(`${where}: a ${protocol} API (only HTTP APIs are served locally)`);
    return [];
  }
  const belongs = (resource: ConfigResource) => {
    const reference = wholeReference(own(resource.block, 'api_id'));
    return reference?.type === 'aws_apigatewayv2_api' && reference.name === api.name;
  };
  const stage = ctx.model.ofType('aws_apigatewayv2_stage').find(belongs);
  const routes = ctx.model
    .ofType('aws_apigatewayv2_route')
    .filter(belongs)
    .flatMap((route) => discoverRoute(ctx, route));
  return [
    {
      address: where,
      region: ctx.regionOf(api),
      name: requiredText(ctx, api, 'name'),
      id: text(ctx, api, 'id') ?? where,
      stageName: stage ? requiredText(ctx, stage, 'name') : '$default',
      routes,
    },
  ];
}

function discoverRoute(ctx: Context, route: ConfigResource): DiscoveredRoute[] {
  const where = address(route);
  const target = own(route.block, 'target');
  const match = typeof target === 'string' ? /^integrations\/(\$\{[^}]+\})$/.exec(target) : null;
  const reference = wholeReference(match?.[1]);
  const integration =
    reference?.type === 'aws_apigatewayv2_integration'
      ? ctx.model.find('aws_apigatewayv2_integration', reference.name)
      : undefined;
  if (!integration) {
    ctx.skipped.push(`${where}: its target is not an integration of this stack`);
    return [];
  }
  const type = text(ctx, integration, 'integration_type');
  if (type !== 'AWS_PROXY') {
    ctx.skipped.push(
      `${where}: a ${type ?? 'missing'} integration (only Lambda proxy integrations are served)`,
    );
    return [];
  }
  return [
    {
      address: where,
      routeKey: requiredText(ctx, route, 'route_key'),
      authorizationType: text(ctx, route, 'authorization_type') ?? 'NONE',
      integration: {
        address: address(integration),
        function: functionRef(ctx, integration, 'integration_uri'),
        payloadFormatVersion: text(ctx, integration, 'payload_format_version') ?? '1.0',
        timeoutMs: integer(ctx, integration, 'timeout_milliseconds', 30_000),
      },
    },
  ];
}
