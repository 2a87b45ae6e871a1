// Regenerates the README's table of stacks and resource counts per environment from the synthesized output.
// Usage: npm run readme:stacks
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments } from '../environments';
import { REPO_ROOT } from '../modules/bundled-function/bundle';
import { stackTable, withStackTable } from './lib/stack-table';
import { synthesize } from './lib/synth';

export function currentStackTable(): string {
  return stackTable(
    Object.values(loadEnvironments({})).map((environment) => ({
      environment,
      stacks: synthesize([environment], mkdtempSync(join(tmpdir(), `readme-${environment.name}-`))),
    })),
  );
}

if (require.main === module) {
  const path = join(REPO_ROOT, 'README.md');
  writeFileSync(path, withStackTable(readFileSync(path, 'utf8'), currentStackTable()));
  console.log('README.md stack table updated');
}
