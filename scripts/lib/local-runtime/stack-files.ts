/** Reads a synthesized stack's files (`cdk.tf.json`, `terraform.<name>.tfstate`) and discovers its triggers. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { discoverTriggers, type StackTriggers } from './discover';

export interface StackLocation {
  readonly name: string;
  /** The directory holding `cdk.tf.json` (and, once applied, the local state). */
  readonly dir: string;
}

export const stackConfigPath = (stack: StackLocation) => join(stack.dir, 'cdk.tf.json');
export const stackStatePath = (stack: StackLocation) => join(stack.dir, `terraform.${stack.name}.tfstate`);

export function readStackTriggers(stack: StackLocation): StackTriggers {
  const config = JSON.parse(readFileSync(stackConfigPath(stack), 'utf8')) as unknown;
  const statePath = stackStatePath(stack);
  const state = existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as unknown) : undefined;
  return discoverTriggers(stack.name, config, state);
}
