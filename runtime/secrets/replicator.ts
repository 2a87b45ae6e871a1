import { PermanentError, RetryableError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { withRetries, type RetryPolicy } from '../lib/retry';
import type { Destination } from './config';
import type { ConfigSource } from './config-source';
import type { Self, Trigger } from './events';
import { replicateToAll, retireEverywhere, type FanOutOptions } from './fan-out';
import type { DestinationResult } from './outcomes';
import { nameOfArn, originTag, parseSecretArn } from './replica-tags';
import { isReplicaWrite } from './replicate';
import { resync, type ResyncReport } from './resync';
import type { SecretsApi } from './secrets-api';

export interface ReplicatorDeps {
  readonly self: Self;
  /** Secrets Manager in the replicator's own region and account: where its sources are. */
  readonly source: SecretsApi;
  readonly connect: (destination: Destination) => SecretsApi;
  readonly config: ConfigSource;
  /** Destinations worked on at once, for one secret. */
  readonly parallelism: number;
  /** Secrets worked on at once during a resync. */
  readonly resyncParallelism: number;
  readonly retry: RetryPolicy;
  readonly now: () => number;
}

export interface SecretReport {
  readonly kind: 'secret';
  readonly secret: string;
  /** What was done: replicated, retired (deleted at the source), or nothing, with why. */
  readonly action: 'replicated' | 'retired' | 'config-reloaded' | 'skipped';
  readonly reason?: string;
  readonly results: readonly DestinationResult[];
}

export type TriggerReport =
  SecretReport | ResyncReport | { readonly kind: 'ignored'; readonly reason: string };

export function fanOutOptions(deps: ReplicatorDeps, known?: FanOutOptions['known']): FanOutOptions {
  return {
    connect: deps.connect,
    own: deps.self,
    parallelism: deps.parallelism,
    retry: deps.retry,
    nowMs: deps.now(),
    ...(known ? { known } : {}),
  };
}

/** A new configuration may select secrets (or destinations) the old one did not: a resync follows it. */
const CONFIG_CHANGED = 'changed: a resync follows';

const skipped = (secret: string, reason: string): SecretReport => ({
  kind: 'secret',
  secret,
  action: 'skipped',
  reason,
  results: [],
});

/** Asks the source, once however many destinations ask, whether a version is still its current one. */
export function stillCurrentOf(deps: ReplicatorDeps, arn: string, versionId: string): () => Promise<boolean> {
  let answer: Promise<boolean> | undefined;
  return () =>
    (answer ??= withRetries(() => deps.source.describe(arn), deps.retry).then(
      (now) => now?.currentVersionId === versionId,
    ));
}

/** Whether any destination takes the secret (a route that throws is a failure to report: it counts). */
export function selected(
  destinations: readonly Destination[],
  name: string,
  tags: Readonly<Record<string, string>>,
): boolean {
  return destinations.some((destination) => {
    try {
      return destination.route(name, tags) !== undefined;
    } catch {
      return true;
    }
  });
}

async function reloadConfig(deps: ReplicatorDeps, name: string): Promise<SecretReport> {
  const before = deps.config.peek()?.config.hash;
  const after = (await deps.config.get({ force: true })).config.hash;
  return {
    kind: 'secret',
    secret: name,
    action: 'config-reloaded',
    reason: before === after ? 'unchanged' : CONFIG_CHANGED,
    results: [],
  };
}

/**
 * One secret changed (or was deleted, restored, tagged): bring every destination's copy in line. The value
 * is read only when a destination takes the secret (the function may read no other value), at once with
 * its description when the event's name alone shows that.
 */
export async function replicateSecret(secretId: string, deps: ReplicatorDeps): Promise<SecretReport> {
  const read = <T>(call: () => Promise<T>) => withRetries(call, deps.retry);
  const named = parseSecretArn(secretId) ? nameOfArn(secretId) : secretId;
  if (named !== undefined && deps.config.isConfigSecret({ name: named, arn: secretId }))
    return reloadConfig(deps, named);
  const { config } = await deps.config.get();
  const early = named !== undefined && selected(config.destinations, named, {});
  // The value read fails for a secret scheduled for deletion, which needs no value.
  const [description, earlyValue] = await Promise.all([
    read(() => deps.source.describe(secretId)),
    early
      ? read(() => deps.source.current(secretId)).catch((error: unknown) => ({ failed: error }))
      : undefined,
  ]);
  if (description && deps.config.isConfigSecret(description)) return reloadConfig(deps, description.name);
  if (!description) {
    // Deleted without a recovery window. Its replicas are found by the origin's ARN; without the ARN
    // (an event naming the secret only), the resync's sweep finds them.
    const name = nameOfArn(secretId);
    if (!name)
      return skipped(
        named ?? '(a partial ARN)',
        'gone, and named without its ARN: the resync retires its replicas',
      );
    const results = await retireEverywhere(
      { originTag: originTag(secretId), name },
      {},
      config.destinations,
      fanOutOptions(deps),
    );
    return { kind: 'secret', secret: name, action: 'retired', results };
  }
  if (description.deletedDate) {
    const results = await retireEverywhere(
      { originTag: originTag(description.arn), name: description.name, deletedDate: description.deletedDate },
      description.tags,
      config.destinations,
      fanOutOptions(deps),
    );
    return { kind: 'secret', secret: description.name, action: 'retired', results };
  }
  if (!selected(config.destinations, description.name, description.tags))
    return skipped(description.name, 'no destination takes it');
  if (earlyValue && 'failed' in earlyValue) throw earlyValue.failed;
  const current = earlyValue ?? (await read(() => deps.source.current(description.arn)));
  if (!current) return skipped(description.name, 'no current version');
  if (isReplicaWrite(current))
    return skipped(description.name, 'its current version is a replica write: never replicated again');
  const results = await replicateToAll(
    { description, current, stillCurrent: stillCurrentOf(deps, description.arn, current.versionId) },
    config.destinations,
    fanOutOptions(deps),
  );
  return { kind: 'secret', secret: description.name, action: 'replicated', results };
}

/**
 * Fails when any destination failed, naming only those: the message is retried (redelivered, or redriven
 * from the dead-letter queue), and the retry writes only where something is still missing. Permanent when
 * every failure is.
 */
export function throwIfFailed(results: readonly DestinationResult[]): void {
  const failed = results.filter((result) => result.outcome === 'failed');
  if (failed.length === 0) return;
  // The names first: a dead-letter reason is cut to a few hundred characters.
  const reason = boundedText(
    `${failed.length} destination(s) failed: ${failed.map((f) => f.destination).join(', ')}; ` +
      failed.map((f) => `${f.destination}: ${f.reason ?? 'unknown'}`).join('; '),
    1000,
  );
  throw failed.every((f) => f.permanent)
    ? new PermanentError('destinations-failed', reason)
    : new RetryableError('destinations-failed', reason);
}

/** Runs what a trigger asks for; throws (after doing all it could) when a destination failed. */
export async function handleTrigger(trigger: Trigger, deps: ReplicatorDeps): Promise<TriggerReport> {
  if (trigger.kind === 'ignored') return trigger;
  // A resync's failures are reported (logged, counted, alarmed), not retried as a whole: the next resync,
  // or the secret's next event, goes over them again.
  if (trigger.kind === 'resync') return resync(deps);
  const report = await replicateSecret(trigger.secretId, deps);
  throwIfFailed(report.results);
  if (report.reason === CONFIG_CHANGED) return handleTrigger({ kind: 'resync' }, deps);
  return report;
}
