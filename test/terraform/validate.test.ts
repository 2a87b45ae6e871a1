import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { loadEnvironments, validateEnvironment } from '../../environments';
import { prod } from '../../environments/prod';
import { synthesize } from '../../scripts/lib/synth';
import { initOffline, prepareTerraform, terraform, validate } from '../../scripts/lib/terraform';

const threeRegionProd = validateEnvironment('prod', {
  ...prod,
  regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'],
});
const stacks = [
  ...synthesize(Object.values(loadEnvironments()), mkdtempSync(join(tmpdir(), 'estate-validate-'))),
  ...synthesize([threeRegionProd], mkdtempSync(join(tmpdir(), 'estate-validate-3r-'))).map((stack) => ({
    ...stack,
    name: `${stack.name} (3-region prod)`,
  })),
];
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

  it.each(stacks.map((s) => s.name))('%s is valid Terraform', async (name) => {
    await expect(outcomes.get(name)).resolves.toContain('Success! The configuration is valid.');
  });
});
