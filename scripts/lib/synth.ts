import { App } from 'cdktf';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { validateEnvironment, type AwsRegion, type EnvironmentConfig } from '../../environments';
import { local } from '../../environments/local';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';
import { buildEstate, estateStackOwners } from '../../stacks/estate';
import { buildAccountSetup } from '../../stacks/setup';

/** A synthesized stack: its name, the directory holding its `cdk.tf.json`, the stacks it deploys after. */
export interface SynthesizedStack {
  readonly name: string;
  readonly dir: string;
  readonly dependsOn: readonly string[];
}

/** Synthesizes the stacks of some environments into a fresh `outdir`, in-process. */
export function synthesize(environments: readonly EnvironmentConfig[], outdir: string): SynthesizedStack[] {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const app = new App({ outdir });
  const stacks = buildEstate(app, environments);
  app.synth();
  return stacks.map((stack) => ({
    name: stack.node.id,
    dir: join(outdir, 'stacks', stack.node.id),
    dependsOn: stack.dependencies.map((dependency) => dependency.node.id),
  }));
}

/**
 * Synthesizes what is applied once by hand before any rollout (the `terraform-cloud` stack and each
 * account's `bootstrap-<env>`), for the environments deployed through Terraform Cloud.
 */
export function synthesizeSetup(
  environments: readonly EnvironmentConfig[],
  outdir: string,
): SynthesizedStack[] {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const app = new App({ outdir });
  const estate = buildEstate(app, environments);
  const setup = buildAccountSetup(app, environments, estateStackOwners(estate, environments));
  app.synth();
  return setup.map((stack) => ({
    name: stack.node.id,
    dir: join(outdir, 'stacks', stack.node.id),
    dependsOn: stack.dependencies.map((dependency) => dependency.node.id),
  }));
}

/** Stacks in deployment waves: each wave depends only on earlier waves, so its stacks apply side by side. */
export function deploymentWaves<T extends SynthesizedStack>(stacks: readonly T[]): T[][] {
  const waves: T[][] = [];
  const done = new Set<string>();
  let pending = [...stacks];
  while (pending.length > 0) {
    const ready = pending.filter((stack) =>
      stack.dependsOn.every((name) => done.has(name) || !stacks.some((s) => s.name === name)),
    );
    if (ready.length === 0)
      throw new Error(`dependency cycle among ${pending.map((s) => s.name).join(', ')}`);
    waves.push(ready);
    ready.forEach((stack) => done.add(stack.name));
    pending = pending.filter((stack) => !ready.includes(stack));
  }
  return waves;
}

/** The `local` environment pointed at an emulator endpoint (optionally with other regions). */
export function localEnvironment(endpoint: string, regions?: readonly AwsRegion[]): EnvironmentConfig {
  const declared = local({ ESTATE_EMULATOR_ENDPOINT: endpoint });
  return validateEnvironment('local', regions ? { ...declared, regions: [...regions] } : declared);
}

export const defaultOutdir = (label: string) => join(REPO_ROOT, '.build', 'synth', label);
