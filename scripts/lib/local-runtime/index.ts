/**
 * The local runtime: every trigger of the deployed stacks live on the emulator, discovered from their
 * synthesized Terraform JSON and state. Schedules fire (optionally sped up), SQS event-source mappings are
 * polled, each HTTP API is served on a loopback port, EventBridge pattern rules receive the events put on their
 * bus (Secrets Manager calls through the local proxy put CloudTrail-shaped ones there), and every function runs
 * from its deployed archive on Node 22 with the environment the emulator stores for it.
 */
import { randomUUID } from 'node:crypto';
import { REPO_ROOT } from '../../../modules/bundled-function/bundle';
import { node22Binary, nodeVersion } from '../node22.cjs';
import { asyncConfigFor, invokeAsync } from './async-invoke';
import { Callers } from './callers';
import { Destinations } from './destinations';
import {
  EMULATOR_ACCOUNT,
  type DiscoveredFunction,
  type DiscoveredRule,
  type DiscoveredTarget,
  type FunctionRef,
  type StackTriggers,
} from './discover';
import {
  EventRules,
  busEvent,
  deliverOne,
  type BusEvent,
  type DeliveryReport,
  type PutEventInput,
} from './event-rules';
import type { InvocationOutcome } from './function-host';
import type { FunctionStats } from './function-pool';
import { Functions } from './functions';
import { serveHttpApi, type AccessLogEntry, type ServedApi } from './http-api';
import { Scheduler } from './scheduler';
import { startSecretsProxy, type SecretsProxy } from './secrets-events';
import { SqsPoller } from './sqs-poller';
import { readStackTriggers, type StackLocation } from './stack-files';

export type { StackLocation } from './stack-files';
export type { StackTriggers } from './discover';

/** What the runtime reports as it runs. */
export type RuntimeLog =
  | {
      readonly kind: 'function-output';
      readonly region: string;
      readonly functionName: string;
      readonly stream: 'stdout' | 'stderr';
      readonly line: string;
    }
  | {
      readonly kind: 'invocation';
      readonly region: string;
      readonly functionName: string;
      /** `schedule <rule>`, `rule <rule>`, `queue <queue>`, `http <route key>`, `direct`. */
      readonly trigger: string;
      readonly ok: boolean;
      readonly durationMs: number;
      readonly errorType?: string;
      readonly errorMessage?: string;
    }
  | ({ readonly kind: 'http' } & AccessLogEntry)
  | {
      readonly kind: 'batch';
      readonly region: string;
      readonly queue: string;
      readonly received: number;
      readonly acknowledged: number;
      readonly failed: number;
      readonly reason?: string;
    }
  | {
      readonly kind: 'event';
      readonly region: string;
      readonly source: string;
      readonly detailType: string;
      readonly rules: readonly string[];
    }
  | { readonly kind: 'info' | 'warning' | 'error'; readonly message: string };

export interface LocalRuntimeOptions {
  /** The emulator's endpoint. */
  readonly endpoint: string;
  /** The deployed stacks (directory with `cdk.tf.json` and the local state). */
  readonly stacks: readonly StackLocation[];
  /** Schedules run this many times faster than real time (60: `rate(5 minutes)` every 5 s). Default 1. */
  readonly speed?: number;
  /** The Node binary handlers run on. Default: Node 22 as scripts/lib/node22.cjs finds it, else this node (warned). */
  readonly node?: string;
  readonly onLog?: (entry: RuntimeLog) => void;
  /** Hosts per function when it reserves no concurrency. Default 4. */
  readonly concurrency?: number;
  /**
   * Seconds a message a function failed stays invisible before its redelivery. Lambda leaves it for the queue's
   * visibility timeout (6 to 30 minutes in the estate); locally 2 s keeps retries and dead-lettering quick.
   * `'queue'`: the queue's own timeout, as in AWS.
   */
  readonly retryVisibilitySec?: number | 'queue';
  /** Waits between asynchronous retries (Lambda: ~1 min then ~2 min). Default [1000, 2000]. */
  readonly asyncRetryDelaysMs?: readonly number[];
  /** Settings over the stored ones, per function (stand-ins for what the emulator cannot be). */
  readonly environmentOverrides?: (fn: DiscoveredFunction) => Readonly<Record<string, string>> | undefined;
  /** Access keys and their secrets that sign for IAM-authorised routes. Default: the emulator's test/test. */
  readonly credentials?: Readonly<Record<string, string>>;
  /** Parts to leave off (all on by default). */
  readonly disable?: {
    readonly schedules?: boolean;
    readonly queues?: boolean;
    readonly http?: boolean;
    readonly secrets?: boolean;
  };
}

/** One event-source mapping's batches so far. */
export interface QueueStats {
  readonly queue: string;
  readonly region: string;
  readonly functionName: string;
  batches: number;
  acknowledged: number;
  failed: number;
}

/** One served HTTP API. */
export interface ApiStats {
  readonly region: string;
  readonly apiId: string;
  readonly name: string;
  url: string;
  requests: number;
}

export interface RuntimeStatus {
  readonly functions: readonly FunctionStats[];
  readonly schedules: ReadonlyArray<{
    readonly rule: string;
    readonly region: string;
    readonly expression: string;
    readonly fired: number;
    /** When it fires next (epoch ms, real time). */
    readonly nextAt?: number;
  }>;
  readonly patterns: ReadonlyArray<{
    readonly rule: string;
    readonly region: string;
    readonly matched: number;
  }>;
  readonly queues: readonly Readonly<QueueStats>[];
  readonly apis: readonly Readonly<ApiStats>[];
  /** CloudTrail-shaped events the Secrets Manager proxy put on the buses. */
  readonly secretsEvents: number;
}

export interface LocalRuntime {
  /** Each region's HTTP API (the first, when a region has several), by region. */
  readonly httpEndpoints: ReadonlyMap<string, string>;
  readonly apis: ReadonlyArray<{
    readonly region: string;
    readonly apiId: string;
    readonly name: string;
    readonly url: string;
  }>;
  /** The Secrets Manager proxy: point clients at it to have their writes reach the pattern rules. */
  readonly secretsEndpoint?: string;
  readonly triggers: readonly StackTriggers[];
  /** The Node version the handlers run on. */
  readonly nodeVersion?: string;
  status(): RuntimeStatus;
  /** Puts an event on a region's bus (what PutEvents would do), delivering it to the matching rules' targets. */
  putEvent(input: PutEventInput, bus?: string): Promise<DeliveryReport[]>;
  /** Invokes a deployed function synchronously (RequestResponse). */
  invoke(
    region: string,
    functionName: string,
    event: unknown,
    qualifier?: string,
  ): Promise<InvocationOutcome>;
  stop(): Promise<void>;
}

const EMULATOR_KEYS: Readonly<Record<string, string>> = { test: 'test' };

const stoppedOutcome: InvocationOutcome = {
  ok: false,
  error: { errorType: 'Runtime.Stopped', errorMessage: 'the local runtime is stopping' },
  durationMs: 0,
};

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const log = (entry: RuntimeLog) => options.onLog?.(entry);
  const keys = { ...(options.credentials ?? EMULATOR_KEYS) };
  const secretOf = (accessKeyId: string) =>
    Object.prototype.hasOwnProperty.call(keys, accessKeyId) ? keys[accessKeyId] : undefined;
  const defaultConcurrency = options.concurrency ?? 4;

  const node = options.node ?? node22Binary(REPO_ROOT) ?? process.execPath;
  const version = nodeVersion(node);
  if (!version?.startsWith('v22.'))
    log({
      kind: 'warning',
      message: `handlers run on ${node} (${version ?? 'does not run'}), not Node 22 as in Lambda's nodejs22.x`,
    });

  const stacks = options.stacks.map((stack) => ({ ...stack, triggers: readStackTriggers(stack) }));
  const triggers = stacks.map((stack) => stack.triggers);
  for (const stack of triggers) {
    if (!stack.applied)
      log({
        kind: 'warning',
        message: `${stack.stackName} has no state: apply it first (its queues and APIs are unknown)`,
      });
    for (const skipped of stack.skipped) log({ kind: 'info', message: `not served locally: ${skipped}` });
  }
  const account = triggers.find((stack) => stack.applied)?.account ?? EMULATOR_ACCOUNT;
  const homeRegion = triggers[0]?.region ?? 'us-east-1';
  const asyncConfigs = triggers.flatMap((stack) => stack.asyncConfigs);
  const destinations = new Destinations(
    options.endpoint,
    triggers.flatMap((stack) => stack.queues),
  );
  const callers = new Callers(options.endpoint, homeRegion, account, secretOf);

  const functions = await Functions.start(stacks, {
    endpoint: options.endpoint,
    node,
    concurrency: defaultConcurrency,
    ...(options.environmentOverrides ? { overrides: options.environmentOverrides } : {}),
    onOutput: (fn, line, stream) =>
      log({ kind: 'function-output', region: fn.region, functionName: fn.functionName, stream, line }),
    onInvocation: ({ region, functionName, trigger, outcome }) =>
      log({
        kind: 'invocation',
        region,
        functionName,
        trigger,
        ok: outcome.ok,
        durationMs: outcome.durationMs,
        ...(outcome.ok
          ? {}
          : { errorType: outcome.error.errorType, errorMessage: outcome.error.errorMessage }),
      }),
    onUnavailable: (fn, reason) =>
      log({ kind: 'error', message: `${fn.functionName} (${fn.region}) cannot run: ${reason}` }),
  });

  let stopping = false;
  const stopSignal = new AbortController();
  const sleepUnlessStopping = (ms: number) =>
    new Promise<void>((resolveSleep) => {
      if (stopSignal.signal.aborted) return resolveSleep();
      const timer = setTimeout(resolveSleep, ms);
      stopSignal.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolveSleep();
      });
    });

  // Asynchronous invocations (EventBridge's function targets), tracked so that stop() waits for them.
  const pendingAsync = new Set<Promise<void>>();
  const startAsync = (region: string, ref: FunctionRef, event: unknown, trigger: string) => {
    const fnArn =
      functions.find(region, ref.functionName)?.arn ??
      `arn:aws:lambda:${region}:${account}:function:${ref.functionName}`;
    const work = invokeAsync({
      invoke: () =>
        stopping ? Promise.resolve(stoppedOutcome) : functions.invoke(region, ref, event, trigger),
      config: asyncConfigFor(asyncConfigs, ref),
      event,
      requestId: randomUUID(),
      functionArn: ref.qualifier ? `${fnArn}:${ref.qualifier}` : fnArn,
      version: functions.versionOf(region, ref.functionName),
      // Stopping abandons retries: an event is dead-lettered only when its retries really ran out.
      sendToDestination: async (arn, record) => {
        if (!stopping) await destinations.send(arn, JSON.stringify(record));
      },
      sleep: sleepUnlessStopping,
      ...(options.asyncRetryDelaysMs ? { retryDelaysMs: options.asyncRetryDelaysMs } : {}),
    })
      .then((result) => {
        if (result.destination)
          log({
            kind: 'warning',
            message: `${ref.functionName} failed ${result.attempts} times: the event went to its on-failure destination`,
          });
      })
      .catch((error: Error) =>
        log({ kind: 'error', message: `async invocation of ${ref.functionName}: ${error.message}` }),
      )
      .finally(() => pendingAsync.delete(work));
    pendingAsync.add(work);
  };

  /** What a rule's target receives, delivered as EventBridge would (functions asynchronously). */
  const deliver = async (target: DiscoveredTarget, payload: string, rule: DiscoveredRule): Promise<void> => {
    const destination = target.destination;
    if (destination.kind === 'function') {
      let event: unknown = payload;
      try {
        event = JSON.parse(payload);
      } catch {
        // a constant input that is not JSON reaches the function as a string
      }
      startAsync(
        rule.region,
        destination.function,
        event,
        `${rule.scheduleExpression ? 'schedule' : 'rule'} ${rule.name}`,
      );
      return;
    }
    if (destination.kind === 'queue')
      return destinations.send(destination.queue.arn, payload, destination.messageGroupId);
    if (destination.kind === 'topic') return destinations.send(destination.topicArn, payload);
    throw new Error(`target ${destination.arn.split(':').slice(0, 3).join(':')} is not served locally`);
  };
  const reportFailures = (reports: readonly DeliveryReport[]) => {
    for (const report of reports)
      if (!report.ok)
        log({ kind: 'error', message: `rule ${report.rule}: ${report.target}: ${report.error}` });
  };

  const allRules = triggers.flatMap((stack) => stack.rules);
  const eventRules = new EventRules(allRules, deliver);
  const putOnBus = async (event: BusEvent, bus = 'default') => {
    const matched = eventRules.matching(event, bus).map((rule) => rule.name);
    log({
      kind: 'event',
      region: event.region,
      source: event.source,
      detailType: event['detail-type'],
      rules: matched,
    });
    const reports = await eventRules.put(event, bus);
    reportFailures(reports);
    return reports;
  };

  const scheduler = new Scheduler({
    rules: options.disable?.schedules ? [] : allRules,
    account,
    speed: options.speed ?? 1,
    fire: async (rule, event) =>
      reportFailures(
        await Promise.all(rule.targets.map((target) => deliverOne(deliver, target, event, rule))),
      ),
    onError: (rule, error) => log({ kind: 'error', message: `schedule ${rule.name}: ${error.message}` }),
  });

  const queueStats: QueueStats[] = [];
  const pollers: SqsPoller[] = [];
  const served: Array<{ stats: ApiStats; server: ServedApi }> = [];
  let proxy: SecretsProxy | undefined;
  const stop = async () => {
    stopping = true;
    stopSignal.abort();
    await scheduler.stop();
    await Promise.all(pollers.map((poller) => poller.stop()));
    await Promise.all(served.map(({ server }) => server.close()));
    await proxy?.close();
    await functions.stop();
    await Promise.all([...pendingAsync]);
  };

  try {
    if (!options.disable?.queues) {
      const retry = options.retryVisibilitySec ?? 2;
      for (const mapping of triggers.flatMap((stack) => stack.mappings)) {
        const fn = functions.find(mapping.region, mapping.target.functionName);
        const stats: QueueStats = {
          queue: mapping.queue.name,
          region: mapping.region,
          functionName: mapping.target.functionName,
          batches: 0,
          acknowledged: 0,
          failed: 0,
        };
        queueStats.push(stats);
        const functionConcurrency = fn?.reservedConcurrency ?? defaultConcurrency;
        pollers.push(
          new SqsPoller({
            mapping,
            queueUrl: await destinations.queueUrl(mapping.queue),
            sqs: destinations.sqs(mapping.region),
            invoke: (event) =>
              functions.invoke(mapping.region, mapping.target, event, `queue ${mapping.queue.name}`),
            concurrency: Math.max(
              1,
              Math.min(mapping.maximumConcurrency ?? functionConcurrency, functionConcurrency),
            ),
            ...(retry === 'queue' ? {} : { retryVisibilitySec: retry }),
            onBatch: (report) => {
              stats.batches++;
              stats.acknowledged += report.acknowledged.length;
              stats.failed += report.failed.length;
              log({
                kind: 'batch',
                region: mapping.region,
                queue: mapping.queue.name,
                received: report.acknowledged.length + report.failed.length,
                acknowledged: report.acknowledged.length,
                failed: report.failed.length,
                ...(report.reason ? { reason: report.reason } : {}),
              });
            },
            onError: (error) =>
              log({
                kind: 'error',
                message: `polling ${mapping.queue.name} (${mapping.region}): ${error.message}`,
              }),
          }),
        );
      }
    }
    if (!options.disable?.http) {
      for (const api of triggers.flatMap((stack) => stack.apis)) {
        const stats: ApiStats = { region: api.region, apiId: api.id, name: api.name, url: '', requests: 0 };
        const server = await serveHttpApi({
          api,
          accountId: account,
          invoke: (route, event) =>
            functions.invoke(api.region, route.integration.function, event, `http ${route.routeKey}`),
          secretOf,
          callerOf: (accessKeyId) => callers.iamCaller(accessKeyId),
          onAccess: (entry) => {
            stats.requests++;
            log({ kind: 'http', ...entry });
          },
        });
        stats.url = server.url;
        served.push({ stats, server });
      }
    }
    if (!options.disable?.secrets) {
      proxy = await startSecretsProxy({
        endpoint: options.endpoint,
        emit: async (event) => void (await putOnBus(event)),
        callerOf: (accessKeyId) => callers.identity(accessKeyId),
        defaultRegion: homeRegion,
        onError: (error) => log({ kind: 'error', message: `secrets proxy: ${error.message}` }),
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  scheduler.start();
  for (const poller of pollers) poller.start();

  const httpEndpoints = new Map<string, string>();
  for (const { stats } of served)
    if (!httpEndpoints.has(stats.region)) httpEndpoints.set(stats.region, stats.url);
  const scheduleRules = options.disable?.schedules
    ? []
    : allRules.filter((rule) => rule.scheduleExpression && rule.enabled);
  const patternRules = allRules.filter((rule) => rule.eventPattern);

  return {
    httpEndpoints,
    apis: served.map(({ stats: { region, apiId, name, url } }) => ({ region, apiId, name, url })),
    ...(proxy ? { secretsEndpoint: proxy.url } : {}),
    triggers,
    ...(version ? { nodeVersion: version } : {}),
    status: () => {
      const next = scheduler.nextFires();
      return {
        functions: functions.stats(),
        schedules: scheduleRules.map((rule) => {
          const nextAt = next.get(rule.arn);
          return {
            rule: rule.name,
            region: rule.region,
            expression: rule.scheduleExpression as string,
            fired: scheduler.fired.get(rule.arn) ?? 0,
            ...(nextAt !== undefined ? { nextAt } : {}),
          };
        }),
        patterns: patternRules.map((rule) => ({
          rule: rule.name,
          region: rule.region,
          matched: eventRules.matched.get(rule.arn) ?? 0,
        })),
        queues: queueStats.map((stats) => ({ ...stats })),
        apis: served.map(({ stats }) => ({ ...stats })),
        secretsEvents: proxy?.emitted() ?? 0,
      };
    },
    putEvent: (input, bus) => putOnBus(busEvent({ ...input, account: input.account || account }), bus),
    invoke: (region, functionName, event, qualifier) =>
      functions.invoke(region, { functionName, ...(qualifier ? { qualifier } : {}) }, event, 'direct'),
    stop,
  };
}
