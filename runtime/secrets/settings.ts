import * as z from 'zod/mini';
import { loadConfig } from '../lib/config';

const count = (what: string, min: number, max: number, fallback: number) =>
  z._default(
    z.coerce.number().check(z.int(), z.gte(min), z.lte(max, `expected ${what}, ${min} to ${max}`)),
    fallback,
  );

const required = (what: string) => z.string().check(z.minLength(1, `expected ${what}`));

const schema = z.object({
  AWS_REGION: required('the region the function runs in'),
  SECRETS_CONFIG_SECRET: required("the name of the replicator's config secret"),
  SECRETS_REPLICATOR_ROLE_ARN: z
    .string()
    .check(z.regex(/^arn:[a-z-]+:iam::\d{12}:role\/.+$/, "expected the function's own role ARN")),
  SECRETS_QUEUE_URL: required("the URL of the replicator's queue"),
  SECRETS_DEAD_LETTER_QUEUE_URL: required("the URL of the replicator's dead-letter queue"),
  SECRETS_MAX_RECEIVE_COUNT: count("the queue's maxReceiveCount", 1, 1000, 5),
  SECRETS_PARALLELISM: count('destinations replicated at once', 1, 64, 8),
  SECRETS_RESYNC_PARALLELISM: count('secrets resynced at once', 1, 64, 4),
  SECRETS_CONFIG_CHECK_MS: count(
    'how often the config secret is checked for a new version, ms',
    0,
    3_600_000,
    60_000,
  ),
});

export type ReplicatorSettings = z.output<typeof schema> & { readonly account: string };

/** The replicator's settings from its environment; every problem named at once, no value quoted. */
export function loadReplicatorSettings(env: NodeJS.ProcessEnv = process.env): ReplicatorSettings {
  const settings = loadConfig(schema, env);
  return { ...settings, account: settings.SECRETS_REPLICATOR_ROLE_ARN.split(':')[4] as string };
}
