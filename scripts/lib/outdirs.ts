// Where the scripts synthesize. synthesize() empties its outdir first, so two runs at once need two.
import { join } from 'node:path';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';

/**
 * `npm run plan -- <stack>`'s own directory, `.build/plan/<stack>`: plans of different stacks run side by side
 * (as the pull-request matrix does locally) without removing each other's synthesized stacks.
 */
export function planOutdir(stack: string, root: string = REPO_ROOT): string {
  if (!/^[A-Za-z0-9_-]+$/.test(stack)) throw new Error(`not a stack name: ${JSON.stringify(stack)}`);
  return join(root, '.build', 'plan', stack);
}
