import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments, type EnvironmentConfig } from '../../environments';
import { planOutdir } from '../../scripts/lib/outdirs';
import {
  COMMAND_GRACE_MS,
  DEFAULT_ROLLOUT_DEADLINE_MIN,
  RolloutError,
  applyTimeoutMs,
  checkDependenciesApplied,
  commandTimeouts,
  environmentStacks,
  executeRollout,
  parseRolloutArgs,
  rolloutDeadlineMs,
  rolloutOrder,
  selectStacks,
  type RolloutSteps,
} from '../../scripts/lib/rollout';
import { synthesize, type SynthesizedStack } from '../../scripts/lib/synth';

const environments = loadEnvironments({});
const { shared, dev, prod } = environments;
if (!shared || !dev || !prod) throw new Error('missing environments');
const names = (stacks: readonly SynthesizedStack[]) => stacks.map((s) => s.name);
const stack = (name: string, dependsOn: string[] = []): SynthesizedStack => ({ name, dir: '', dependsOn });

describe('rolloutOrder of an environment', () => {
  const synthesized = synthesize(
    Object.values(environments).filter((env) => !env.emulator),
    mkdtempSync(join(tmpdir(), 'rollout-')),
  );
  const rollout = (environment: EnvironmentConfig) =>
    names(rolloutOrder(environmentStacks(synthesized, environment), environment));

  it("covers only the environment's own stacks: global, then the regions primary first", () => {
    expect(rollout(dev)).toEqual(['dev-global', 'dev-eu-central-1', 'dev-us-east-1']);
    expect(rollout(prod)).toEqual(['prod-global', 'prod-eu-central-1', 'prod-us-east-1']);
  });

  it('rolls out the shared account on its own, the build region after the regions it replicates into', () => {
    expect(rollout(shared)).toEqual(['shared-us-east-1', 'shared-eu-central-1']);
  });
});

describe('rolloutOrder', () => {
  it('puts every stack after those it depends on, whatever order they come in', () => {
    const stacks = [
      stack('dev-us-east-1', ['dev-global']),
      stack('dev-eu-central-1', ['dev-global']),
      stack('dev-global', ['shared-eu-central-1']),
      stack('shared-eu-central-1'),
    ];
    expect(names(rolloutOrder(stacks, dev))).toEqual([
      'shared-eu-central-1',
      'dev-global',
      'dev-eu-central-1',
      'dev-us-east-1',
    ]);
  });

  it("takes a dependency on another environment's stack as done", () => {
    const stacks = [stack('dev-eu-central-1', ['dev-global']), stack('dev-global', ['shared-eu-central-1'])];
    expect(names(rolloutOrder(stacks, dev))).toEqual(['dev-global', 'dev-eu-central-1']);
  });

  it('refuses a dependency cycle', () => {
    expect(() => rolloutOrder([stack('a', ['b']), stack('b', ['a'])], dev)).toThrow(
      'dependency cycle among a, b',
    );
  });
});

describe('parseRolloutArgs', () => {
  const known = ['shared', 'dev', 'prod', 'local'];

  it('reads the environment, --apply and --only in any order', () => {
    expect(parseRolloutArgs(['dev'], known)).toEqual({ environment: 'dev', apply: false });
    expect(parseRolloutArgs(['--apply', 'prod', '--only', 'prod-us-east-1'], known)).toEqual({
      environment: 'prod',
      apply: true,
      only: 'prod-us-east-1',
    });
  });

  it('refuses what it does not know, with the usage', () => {
    expect(() => parseRolloutArgs([], known)).toThrow(
      'usage: npm run rollout -- <env> [--apply] [--only <stack>]; <env> is one of shared, dev, prod, local',
    );
    expect(() => parseRolloutArgs(['staging'], known)).toThrow('<env> is one of shared, dev, prod, local');
    expect(() => parseRolloutArgs(['dev', 'prod'], known)).toThrow('usage:');
    expect(() => parseRolloutArgs(['dev', '--force'], known)).toThrow('unknown option --force; usage:');
    expect(() => parseRolloutArgs(['dev', '--only'], known)).toThrow('--only needs a stack name');
    expect(() => parseRolloutArgs(['dev', '--only', '--apply'], known)).toThrow('--only needs a stack name');
  });
});

describe('selectStacks', () => {
  const ordered = [stack('dev-global'), stack('dev-eu-central-1'), stack('dev-us-east-1')];

  it('takes every stack, or only the one --only names', () => {
    expect(names(selectStacks(ordered, dev))).toEqual(names(ordered));
    expect(names(selectStacks(ordered, dev, 'dev-us-east-1'))).toEqual(['dev-us-east-1']);
  });

  it("refuses a stack the environment does not have, listing the environment's", () => {
    expect(() => selectStacks(ordered, dev, 'prod-global')).toThrow(
      '--only prod-global: dev has no such stack; its stacks are dev-global, dev-eu-central-1, dev-us-east-1',
    );
  });
});

describe('applyTimeoutMs', () => {
  it('is 30 minutes unless ESTATE_APPLY_TIMEOUT_MIN says otherwise', () => {
    expect(applyTimeoutMs({})).toBe(30 * 60_000);
    expect(applyTimeoutMs({ ESTATE_APPLY_TIMEOUT_MIN: '45' })).toBe(45 * 60_000);
    expect(applyTimeoutMs({ ESTATE_APPLY_TIMEOUT_MIN: '0.5' })).toBe(30_000);
  });

  it('refuses anything but a positive number of minutes', () => {
    expect(() => applyTimeoutMs({ ESTATE_APPLY_TIMEOUT_MIN: 'soon' })).toThrow(
      'ESTATE_APPLY_TIMEOUT_MIN=soon: expected a positive number of minutes',
    );
    expect(() => applyTimeoutMs({ ESTATE_APPLY_TIMEOUT_MIN: '-5' })).toThrow('expected a positive number');
  });
});

describe('executeRollout', () => {
  const devStacks = [stack('dev-global'), stack('dev-eu-central-1'), stack('dev-us-east-1')];

  /** Steps that record what they are asked to do; `fail` makes one step throw. */
  function recording(
    options: { fail?: string; noChanges?: string[] } = {},
  ): RolloutSteps<SynthesizedStack> & { done: string[] } {
    const done: string[] = [];
    const step = (what: string) => async () => {
      done.push(what);
      if (options.fail === what) throw new Error(`${what} failed`);
    };
    return {
      done,
      log: (line) => done.push(`log ${line}`),
      dependencies: async () => {
        await step('preflight dependencies')();
        return ['dependencies: ok, shared-us-east-1 applied'];
      },
      beforeAll: async () => {
        await step('preflight all')();
        return ['Lambda concurrency in eu-central-1: ok'];
      },
      beforeFirstRegion: async () => {
        await step('preflight regions')();
        return ['DNS delegation of dev.estate.example.com: ok'];
      },
      init: (s) => step(`init ${s.name}`)(),
      plan: async (s) => {
        await step(`plan ${s.name}`)();
        const changes = !options.noChanges?.includes(s.name);
        return { changes, summary: changes ? 'Plan: 1 to add, 0 to change, 0 to destroy.' : 'No changes.' };
      },
      apply: (s) => step(`apply ${s.name}`)(),
      discardPlan: (s) => done.push(`discard ${s.name}`),
    };
  }

  it('checks, then inits, plans and applies each stack in order, DNS before the first region', async () => {
    const steps = recording({ noChanges: ['dev-global'] });
    await executeRollout(dev, devStacks, steps);
    expect(steps.done).toEqual([
      'preflight dependencies',
      'log preflight: dependencies: ok, shared-us-east-1 applied',
      'preflight all',
      'log preflight: Lambda concurrency in eu-central-1: ok',
      'log ==> dev-global',
      'init dev-global',
      'plan dev-global',
      'log dev-global: No changes.',
      'discard dev-global',
      'preflight regions',
      'log preflight: DNS delegation of dev.estate.example.com: ok',
      'log ==> dev-eu-central-1',
      'init dev-eu-central-1',
      'plan dev-eu-central-1',
      'log dev-eu-central-1: Plan: 1 to add, 0 to change, 0 to destroy.',
      'apply dev-eu-central-1',
      'discard dev-eu-central-1',
      'log ==> dev-us-east-1',
      'init dev-us-east-1',
      'plan dev-us-east-1',
      'log dev-us-east-1: Plan: 1 to add, 0 to change, 0 to destroy.',
      'apply dev-us-east-1',
      'discard dev-us-east-1',
    ]);
  });

  it('removes the plan file after a failed apply or plan too', async () => {
    const failedApply = recording({ fail: 'apply dev-eu-central-1' });
    await executeRollout(dev, devStacks, failedApply).catch(() => undefined);
    expect(failedApply.done.slice(-2)).toEqual(['apply dev-eu-central-1', 'discard dev-eu-central-1']);
    const failedPlan = recording({ fail: 'plan dev-global' });
    await executeRollout(dev, devStacks, failedPlan).catch(() => undefined);
    expect(failedPlan.done.slice(-2)).toEqual(['plan dev-global', 'discard dev-global']);
  });

  it('stops at the first failure, saying where, what was rolled out and what was not attempted', async () => {
    const steps = recording({ fail: 'apply dev-eu-central-1' });
    const error = await executeRollout(dev, devStacks, steps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RolloutError);
    expect((error as Error).message).toBe(
      'rollout of dev stopped at dev-eu-central-1 (terraform apply):\napply dev-eu-central-1 failed\n' +
        'rolled out before it: dev-global; not attempted: dev-us-east-1',
    );
    expect(steps.done.filter((d) => d.includes('dev-us-east-1'))).toEqual([]);
  });

  it('applies nothing in a region whose DNS preflight fails', async () => {
    const steps = recording({ fail: 'preflight regions' });
    await expect(executeRollout(dev, devStacks, steps)).rejects.toThrow(
      'rollout of dev stopped before dev-eu-central-1 (preflight):\npreflight regions failed\n' +
        'rolled out before it: dev-global; not attempted: dev-eu-central-1, dev-us-east-1',
    );
    expect(steps.done.filter((d) => d.includes('dev-eu-central-1'))).toEqual([]);
  });

  it('applies nothing when the first preflight fails', async () => {
    const steps = recording({ fail: 'preflight all' });
    await expect(executeRollout(dev, devStacks, steps)).rejects.toThrow(
      'rollout of dev stopped before any stack (preflight):\npreflight all failed\n' +
        'rolled out before it: none; not attempted: dev-global, dev-eu-central-1, dev-us-east-1',
    );
    expect(steps.done).toEqual([
      'preflight dependencies',
      'log preflight: dependencies: ok, shared-us-east-1 applied',
      'preflight all',
    ]);
  });

  it('runs the DNS preflight before a regional stack rolled out alone, and never for the shared account', async () => {
    const alone = recording();
    await executeRollout(dev, [stack('dev-us-east-1')], alone);
    expect(alone.done.slice(2, 5)).toEqual(['preflight all', expect.any(String), 'preflight regions']);

    const sharedSteps = recording();
    await executeRollout(shared, [stack('shared-us-east-1'), stack('shared-eu-central-1')], sharedSteps);
    expect(sharedSteps.done).not.toContain('preflight regions');
    expect(sharedSteps.done).toContain('apply shared-eu-central-1');
  });
});

describe('checkDependenciesApplied', () => {
  const sharedStacks = [stack('shared-us-east-1'), stack('shared-eu-central-1', ['shared-us-east-1'])];
  const devStacks = [
    stack('dev-global', ['shared-us-east-1', 'shared-eu-central-1']),
    stack('dev-eu-central-1', ['dev-global']),
    stack('dev-us-east-1', ['dev-global']),
  ];
  const all = [...sharedStacks, ...devStacks];
  const environmentNames = Object.keys(environments);
  /** Reads states from a table; a stack missing from it cannot be read. */
  const states = (table: Record<string, string>) => {
    const read: string[] = [];
    const stateList = async (s: SynthesizedStack) => {
      read.push(s.name);
      const state = table[s.name];
      if (state === undefined) throw new Error(`terraform init exited 1\nError: workspace not found`);
      return state;
    };
    return { read, stateList };
  };

  it("fails before anything is applied when another environment's stack it deploys after was never applied", async () => {
    const { read, stateList } = states({ 'shared-us-east-1': '', 'shared-eu-central-1': '\n' });
    const check = checkDependenciesApplied({
      environment: dev,
      stacks: devStacks,
      all,
      environments: environmentNames,
      stateList,
    });
    await expect(check).rejects.toThrow(
      'shared-us-east-1 and shared-eu-central-1 have never been applied (no state), and dev-global deploys ' +
        'after them: apply them first (npm run rollout -- shared --apply), then run this rollout again',
    );
    expect(read).toEqual(['shared-us-east-1', 'shared-eu-central-1']);

    // And executeRollout, whose first preflight this is, then applies nothing.
    const done: string[] = [];
    const noStep = async (s: SynthesizedStack) => {
      done.push(s.name);
    };
    await expect(
      executeRollout(dev, devStacks, {
        dependencies: () =>
          checkDependenciesApplied({
            environment: dev,
            stacks: devStacks,
            all,
            environments: environmentNames,
            stateList,
          }),
        beforeAll: async () => {
          done.push('beforeAll');
          return [];
        },
        beforeFirstRegion: async () => [],
        init: noStep,
        plan: async () => ({ changes: true, summary: '' }),
        apply: noStep,
        discardPlan: () => undefined,
        log: () => undefined,
      }),
    ).rejects.toThrow(/^rollout of dev stopped before any stack \(preflight\):\nshared-us-east-1 and/);
    expect(done).toEqual([]);
  });

  it('passes when they were applied, and names the --only command for a stack of its own', async () => {
    const applied = states({ 'shared-us-east-1': 'aws_ecr_repository.r\n', 'shared-eu-central-1': 'x\n' });
    await expect(
      checkDependenciesApplied({
        environment: dev,
        stacks: devStacks,
        all,
        environments: environmentNames,
        ...applied,
      }),
    ).resolves.toEqual(['dependencies: ok, shared-us-east-1, shared-eu-central-1 applied']);

    const only = [stack('dev-us-east-1', ['dev-global'])];
    await expect(
      checkDependenciesApplied({
        environment: dev,
        stacks: only,
        all,
        environments: environmentNames,
        stateList: states({ 'dev-global': '' }).stateList,
      }),
    ).rejects.toThrow(
      'dev-global has never been applied (no state), and dev-us-east-1 deploys after it: apply it first ' +
        '(npm run rollout -- dev --apply --only dev-global), then run this rollout again',
    );
    await expect(
      checkDependenciesApplied({
        environment: shared,
        stacks: sharedStacks,
        all,
        environments: environmentNames,
        stateList: states({}).stateList,
      }),
    ).resolves.toEqual(['dependencies: none outside this rollout']);
  });

  it('says a state it cannot read is not checked, rather than taking it as never applied', async () => {
    const lines = await checkDependenciesApplied({
      environment: dev,
      stacks: devStacks,
      all,
      environments: environmentNames,
      stateList: states({ 'shared-eu-central-1': 'x\n' }).stateList,
    });
    expect(lines).toEqual([
      'dependencies: ok, shared-eu-central-1 applied',
      'dependencies: not checked, could not read the state of shared-us-east-1 (terraform init exited 1 ' +
        "Error: workspace not found); if it is access, the check needs this environment's Terraform Cloud " +
        'token to read those workspaces',
    ]);
  });
});

describe('the rollout deadline', () => {
  it('is 225 minutes unless ESTATE_ROLLOUT_DEADLINE_MIN says otherwise, and refuses nonsense', () => {
    expect(DEFAULT_ROLLOUT_DEADLINE_MIN).toBe(225);
    expect(rolloutDeadlineMs({})).toBe(225 * 60_000);
    expect(rolloutDeadlineMs({ ESTATE_ROLLOUT_DEADLINE_MIN: '90' })).toBe(90 * 60_000);
    expect(() => rolloutDeadlineMs({ ESTATE_ROLLOUT_DEADLINE_MIN: '0' })).toThrow(
      'ESTATE_ROLLOUT_DEADLINE_MIN=0: expected a positive number of minutes',
    );
  });

  it("cuts each command's limit to what is left minus its grace period, and starts none too late", () => {
    let now = 0;
    const deadline = 225 * 60_000;
    const limit = commandTimeouts(deadline, COMMAND_GRACE_MS, () => now);
    expect(limit(30 * 60_000, 'terraform apply of dev-global')).toBe(30 * 60_000);
    now = 200 * 60_000; // 25 minutes left: a 30-minute apply gets 23, so it ends, grace included, by then
    expect(limit(30 * 60_000, 'terraform apply of dev-global')).toBe(23 * 60_000);
    expect(now + limit(30 * 60_000, 'x') + COMMAND_GRACE_MS).toBe(deadline);
    now = deadline - 90_000; // 90 s left, less than the grace period itself
    expect(() => limit(30 * 60_000, 'terraform apply of dev-us-east-1')).toThrow(
      /^not starting terraform apply of dev-us-east-1: the rollout's deadline \(ESTATE_ROLLOUT_DEADLINE_MIN, default 225 min\) leaves 90 s/,
    );
  });
});

describe('planOutdir', () => {
  it('gives each stack its own directory, and refuses what is not a stack name', () => {
    expect(planOutdir('dev-global', '/repo')).toBe('/repo/.build/plan/dev-global');
    expect(planOutdir('dev-us-east-1', '/repo')).not.toBe(planOutdir('dev-global', '/repo'));
    expect(() => planOutdir('../x', '/repo')).toThrow('not a stack name: "../x"');
  });
});
