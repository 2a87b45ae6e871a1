import { emptyTally, foldApplyLine, slowest } from '../../scripts/lib/apply-events';
import { applyTimeline, criticalPath, resourceDependencies } from '../../scripts/lib/apply-timeline';
import type { StackProgress } from '../../scripts/lib/local-estate';
import { progressLine } from '../../scripts/lib/progress-view';
import { stackNeeds, unmetNeeds, type StackConfig } from '../../scripts/lib/stack-gates';

const hook = (type: string, addr: string, action: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type, hook: { resource: { addr }, action, ...extra } });

describe('terraform apply -json folded into a tally', () => {
  it('counts planned changes, in-flight and completed managed resources, and skips data sources', () => {
    const lines = [
      JSON.stringify({ type: 'version', terraform: '1.11.4' }),
      hook('apply_start', 'data.aws_route53_zone.Zone', 'read'),
      hook('apply_complete', 'data.aws_route53_zone.Zone', 'read', { elapsed_seconds: 1 }),
      JSON.stringify({
        type: 'change_summary',
        changes: { add: 3, change: 1, remove: 1, operation: 'plan' },
      }),
      hook('apply_start', 'aws_sqs_queue.Dlq', 'create'),
      hook('apply_start', 'aws_kms_key.Key', 'create'),
      hook('apply_complete', 'aws_sqs_queue.Dlq', 'create', { elapsed_seconds: 25 }),
      'not json at all',
      JSON.stringify({ type: 'change_summary', changes: { add: 3, operation: 'apply' } }),
    ];
    const tally = lines.reduce(foldApplyLine, emptyTally());
    expect(tally.planned).toBe(5);
    expect([...tally.completed]).toEqual(['aws_sqs_queue.Dlq']);
    expect([...tally.inFlight]).toEqual(['aws_kms_key.Key']);
    expect(slowest(tally, 3)).toEqual([{ address: 'aws_sqs_queue.Dlq', seconds: 25 }]);
  });

  it('keeps error diagnostics readable (address, summary, detail) and the outputs by value', () => {
    const tally = [
      JSON.stringify({
        type: 'diagnostic',
        diagnostic: { severity: 'warning', summary: 'deprecated' },
      }),
      JSON.stringify({
        type: 'diagnostic',
        diagnostic: {
          severity: 'error',
          summary: 'creating Lambda Alias (live)',
          detail: 'ConflictException',
          address: 'aws_lambda_alias.Live',
        },
      }),
      hook('apply_errored', 'aws_lambda_alias.Live', 'create'),
      JSON.stringify({ type: 'outputs', outputs: { url: { sensitive: false, type: 'string', value: 'x' } } }),
    ].reduce(
      foldApplyLine,
      foldApplyLine(emptyTally(), hook('apply_start', 'aws_lambda_alias.Live', 'create')),
    );
    expect(tally.errors).toEqual(['aws_lambda_alias.Live: creating Lambda Alias (live): ConflictException']);
    expect(tally.inFlight.size).toBe(0);
    expect(tally.completed.size).toBe(0);
    expect(tally.outputs).toEqual({ url: 'x' });
  });

  it('returns the same tally for lines that change nothing, so callers can skip redraws', () => {
    const tally = emptyTally();
    expect(foldApplyLine(tally, hook('apply_progress', 'aws_sqs_queue.Dlq', 'create'))).toBe(tally);
    expect(foldApplyLine(tally, '{"type":"change_summary","changes":{"operation":"apply"}}')).toBe(tally);
    expect(foldApplyLine(tally, '[1,2]')).toBe(tally);
  });
});

describe('when a stack of the local estate may start', () => {
  const stack = (name: string, dependsOn: string[], config: unknown): StackConfig => ({
    name,
    dependsOn,
    config,
  });
  const global = stack('local-global', ['local-shared'], {
    resource: {
      aws_route53_zone: { Zone: {} },
      aws_dynamodb_table: { Status: {}, Workflows: {} },
    },
  });
  const shared = stack('local-shared', [], { resource: { aws_s3_bucket: { Artifacts: {} } } });
  const regional = stack('local-eu-central-1', ['local-global'], {
    data: { aws_route53_zone: { Zone: {} }, aws_availability_zones: { Zones: {} } },
    resource: { aws_route53_record: { Api: {} } },
  });
  const child = stack('local-child', ['local-global'], {
    data: {
      terraform_remote_state: {
        Global: { config: { path: '../local-global/terraform.local-global.tfstate' } },
      },
    },
  });
  const needs = stackNeeds([shared, global, regional, child]);

  it('waits for the resources its data sources look up in the stacks it depends on', () => {
    expect(needs.get('local-eu-central-1')).toEqual([
      { stack: 'local-global', addresses: ['aws_route53_zone.Zone'] },
    ]);
  });

  it('waits for the whole of a stack whose state it reads', () => {
    expect(needs.get('local-child')).toEqual([{ stack: 'local-global', addresses: 'all' }]);
  });

  it('does not wait for a dependency it reads nothing of (an order kept for rollouts only)', () => {
    expect(needs.get('local-global')).toEqual([]);
    expect(needs.get('local-shared')).toEqual([]);
  });

  it('is unmet until each needed resource (or counted instance) exists, or the stack finished', () => {
    const need = needs.get('local-eu-central-1') ?? [];
    const created = new Map<string, Set<string>>([['local-global', new Set(['aws_dynamodb_table.Status'])]]);
    const finished = new Set<string>();
    const unmet = () =>
      unmetNeeds(
        need,
        (name) => created.get(name) ?? new Set(),
        (name) => finished.has(name),
      );
    expect(unmet()).toEqual(['local-global: aws_route53_zone.Zone']);
    created.get('local-global')?.add('aws_route53_zone.Zone[0]');
    expect(unmet()).toEqual([]);
    const whole = needs.get('local-child') ?? [];
    expect(
      unmetNeeds(
        whole,
        () => new Set(['aws_route53_zone.Zone']),
        () => false,
      ),
    ).toEqual(['local-global']);
    expect(
      unmetNeeds(
        whole,
        () => new Set(),
        () => true,
      ),
    ).toEqual([]);
  });
});

describe('a stack progress line', () => {
  const base: StackProgress = {
    name: 'local-eu-central-1',
    phase: 'applying',
    waitingFor: [],
    tally: { ...emptyTally(), planned: 240, completed: new Set(['a', 'b']), inFlight: new Set(['c']) },
    startedAt: 1_000,
  };

  it('shows resources done of total, elapsed seconds and what is in flight', () => {
    expect(progressLine(base, 43_400, 20)).toBe(
      'local-eu-central-1    applying   2/240    42 s  (1 in flight)',
    );
  });

  it('names what a waiting stack waits for, and the apply time of an applied one', () => {
    expect(
      progressLine({ ...base, phase: 'waiting', waitingFor: ['local-global: aws_route53_zone.Zone'] }, 0, 18),
    ).toBe('local-eu-central-1  waiting for local-global: aws_route53_zone.Zone');
    expect(progressLine({ ...base, phase: 'applied', endedAt: 91_000 }, 500_000, 18)).toBe(
      'local-eu-central-1  applied    2/240    90 s',
    );
  });
});

describe('where an apply spent its time', () => {
  const at = (seconds: number) => new Date(Date.UTC(2026, 11, 2, 12, 0, seconds)).toISOString();
  const line = (type: string, addr: string, seconds: number, action = 'create') =>
    JSON.stringify({ type, '@timestamp': at(seconds), hook: { resource: { addr }, action } });
  const lines = [
    JSON.stringify({ type: 'version', '@timestamp': at(0) }),
    line('apply_start', 'data.aws_route53_zone.Zone', 5, 'read'),
    line('apply_complete', 'data.aws_route53_zone.Zone', 6, 'read'),
    line('apply_start', 'aws_kms_key.Key', 10),
    line('apply_start', 'aws_iam_role.Role', 10),
    line('apply_complete', 'aws_iam_role.Role', 11),
    line('apply_complete', 'aws_kms_key.Key', 25),
    line('apply_start', 'aws_sqs_queue.Dlq', 25),
    line('apply_complete', 'aws_sqs_queue.Dlq', 50),
    line('apply_start', 'aws_lambda_function.Fn', 50),
    line('apply_complete', 'aws_lambda_function.Fn', 55),
  ];
  const config = {
    resource: {
      aws_kms_key: { Key: {} },
      aws_iam_role: { Role: {} },
      aws_sqs_queue: { Dlq: { kms_master_key_id: '${aws_kms_key.Key.arn}' } },
      aws_lambda_function: {
        Fn: {
          role: '${aws_iam_role.Role.arn}',
          dead_letter_config: { target_arn: '${aws_sqs_queue.Dlq.arn}' },
          depends_on: ['aws_iam_role.Role'],
        },
      },
    },
  };

  it('times the plan up to the first change, and each change, leaving data-source reads out', () => {
    const timeline = applyTimeline(lines);
    expect(timeline.planSeconds).toBe(10);
    expect(timeline.totalSeconds).toBe(55);
    expect([...timeline.spans.keys()].sort()).toEqual([
      'aws_iam_role.Role',
      'aws_kms_key.Key',
      'aws_lambda_function.Fn',
      'aws_sqs_queue.Dlq',
    ]);
  });

  it('follows the dependency that finished last back from the last change (the critical path)', () => {
    const dependencies = resourceDependencies(config);
    expect([...(dependencies.get('aws_lambda_function.Fn') ?? [])].sort()).toEqual([
      'aws_iam_role.Role',
      'aws_sqs_queue.Dlq',
    ]);
    expect(criticalPath(applyTimeline(lines), dependencies).map((span) => span.address)).toEqual([
      'aws_kms_key.Key',
      'aws_sqs_queue.Dlq',
      'aws_lambda_function.Fn',
    ]);
  });
});
