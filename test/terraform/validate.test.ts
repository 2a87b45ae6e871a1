import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { loadEnvironments, validateEnvironment } from '../../environments';
import { prod } from '../../environments/prod';
import { synthesize, synthesizeSetup, type SynthesizedStack } from '../../scripts/lib/synth';
import { initOffline, prepareTerraform, terraform, validate } from '../../scripts/lib/terraform';

const outdir = (label: string) => mkdtempSync(join(tmpdir(), `estate-validate-${label}-`));
const environments = Object.values(loadEnvironments());
const threeRegionProd = validateEnvironment('prod', {
  ...prod,
  regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'],
});
const estate = [
  ...synthesize(environments, outdir('estate')),
  ...synthesize([threeRegionProd], outdir('3r')).map((stack) => ({
    ...stack,
    name: `${stack.name} (3-region prod)`,
  })),
];
// Applied once by hand before any rollout: bootstrap-<env> (AWS) and terraform-cloud (hashicorp/tfe).
const setup = synthesizeSetup(environments, outdir('setup'));

/** The providers a stack requires, as `<namespace>/<type>` (`aws` is short for `hashicorp/aws`). */
function requiredProviders(stack: SynthesizedStack): string[] {
  const config = JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as {
    terraform?: { required_providers?: Record<string, { source?: string }> };
  };
  return Object.entries(config.terraform?.required_providers ?? {}).map(([name, { source }]) => {
    const address = (source ?? name).replace(/^registry\.terraform\.io\//, '');
    return address.includes('/') ? address : `hashicorp/${address}`;
  });
}

// Only hashicorp/aws comes from the local mirror (or its one-off download): a stack needing another provider
// would need the registry, so it is left out here and named in a test.
const needsOthers = (stack: SynthesizedStack) => requiredProviders(stack).some((p) => p !== 'hashicorp/aws');
const all = [...estate, ...setup];
const stacks = all.filter((stack) => !needsOthers(stack));
const skipped = all.filter(needsOthers);
const skippedNote = skipped.map((s) => `${s.name} (${requiredProviders(s).join(', ')})`).join(', ') || 'none';

const cli = prepareTerraform();

// Every stack validates side by side (two at a time: provider schema loading is CPU-bound), then each
// stack's result is its own test.
const limit = pLimit(2);
const outcomes = new Map(
  stacks.map((stack) => [
    stack.name,
    limit(async () => {
      await initOffline(cli, stack.dir);
      return (await validate(cli, stack.dir)).stdout;
    }).catch((error: unknown) => `failed: ${String(error)}`),
  ]),
);

jest.setTimeout(10 * 60_000);

describe('terraform validate', () => {
  it('selects hashicorp/aws 5.100.0, installed from the local mirror', async () => {
    const [first] = stacks;
    if (!first) throw new Error('no stacks');
    await outcomes.get(first.name);
    const version = JSON.parse((await terraform(cli, first.dir, ['version', '-json'])).stdout) as {
      provider_selections: Record<string, string>;
    };
    expect(version.provider_selections).toEqual({ 'registry.terraform.io/hashicorp/aws': '5.100.0' });
  });

  it(`validates every estate and bootstrap stack; skips, as needing providers outside the mirror: ${skippedNote}`, () => {
    expect(
      skipped.filter((s) => estate.includes(s) || s.name.startsWith('bootstrap-')).map((s) => s.name),
    ).toEqual([]);
    expect(stacks.filter((s) => s.name.startsWith('bootstrap-')).length).toBeGreaterThan(0);
  });

  it.each(stacks.map((s) => s.name))('%s is valid Terraform', async (name) => {
    await expect(outcomes.get(name)).resolves.toContain('Success! The configuration is valid.');
  });
});
