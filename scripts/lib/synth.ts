import { App } from 'cdktf';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { validateEnvironment, type EnvironmentConfig } from '../../environments';
import { local } from '../../environments/local';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import { buildEstate } from '../../stacks/estate';

/** A synthesized stack: its name and the directory holding its `cdk.tf.json`. */
export interface SynthesizedStack {
  readonly name: string;
  readonly dir: string;
}

/** Synthesizes the stacks of some environments into a fresh `outdir`, in-process. */
export function synthesize(environments: readonly EnvironmentConfig[], outdir: string): SynthesizedStack[] {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const app = new App({ outdir });
  const stacks = buildEstate(app, environments);
  app.synth();
  return stacks.map((stack) => ({ name: stack.node.id, dir: join(outdir, 'stacks', stack.node.id) }));
}

/** The `local` environment pointed at an emulator endpoint. */
export function localEnvironment(endpoint: string): EnvironmentConfig {
  return validateEnvironment('local', local({ ESTATE_EMULATOR_ENDPOINT: endpoint }));
}

export const defaultOutdir = (label: string) => join(REPO_ROOT, '.build', 'synth', label);
