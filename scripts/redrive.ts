// Moves dead-lettered messages back to their queue after a fix, and says why they had been dead-lettered.
// Usage: npm run redrive -- <env> <region> [--queue sync] [--max <n>]
// `local` redrives on the emulator at ESTATE_EMULATOR_ENDPOINT; other environments use your AWS credentials.
import { loadEnvironments, type AwsRegion } from '../environments';
import { queueUrl, redrive, REDRIVE_QUEUES, sqsClientFor } from './lib/redrive';

function option(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

async function main(): Promise<void> {
  const positional = process.argv
    .slice(2)
    .filter((arg, i, all) => !arg.startsWith('--') && !all[i - 1]?.startsWith('--'));
  const [name, region] = positional;
  const environments = loadEnvironments();
  const environment = name ? environments[name] : undefined;
  const capability = option('queue') ?? 'sync';
  const queues = REDRIVE_QUEUES[capability];
  const usage = `usage: npm run redrive -- <env> <region> [--queue ${Object.keys(REDRIVE_QUEUES).join('|')}] [--max <n>]`;
  if (!environment || !queues)
    throw new Error(`${usage}; <env> is one of ${Object.keys(environments).join(', ')}`);
  if (!environment.regions.includes(region as AwsRegion))
    throw new Error(`${usage}; <region> is one of ${environment.regions.join(', ')}`);
  const max = option('max') === undefined ? undefined : Number(option('max'));
  if (max !== undefined && (!Number.isInteger(max) || max < 1))
    throw new Error(`${usage}; --max takes a positive integer`);

  const sqs = sqsClientFor(environment, region as AwsRegion);
  const { from, to } = queues(environment);
  const result = await redrive(sqs, await queueUrl(sqs, from), await queueUrl(sqs, to), { max });
  console.log(`moved ${result.moved} message(s) from ${from} back to ${to} in ${region}`);
  for (const [reason, count] of result.byReason) console.log(`  ${String(count).padStart(6)}  ${reason}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
