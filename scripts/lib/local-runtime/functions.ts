/**
 * Every deployed function of the stacks, each a FunctionPool started once (stored configuration, code check,
 * unpacked archive), invoked by region and name as the triggers name them.
 */
import type { DiscoveredFunction, FunctionRef, StackTriggers } from './discover';
import type { InvocationOutcome } from './function-host';
import { FunctionPool, type FunctionStats } from './function-pool';

/** One invocation, for the log. */
export interface InvocationReport {
  readonly region: string;
  readonly functionName: string;
  /** `schedule <rule>`, `rule <rule>`, `queue <queue>`, `http <route key>`, `direct`. */
  readonly trigger: string;
  readonly outcome: InvocationOutcome;
}

export interface FunctionsOptions {
  readonly endpoint: string;
  readonly node: string;
  /** Hosts per function that reserves no concurrency. */
  readonly concurrency: number;
  readonly overrides?: (fn: DiscoveredFunction) => Readonly<Record<string, string>> | undefined;
  readonly onOutput?: (fn: DiscoveredFunction, line: string, stream: 'stdout' | 'stderr') => void;
  readonly onInvocation?: (report: InvocationReport) => void;
  /** A function that cannot run (missing, other code, no concurrency). */
  readonly onUnavailable?: (fn: DiscoveredFunction, reason: string) => void;
}

interface Entry {
  readonly fn: DiscoveredFunction;
  readonly stackDir: string;
  readonly qualifier?: string;
  pool?: FunctionPool;
  failure?: string;
}

const key = (region: string, functionName: string) => `${region}/${functionName}`;

/** The qualifier the triggers of each function invoke (the `live` alias), to read its stored configuration. */
export function invokedQualifiers(triggers: readonly StackTriggers[]): Map<string, string> {
  const refs: Array<{ region: string; ref: FunctionRef }> = [];
  for (const stack of triggers) {
    for (const mapping of stack.mappings) refs.push({ region: mapping.region, ref: mapping.target });
    for (const rule of stack.rules)
      for (const target of rule.targets)
        if (target.destination.kind === 'function')
          refs.push({ region: rule.region, ref: target.destination.function });
    for (const api of stack.apis)
      for (const route of api.routes) refs.push({ region: api.region, ref: route.integration.function });
  }
  const qualifiers = new Map<string, string>();
  for (const { region, ref } of refs)
    if (ref.qualifier && !qualifiers.has(key(region, ref.functionName)))
      qualifiers.set(key(region, ref.functionName), ref.qualifier);
  return qualifiers;
}

export class Functions {
  private readonly entries = new Map<string, Entry>();

  private constructor(private readonly options: FunctionsOptions) {}

  /** Starts a pool for every function of the stacks; one that cannot run is reported, not thrown. */
  static async start(
    stacks: ReadonlyArray<{ readonly triggers: StackTriggers; readonly dir: string }>,
    options: FunctionsOptions,
  ): Promise<Functions> {
    const functions = new Functions(options);
    const qualifiers = invokedQualifiers(stacks.map((stack) => stack.triggers));
    for (const { triggers, dir } of stacks) {
      for (const fn of triggers.functions) {
        const qualifier = qualifiers.get(key(fn.region, fn.functionName));
        functions.entries.set(key(fn.region, fn.functionName), {
          fn,
          stackDir: dir,
          ...(qualifier ? { qualifier } : {}),
        });
      }
    }
    await Promise.all([...functions.entries.values()].map((entry) => functions.startOne(entry)));
    return functions;
  }

  private async startOne(entry: Entry): Promise<void> {
    const { fn } = entry;
    const concurrency = fn.reservedConcurrency ?? this.options.concurrency;
    if (concurrency === 0) {
      entry.failure = 'its reserved concurrency is 0 (every invocation is throttled)';
    } else {
      try {
        entry.pool = await FunctionPool.start(
          {
            fn,
            stackDir: entry.stackDir,
            endpoint: this.options.endpoint,
            node: this.options.node,
            concurrency,
            overrides: this.options.overrides?.(fn),
            onOutput: (line, stream) => this.options.onOutput?.(fn, line, stream),
          },
          entry.qualifier,
        );
        return;
      } catch (error) {
        entry.failure = (error as Error).message;
      }
    }
    this.options.onUnavailable?.(fn, entry.failure);
  }

  /** The function deployed as `functionName` in `region`, if any. */
  find(region: string, functionName: string): DiscoveredFunction | undefined {
    return this.entries.get(key(region, functionName))?.fn;
  }

  /** The version the emulator stores for the function (its alias's), `$LATEST` when unknown. */
  versionOf(region: string, functionName: string): string {
    return this.entries.get(key(region, functionName))?.pool?.version ?? '$LATEST';
  }

  /** Invokes a function synchronously; a function that cannot run answers an error outcome. */
  async invoke(
    region: string,
    ref: FunctionRef,
    event: unknown,
    trigger: string,
  ): Promise<InvocationOutcome> {
    const entry = this.entries.get(key(region, ref.functionName));
    let outcome: InvocationOutcome;
    if (!entry?.pool) {
      const message = entry
        ? `${ref.functionName} cannot run: ${entry.failure}`
        : `no function ${ref.functionName} is deployed in ${region}`;
      outcome = {
        ok: false,
        error: { errorType: 'ResourceNotFoundException', errorMessage: message },
        durationMs: 0,
      };
    } else {
      try {
        outcome = await entry.pool.invoke(event, ref.qualifier);
      } catch (error) {
        outcome = {
          ok: false,
          error: { errorType: 'Runtime.Stopped', errorMessage: (error as Error).message },
          durationMs: 0,
        };
      }
    }
    this.options.onInvocation?.({ region, functionName: ref.functionName, trigger, outcome });
    return outcome;
  }

  /** Each running function's invocations so far. */
  stats(): FunctionStats[] {
    return [...this.entries.values()].flatMap((entry) => (entry.pool ? [{ ...entry.pool.stats }] : []));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.entries.values()].map((entry) => entry.pool?.stop()));
  }
}
