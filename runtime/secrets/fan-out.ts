import pLimit from 'p-limit';
import { classifyFailure, PermanentError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { withRetries, type RetryPolicy } from '../lib/retry';
import type { Destination, Route } from './config';
import type { DestinationResult, Outcome } from './outcomes';
import { replicateTo, retireReplica, type LiveSource, type RetiredSource } from './replicate';
import type { SecretDescription, SecretsApi } from './secrets-api';

export interface FanOutOptions {
  /** The Secrets Manager of a destination (its region, through its role). */
  readonly connect: (destination: Destination) => SecretsApi;
  /** Where the replicator runs: a destination here, under the source's own name, is the source itself. */
  readonly own: { readonly region: string; readonly account: string };
  /** Destinations worked on at once. */
  readonly parallelism: number;
  /** Each destination's own retries, on throttling and 5xx. */
  readonly retry: RetryPolicy;
  readonly nowMs: number;
  /** A destination secret a listing already described (the resync), saving its read. */
  readonly known?: (destination: Destination, name: string) => SecretDescription | undefined;
}

/**
 * One destination's work in isolation: its own retries (throttling and 5xx), and a result instead of a
 * throw, so that its failure stops no other destination.
 */
export async function isolated(
  destination: Destination,
  target: string | undefined,
  options: FanOutOptions,
  work: (api: SecretsApi) => Promise<Outcome>,
): Promise<DestinationResult> {
  try {
    const api = options.connect(destination);
    const outcome = await withRetries(() => work(api), options.retry);
    return { destination: destination.name, outcome, ...(target ? { target } : {}) };
  } catch (error) {
    const failure = classifyFailure(error);
    return {
      destination: destination.name,
      outcome: 'failed',
      ...(target ? { target } : {}),
      reason: boundedText(failure.permanent ? `${failure.code}: ${failure.reason}` : failure.reason, 300),
      permanent: failure.permanent,
    };
  }
}

function isTheSource(
  destination: Destination,
  route: Route,
  name: string,
  own: FanOutOptions['own'],
): boolean {
  return (
    destination.region === own.region &&
    (destination.roleArn?.split(':')[4] ?? own.account) === own.account &&
    route.targetName === name
  );
}

/**
 * Runs `work` for every destination the secret routes to, at most `parallelism` at once, each isolated.
 */
async function forEachDestination(
  name: string,
  tags: Readonly<Record<string, string>>,
  destinations: readonly Destination[],
  options: FanOutOptions,
  work: (destination: Destination, route: Route, api: SecretsApi) => Promise<Outcome>,
): Promise<DestinationResult[]> {
  const limit = pLimit(options.parallelism);
  return Promise.all(
    destinations.map((destination) =>
      limit(async (): Promise<DestinationResult> => {
        let route: Route | undefined;
        try {
          route = destination.route(name, tags);
        } catch (error) {
          return isolated(destination, undefined, options, () => Promise.reject(error));
        }
        if (!route) return { destination: destination.name, outcome: 'not-selected' };
        const chosen = route;
        if (isTheSource(destination, chosen, name, options.own))
          return isolated(destination, chosen.targetName, options, () =>
            Promise.reject(
              new PermanentError(
                'destination-is-source',
                `${chosen.rule}: the destination secret would be the source itself (same region, account and name)`,
              ),
            ),
          );
        return isolated(destination, chosen.targetName, options, (api) => work(destination, chosen, api));
      }),
    ),
  );
}

/** Replicates a source's current user write to every destination that takes it. */
export function replicateToAll(
  source: LiveSource,
  destinations: readonly Destination[],
  options: FanOutOptions,
): Promise<DestinationResult[]> {
  return forEachDestination(
    source.description.name,
    source.description.tags,
    destinations,
    options,
    (destination, route, api) =>
      replicateTo(source, route, destination, api, options.known?.(destination, route.targetName)),
  );
}

/** Applies every destination's delete policy to the replicas of a source that is being deleted or gone. */
export function retireEverywhere(
  source: RetiredSource,
  tags: Readonly<Record<string, string>>,
  destinations: readonly Destination[],
  options: FanOutOptions,
): Promise<DestinationResult[]> {
  return forEachDestination(source.name, tags, destinations, options, (destination, route, api) =>
    retireReplica(source, route.targetName, destination, api, options.nowMs),
  );
}
