import pLimit from 'p-limit';
import { classifyFailure } from '../lib/failures';
import { boundedText } from '../lib/redact';
import { withRetries } from '../lib/retry';
import type { Destination } from './config';
import { isolated, replicateToAll } from './fan-out';
import type { DestinationResult, Outcome } from './outcomes';
import { DESTINATION, isOriginIn, nameOfArn, originTag, parseSecretArn, REPLICA_OF } from './replica-tags';
import { isReplicaWrite, retireReplica } from './replicate';
import { fanOutOptions, selected, stillCurrentOf, type ReplicatorDeps } from './replicator';
import type { SecretDescription } from './secrets-api';

export interface ResyncReport {
  readonly kind: 'resync';
  /** Source secrets looked at (the config secret and replica writes aside). */
  readonly secrets: number;
  readonly outcomes: Readonly<Partial<Record<Outcome, number>>>;
  /** Every destination result that failed, with the secret it was for. */
  readonly failures: readonly (DestinationResult & { readonly secret: string })[];
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/**
 * The full resync that guarantees convergence whatever events were lost (CloudTrail delivers on a best
 * effort basis): every source secret is replicated where it is out of date, and every replica of this
 * region's secrets whose origin is gone meets its destination's delete policy. Each destination's replicas
 * are listed once up front, so a destination already up to date costs no read per secret: what nothing
 * changed costs is the listings and one read of each source's value, and no write.
 */
export async function resync(deps: ReplicatorDeps): Promise<ResyncReport> {
  const { config } = await deps.config.get({ force: true });
  const read = <T>(call: () => Promise<T>) => withRetries(call, deps.retry);
  const sources = await read(() => collect(deps.source.list()));
  const failures: (DestinationResult & { secret: string })[] = [];
  const outcomes: Partial<Record<Outcome, number>> = {};
  const record = (secret: string, results: readonly DestinationResult[]) => {
    for (const result of results) {
      outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
      if (result.outcome === 'failed') failures.push({ ...result, secret });
    }
  };

  // Each destination's replicas (by name), listed once; a destination that cannot be listed is read per
  // secret instead, and its sweep waits for the next resync.
  const replicas = new Map<string, Map<string, SecretDescription>>();
  const listing = pLimit(deps.parallelism);
  await Promise.all(
    config.destinations.map((destination) =>
      listing(async () => {
        try {
          const listed = await read(() => collect(deps.connect(destination).list(REPLICA_OF)));
          replicas.set(destination.name, new Map(listed.map((secret) => [secret.name, secret])));
        } catch (error) {
          const failure = classifyFailure(error);
          record('(listing)', [
            {
              destination: destination.name,
              outcome: 'failed',
              reason: boundedText(`listing replicas: ${failure.reason}`, 300),
              permanent: failure.permanent,
            },
          ]);
        }
      }),
    ),
  );
  const known = (destination: Destination, name: string) => replicas.get(destination.name)?.get(name);

  const live = sources.filter((s) => !s.deletedDate && !deps.config.isConfigSecret(s));
  // Only what some destination takes is read: the function may read no other value.
  const taken = live.filter((s) => selected(config.destinations, s.name, s.tags));
  let looked = 0;
  const perSecret = pLimit(deps.resyncParallelism);
  await Promise.all(
    taken.map((description) =>
      perSecret(async () => {
        try {
          const current = await read(() => deps.source.current(description.arn));
          if (!current || isReplicaWrite(current)) return;
          looked++;
          const options = fanOutOptions(deps, known);
          record(
            description.name,
            await replicateToAll(
              {
                description,
                current,
                stillCurrent: stillCurrentOf(deps, description.arn, current.versionId),
              },
              config.destinations,
              options,
            ),
          );
        } catch (error) {
          // The source itself could not be read (deleted meanwhile, denied): its event or the next resync.
          const failure = classifyFailure(error);
          record(description.name, [
            {
              destination: '(source)',
              outcome: 'failed',
              reason: failure.reason,
              permanent: failure.permanent,
            },
          ]);
        }
      }),
    ),
  );

  // Replicas whose origin (a secret of this region and account) is scheduled for deletion or gone. Only a
  // complete source listing gets here, so "not listed" means gone.
  const alive = new Set(live.map((s) => originTag(s.arn)));
  const deleting = new Map(sources.filter((s) => s.deletedDate).map((s) => [originTag(s.arn), s] as const));
  const sweep = pLimit(deps.resyncParallelism);
  const options = fanOutOptions(deps);
  await Promise.all(
    config.destinations.flatMap((destination) =>
      [...(replicas.get(destination.name)?.values() ?? [])]
        .filter((replica) => {
          const origin = replica.tags[REPLICA_OF] ?? '';
          return (
            !replica.deletedDate &&
            isOriginIn(origin, deps.self.region, deps.self.account) &&
            !alive.has(origin) &&
            writtenBy(destination, replica, deleting.get(origin)?.tags)
          );
        })
        .map((replica) =>
          sweep(async () => {
            const origin = replica.tags[REPLICA_OF] as string;
            // Created (and replicated) after the listing: alive after all.
            if (parseSecretArn(origin)) {
              const now = await read(() => deps.source.describe(origin)).catch(() => 'unknown' as const);
              if (now === 'unknown' || (now && !now.deletedDate)) return;
            }
            const deletedDate = deleting.get(origin)?.deletedDate;
            const retired = {
              originTag: origin,
              name: replica.name,
              ...(deletedDate ? { deletedDate } : {}),
            };
            const result = await isolated(destination, replica.name, options, (api) =>
              retireReplica(retired, replica.name, destination, api, options.nowMs),
            );
            record(replica.name, [result]);
          }),
        ),
    ),
  );
  return { kind: 'resync', secrets: looked, outcomes, failures };
}

/**
 * Whether this destination wrote the replica (another destination in the same region and account may have,
 * under its own delete policy): its `estate:replica-destination` tag says so. A replica written before that
 * tag existed is matched by routing its origin's name (with the origin's tags when it is still listed).
 */
function writtenBy(
  destination: Destination,
  replica: SecretDescription,
  originTags: Readonly<Record<string, string>> | undefined,
): boolean {
  const writer = replica.tags[DESTINATION];
  if (writer !== undefined) return writer === destination.name;
  const name = nameOfArn(replica.tags[REPLICA_OF] ?? '');
  if (!name) return false;
  try {
    return destination.route(name, originTags ?? {})?.targetName === replica.name;
  } catch {
    return false;
  }
}
