import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadEnvironments } from '../../environments';
import { REPO_ROOT } from '../../modules/bundled-function';
import { rolloutEnvironments, rolloutOrder } from '../../scripts/lib/rollout';
import { synthesize } from '../../scripts/lib/synth';

interface Job {
  needs?: string | string[];
  environment?: string;
  strategy?: { matrix?: { stack?: string[] } };
  steps: Array<{ run?: string }>;
}
const workflow = (file: string) =>
  parse(readFileSync(join(REPO_ROOT, '.github', 'workflows', file), 'utf8')) as { jobs: Record<string, Job> };

const environments = loadEnvironments({});
const deployed = Object.values(environments).filter((env) => env.name !== 'local');
const stackNames = synthesize(deployed, mkdtempSync(join(tmpdir(), 'workflows-'))).map((s) => s.name);

describe('GitHub workflows', () => {
  it('plan exactly the stacks that exist in shared, dev and prod on pull requests', () => {
    const matrix = workflow('pull-request.yml').jobs.plan?.strategy?.matrix?.stack ?? [];
    expect([...matrix].sort()).toEqual([...stackNames].sort());
  });

  it('roll out dev on merge and prod only after it, behind the prod environment', () => {
    const jobs = workflow('deploy.yml').jobs;
    const rolledOut = Object.values(jobs).flatMap((job) =>
      job.steps.flatMap((step) =>
        [...(step.run ?? '').matchAll(/npm run rollout -- (\S+) --apply/g)].map((m) => m[1]),
      ),
    );
    expect(rolledOut).toEqual(['dev', 'prod']);
    for (const env of rolledOut) expect(Object.keys(environments)).toContain(env);
    expect(jobs.prod?.needs).toEqual('dev');
    expect(jobs.prod?.environment).toBe('prod');
  });
});

describe('rolloutOrder', () => {
  const dev = environments.dev;
  const shared = environments.shared;
  if (!dev || !shared) throw new Error('missing environments');

  it('takes shared services, then global, then the regions primary first', () => {
    const covered = rolloutEnvironments(dev, Object.values(environments));
    expect(covered.map((e) => e.name)).toEqual(['shared', 'dev']);
    const order = rolloutOrder(synthesize(covered, mkdtempSync(join(tmpdir(), 'rollout-'))), dev).map(
      (s) => s.name,
    );
    expect(order).toEqual([
      'shared-us-east-1',
      'shared-eu-central-1',
      'dev-global',
      'dev-eu-central-1',
      'dev-us-east-1',
    ]);
  });

  it('puts every stack after those it depends on, whatever order they come in', () => {
    const stacks = [
      { name: 'dev-us-east-1', dir: '', dependsOn: ['dev-global'] },
      { name: 'dev-eu-central-1', dir: '', dependsOn: ['dev-global'] },
      { name: 'dev-global', dir: '', dependsOn: ['shared-eu-central-1'] },
      { name: 'shared-eu-central-1', dir: '', dependsOn: [] },
    ];
    expect(rolloutOrder(stacks, dev).map((s) => s.name)).toEqual([
      'shared-eu-central-1',
      'dev-global',
      'dev-eu-central-1',
      'dev-us-east-1',
    ]);
  });

  it('refuses a dependency cycle', () => {
    const cycle = [
      { name: 'a', dir: '', dependsOn: ['b'] },
      { name: 'b', dir: '', dependsOn: ['a'] },
    ];
    expect(() => rolloutOrder(cycle, dev)).toThrow('dependency cycle among a, b');
  });
});
