// Account-segmented rollout of one environment: prints the ordered plan; with --apply, applies it stack by
// stack (shared services, global, then regions, primary first), stopping at the first failure.
// Usage: npm run rollout -- <env> [--apply]
import { join } from 'node:path';
import { loadEnvironments } from '../environments';
import { REPO_ROOT } from '../modules/bundled-function/bundle';
import { rolloutEnvironments, rolloutOrder } from './lib/rollout';
import { synthesize } from './lib/synth';
import { apply, init, prepareTerraform } from './lib/terraform';

async function main(): Promise<void> {
  const [name] = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
  const environments = loadEnvironments();
  const environment = name ? environments[name] : undefined;
  if (!environment) {
    throw new Error(
      `usage: npm run rollout -- <env> [--apply]; <env> is one of ${Object.keys(environments).join(', ')}`,
    );
  }
  const covered = rolloutEnvironments(environment, Object.values(environments));
  const stacks = rolloutOrder(
    synthesize(covered, join(REPO_ROOT, '.build', 'rollout', environment.name)),
    environment,
  );
  console.log(`Rollout of ${environment.name} (${covered.map((e) => e.name).join(' + ')}), in order:`);
  stacks.forEach((stack, index) =>
    console.log(
      `  ${String(index + 1).padStart(2)}. ${stack.name}${stack.dependsOn.length ? `  (after ${stack.dependsOn.join(', ')})` : ''}`,
    ),
  );
  if (!process.argv.includes('--apply')) {
    console.log('\nDry run: add --apply to apply each stack in this order.');
    return;
  }
  const cli = prepareTerraform();
  for (const stack of stacks) {
    console.log(`\n==> ${stack.name}`);
    await init(cli, stack.dir);
    const result = await apply(cli, stack.dir);
    console.log(
      result.stdout
        .split('\n')
        .filter((line) => /^(Apply complete|No changes)/.test(line))
        .join('\n'),
    );
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
