import { TRUST_WITHOUT_DOCUMENTED_CONDITIONS, UNSCOPABLE_ACTIONS } from '../../modules/lib/policy';
import type { Block, TerraformJson } from '../support/synthesized';

/** A synthesized stack as the policy rules see it. */
export interface StackDocument {
  readonly name: string;
  readonly json: TerraformJson;
  /** `local` runs on the emulator: no deploy role, no account pin. */
  readonly local: boolean;
  /** Production: stricter retention. */
  readonly production: boolean;
}

export interface Violation {
  readonly rule: string;
  readonly stack: string;
  readonly resource: string;
  readonly message: string;
}

export interface Rule {
  readonly id: string;
  /** The checkov / trivy check it stands in for. */
  readonly covers: string;
  check(stack: StackDocument): Violation[];
}

type Entry = [id: string, block: Block];
const entries = (stack: StackDocument, type: string): Entry[] =>
  Object.entries(stack.json.resource?.[type] ?? {});
const refersTo = (value: unknown, type: string, id: string) =>
  typeof value === 'string' &&
  new RegExp(`\\$\\{${type}\\.${id}\\.(id|bucket|arn|function_name|name)\\}`).test(value);
const list = <T>(value: T | readonly T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? [...value] : [value as T];

interface Statement {
  Effect?: string;
  Action?: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}
const statementsOf = (policy: unknown): Statement[] => {
  if (typeof policy !== 'string') return [];
  try {
    return list((JSON.parse(policy) as { Statement?: Statement | Statement[] }).Statement);
  } catch {
    return [];
  }
};

function rule(
  id: string,
  covers: string,
  check: (stack: StackDocument, flag: (resource: string, message: string) => void) => void,
): Rule {
  return {
    id,
    covers,
    check(stack) {
      const found: Violation[] = [];
      check(stack, (resource, message) => found.push({ rule: id, stack: stack.name, resource, message }));
      return found;
    },
  };
}

/** Checks that every bucket of the stack has a companion resource satisfying `ok`. */
function bucketCompanion(
  type: string,
  what: string,
  ok: (companion: Block) => boolean,
): Parameters<typeof rule>[2] {
  return (stack, flag) => {
    for (const [id] of entries(stack, 'aws_s3_bucket')) {
      const companion = entries(stack, type).find(([, block]) => refersTo(block.bucket, 'aws_s3_bucket', id));
      if (!companion || !ok(companion[1])) flag(`aws_s3_bucket.${id}`, `expected ${what}`);
    }
  };
}

export const RULES: readonly Rule[] = [
  rule(
    's3-public-access-block',
    'CKV2_AWS_6 / AVD-AWS-0086..0094',
    bucketCompanion('aws_s3_bucket_public_access_block', 'all four public-access blocks', (b) =>
      ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets'].every(
        (k) => b[k] === true,
      ),
    ),
  ),
  rule(
    's3-sse-kms',
    'CKV_AWS_145 / AVD-AWS-0132',
    bucketCompanion(
      'aws_s3_bucket_server_side_encryption_configuration',
      'SSE-KMS with a customer-managed key',
      (b) =>
        list(b.rule as Block[]).some((r) => {
          const byDefault = r.apply_server_side_encryption_by_default as Block | undefined;
          return byDefault?.sse_algorithm === 'aws:kms' && typeof byDefault.kms_master_key_id === 'string';
        }),
    ),
  ),
  rule(
    's3-versioning',
    'CKV_AWS_21 / AVD-AWS-0090',
    bucketCompanion(
      'aws_s3_bucket_versioning',
      'versioning enabled',
      (b) => (b.versioning_configuration as Block | undefined)?.status === 'Enabled',
    ),
  ),
  rule('s3-tls-only', 'CKV_AWS_379 / s3-enforce-ssl', (stack, flag) => {
    // The emulator serves plain HTTP only (features.tlsOnlyBuckets, refused outside local).
    if (stack.local) return;
    bucketCompanion('aws_s3_bucket_policy', 'a policy denying requests without TLS', (b) =>
      statementsOf(b.policy).some(
        (s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
      ),
    )(stack, flag);
  }),
  rule('dynamodb-pitr', 'CKV_AWS_28 / AVD-AWS-0024', (stack, flag) => {
    for (const [id, table] of entries(stack, 'aws_dynamodb_table')) {
      if ((table.point_in_time_recovery as Block | undefined)?.enabled !== true)
        flag(`aws_dynamodb_table.${id}`, 'expected point-in-time recovery');
      for (const replica of list(table.replica as Block[])) {
        if (replica.point_in_time_recovery !== true)
          flag(
            `aws_dynamodb_table.${id}`,
            `expected point-in-time recovery on the ${String(replica.region_name)} replica`,
          );
      }
    }
    for (const [id, replica] of entries(stack, 'aws_dynamodb_table_replica')) {
      if (replica.point_in_time_recovery !== true)
        flag(`aws_dynamodb_table_replica.${id}`, 'expected point-in-time recovery');
    }
  }),
  rule('dynamodb-replica-protection', 'deletion protection on every global-table replica', (stack, flag) => {
    if (stack.local) return;
    for (const [id, table] of entries(stack, 'aws_dynamodb_table')) {
      if (list(table.replica as Block[]).length > 0)
        flag(
          `aws_dynamodb_table.${id}`,
          'expected replicas as aws_dynamodb_table_replica with deletion protection',
        );
    }
    for (const [id, replica] of entries(stack, 'aws_dynamodb_table_replica')) {
      if (replica.deletion_protection_enabled !== true)
        flag(`aws_dynamodb_table_replica.${id}`, 'expected deletion protection');
    }
  }),
  rule(
    'prevent-destroy',
    'keys, tables, replicas and zones survive a plan that would destroy them',
    (stack, flag) => {
      if (stack.local) return;
      for (const type of [
        'aws_kms_key',
        'aws_dynamodb_table',
        'aws_dynamodb_table_replica',
        'aws_route53_zone',
      ]) {
        for (const [id, block] of entries(stack, type)) {
          if ((block.lifecycle as Block | undefined)?.prevent_destroy !== true)
            flag(`${type}.${id}`, 'expected lifecycle.prevent_destroy');
        }
      }
    },
  ),
  rule('dynamodb-cmk', 'CKV_AWS_119 / AVD-AWS-0025', (stack, flag) => {
    for (const [id, table] of entries(stack, 'aws_dynamodb_table')) {
      const sse = table.server_side_encryption as Block | undefined;
      if (sse?.enabled !== true || typeof sse.kms_key_arn !== 'string')
        flag(`aws_dynamodb_table.${id}`, 'expected SSE with a customer-managed key');
      for (const replica of list(table.replica as Block[])) {
        if (typeof replica.kms_key_arn !== 'string')
          flag(
            `aws_dynamodb_table.${id}`,
            `expected a customer-managed key on the ${String(replica.region_name)} replica`,
          );
      }
    }
  }),
  rule('sqs-encryption', 'CKV_AWS_27 / AVD-AWS-0096', (stack, flag) => {
    for (const [id, queue] of entries(stack, 'aws_sqs_queue')) {
      if (typeof queue.kms_master_key_id !== 'string')
        flag(`aws_sqs_queue.${id}`, 'expected encryption with a customer-managed key');
    }
  }),
  rule('sqs-redrive', 'dead-letter queue on every work queue', (stack, flag) => {
    const targets = JSON.stringify([
      ...entries(stack, 'aws_sqs_queue').map(([, q]) => q.redrive_policy),
      ...entries(stack, 'aws_sns_topic_subscription').map(([, s]) => s.redrive_policy),
      ...entries(stack, 'aws_lambda_function_event_invoke_config').map(([, c]) => c.destination_config),
      ...entries(stack, 'aws_lambda_function').map(([, f]) => f.dead_letter_config),
    ]);
    for (const [id, queue] of entries(stack, 'aws_sqs_queue')) {
      const isDeadLetterQueue = targets.includes(`\${aws_sqs_queue.${id}.arn}`);
      if (!isDeadLetterQueue && typeof queue.redrive_policy !== 'string')
        flag(`aws_sqs_queue.${id}`, 'expected a redrive policy to a dead-letter queue');
    }
  }),
  rule('sns-encryption', 'CKV_AWS_26 / AVD-AWS-0095', (stack, flag) => {
    for (const [id, topic] of entries(stack, 'aws_sns_topic')) {
      if (typeof topic.kms_master_key_id !== 'string')
        flag(`aws_sns_topic.${id}`, 'expected encryption with a customer-managed key');
    }
  }),
  rule('lambda-tracing', 'CKV_AWS_50', (stack, flag) => {
    for (const [id, fn] of entries(stack, 'aws_lambda_function')) {
      if ((fn.tracing_config as Block | undefined)?.mode !== 'Active')
        flag(`aws_lambda_function.${id}`, 'expected X-Ray tracing active');
    }
  }),
  rule('lambda-async-dlq', 'CKV_AWS_116', (stack, flag) => {
    for (const [id, fn] of entries(stack, 'aws_lambda_function')) {
      const onFailure = entries(stack, 'aws_lambda_function_event_invoke_config').some(
        ([, c]) =>
          refersTo(c.function_name, 'aws_lambda_function', id) &&
          ((c.destination_config as Block | undefined)?.on_failure as Block | undefined)?.destination,
      );
      if (!onFailure && !fn.dead_letter_config)
        flag(
          `aws_lambda_function.${id}`,
          'expected a dead-letter queue or on-failure destination for async invocations',
        );
    }
  }),
  rule('lambda-log-retention', 'CKV_AWS_338', (stack, flag) => {
    const minimum = stack.production ? 365 : 1;
    for (const [id, fn] of entries(stack, 'aws_lambda_function')) {
      const group = entries(stack, 'aws_cloudwatch_log_group').find(
        ([, g]) => g.name === `/aws/lambda/${String(fn.function_name)}`,
      );
      const days = group?.[1].retention_in_days;
      if (typeof days !== 'number' || days < minimum)
        flag(`aws_lambda_function.${id}`, `expected a log group with retention >= ${minimum} days`);
      else if (typeof group?.[1].kms_key_id !== 'string')
        flag(`aws_lambda_function.${id}`, 'expected its log group encrypted with a customer-managed key');
    }
  }),
  rule('ecr-immutable-scanned', 'CKV_AWS_51 / CKV_AWS_163', (stack, flag) => {
    for (const [id, repo] of entries(stack, 'aws_ecr_repository')) {
      if (repo.image_tag_mutability !== 'IMMUTABLE')
        flag(`aws_ecr_repository.${id}`, 'expected immutable tags');
      if ((repo.image_scanning_configuration as Block | undefined)?.scan_on_push !== true)
        flag(`aws_ecr_repository.${id}`, 'expected scan on push');
    }
  }),
  rule('iam-least-privilege', 'CKV_AWS_1 / CKV_AWS_355 / CKV_AWS_290', (stack, flag) => {
    for (const type of ['aws_iam_role_policy', 'aws_iam_policy']) {
      for (const [id, policy] of entries(stack, type)) {
        for (const statement of statementsOf(policy.policy).filter((s) => s.Effect === 'Allow')) {
          const actions = list(statement.Action);
          for (const action of actions.filter((a) => a === '*' || a.endsWith(':*')))
            flag(`${type}.${id}`, `expected named actions, found "${action}"`);
          if (list(statement.Resource).includes('*')) {
            for (const action of actions.filter((a) => !UNSCOPABLE_ACTIONS.has(a)))
              flag(`${type}.${id}`, `expected "${action}" scoped to resources, found "*"`);
          }
        }
      }
    }
  }),
  rule('lambda-permission-source-arn', 'CKV_AWS_364', (stack, flag) => {
    for (const [id, permission] of entries(stack, 'aws_lambda_permission')) {
      if (typeof permission.source_arn !== 'string')
        flag(`aws_lambda_permission.${id}`, 'expected a source_arn');
    }
  }),
  rule('provider-account-guard', "the run's own role + allowed_account_ids", (stack, flag) => {
    if (stack.local) return;
    for (const [index, provider] of (stack.json.provider?.aws ?? []).entries()) {
      const name = `provider.aws[${index}]${provider.alias ? ` (${String(provider.alias)})` : ''}`;
      // A provider assuming a role of its own would hand a plan run the role that applies.
      if (provider.assume_role !== undefined || provider.assume_role_with_web_identity !== undefined)
        flag(name, "expected the run's own credentials (plan role or deploy role), no role assumed here");
      if (list(provider.allowed_account_ids as string[]).length !== 1)
        flag(name, 'expected allowed_account_ids pinned to one account');
    }
  }),
  rule('service-trust-confused-deputy', 'aws:SourceAccount on every service trust policy', (stack, flag) => {
    for (const [id, role] of entries(stack, 'aws_iam_role')) {
      for (const statement of statementsOf(role.assume_role_policy)) {
        const principal = (statement as { Principal?: { Service?: unknown } }).Principal;
        if (!principal?.Service) continue;
        if (TRUST_WITHOUT_DOCUMENTED_CONDITIONS.has(String(principal.Service))) continue;
        const scoped = statement.Condition?.StringEquals?.['aws:SourceAccount'];
        if (typeof scoped !== 'string' || !/^\d{12}$/.test(scoped))
          flag(
            `aws_iam_role.${id}`,
            `expected aws:SourceAccount on the trust of ${String(principal.Service)}`,
          );
      }
    }
  }),
  rule('alarm-actions', 'every alarm notifies someone', (stack, flag) => {
    for (const [id, alarm] of entries(stack, 'aws_cloudwatch_metric_alarm')) {
      if (list(alarm.alarm_actions as string[]).length === 0)
        flag(`aws_cloudwatch_metric_alarm.${id}`, 'expected alarm actions (the alarm topic)');
    }
  }),
  rule('one-owner-per-name', 'no two resources of a stack own one named thing', (stack, flag) => {
    const named: Array<[type: string, attribute: string]> = [
      ['aws_sqs_queue', 'name'],
      ['aws_sns_topic', 'name'],
      ['aws_lambda_function', 'function_name'],
      ['aws_iam_role', 'name'],
      ['aws_cloudwatch_log_group', 'name'],
      ['aws_cloudwatch_metric_alarm', 'alarm_name'],
    ];
    for (const [type, attribute] of named) {
      const owners = new Map<string, string>();
      for (const [id, block] of entries(stack, type)) {
        const value = block[attribute];
        if (typeof value !== 'string') continue;
        const key = `${String(block.provider ?? '')}|${value}`;
        const first = owners.get(key);
        if (first)
          flag(`${type}.${id}`, `expected a ${attribute} of its own; ${type}.${first} owns "${value}"`);
        else owners.set(key, id);
      }
    }
  }),
];

export function checkStack(stack: StackDocument): Violation[] {
  return RULES.flatMap((r) => r.check(stack));
}
