import type { SQSRecord } from 'aws-lambda';
import * as z from 'zod/mini';
import { PermanentError } from '../lib/failures';
import { LOGIN, REGION_NAME, REPOSITORY } from './config';
import { MAX_JOB_LABELS, MAX_LABEL_CHARS, type RunnerQueueMessage } from './model';
import { runnerQueueName } from './tables';

/**
 * The runner queues' message bodies (model.ts: dispatch, check-queued, completed), validated as input: a
 * body from a queue is a trust boundary (anything allowed to send to the queue can put one there). A bad
 * body is a PermanentError naming the field and the rule, never the value; the dispatcher dead-letters it.
 *
 * Bounds agree with the router's (webhook.ts): at most MAX_JOB_LABELS labels of at most MAX_LABEL_CHARS
 * characters each, so no job the router accepted is refused here.
 */

const text = (what: string, max: number) =>
  z
    .string()
    .check(
      z.regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), `expected ${what}: 1-${max} printable characters`),
    );

const whole = (what: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number()
    .check(
      z.int(`expected ${what}, a whole number`),
      z.gte(min, `expected ${what} of at least ${min}`),
      z.lte(max, `expected ${what} of at most ${max}`),
    );

const jobSchema = z.object({
  action: z.enum(['queued', 'waiting', 'in_progress', 'completed']),
  jobId: whole('a job id', 1),
  runId: whole('a run id', 1),
  runAttempt: whole('a run attempt', 1, 1_000_000),
  organization: z.string().check(z.regex(LOGIN, 'expected a lower-cased GitHub login')),
  repository: z
    .string()
    .check(
      z.maxLength(140, 'expected at most 140 characters'),
      z.regex(REPOSITORY, 'expected a lower-cased owner/name'),
    ),
  labels: z
    .array(
      z
        .string()
        .check(
          z.minLength(1, 'expected a label'),
          z.maxLength(MAX_LABEL_CHARS, `expected at most ${MAX_LABEL_CHARS} characters`),
        ),
    )
    .check(z.maxLength(MAX_JOB_LABELS, `expected at most ${MAX_JOB_LABELS} labels`)),
  installationId: z.optional(whole('an installation id', 1)),
  runnerName: z.optional(z.string().check(z.maxLength(255, 'expected at most 255 characters'))),
});

const dispatchSchema = z.object({
  version: z.literal(1, 'expected version 1'),
  kind: z.literal('dispatch'),
  job: jobSchema,
  deliveryId: text('a delivery id', 128),
  region: z.string().check(z.regex(REGION_NAME, 'expected a region name')),
  runnerType: text('a runner type', 31),
  reason: z.enum([
    'home',
    'sticky',
    'drained',
    'no-region-eligible',
    'spillover:queue-depth',
    'spillover:concurrency',
    'spillover:error-rate',
  ]),
  routedAt: whole('epoch milliseconds', 0),
  correlationId: text('a correlation id', 128),
  retry: z.union([z.literal(0), z.literal(1)], 'expected 0 or 1'),
  waitingSince: z.optional(whole('epoch milliseconds', 0)),
  waits: z.optional(whole('a count of waits', 0, 10_000)),
  reroutes: z.optional(whole('a count of re-routes', 0, 100)),
  approvalSince: z.optional(whole('epoch milliseconds', 0)),
});

const messageSchema = z.discriminatedUnion(
  'kind',
  [
    dispatchSchema,
    z.object({
      version: z.literal(1, 'expected version 1'),
      kind: z.literal('check-queued'),
      dispatch: dispatchSchema,
    }),
    z.object({
      version: z.literal(1, 'expected version 1'),
      kind: z.literal('completed'),
      job: jobSchema,
      deliveryId: text('a delivery id', 128),
      correlationId: text('a correlation id', 128),
    }),
  ],
  'expected kind dispatch, check-queued or completed',
);

const malformed = (field: string, rule: string) =>
  new PermanentError('malformed-message', `${field}: ${rule}`);

/** A runner queue's message body, validated: a PermanentError naming the field and the rule otherwise. */
export function parseRunnerQueueMessage(body: string): RunnerQueueMessage {
  let value: unknown;
  try {
    value = JSON.parse(body) as unknown;
  } catch {
    throw malformed('body', 'expected JSON');
  }
  const parsed = messageSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(['body', ...(issue?.path ?? []).map(String)].join('.'), issue?.message ?? 'invalid');
  }
  const message = parsed.data as RunnerQueueMessage;
  const job = message.kind === 'check-queued' ? message.dispatch.job : message.job;
  const at = message.kind === 'check-queued' ? 'body.dispatch.job' : 'body.job';
  if (!job.repository.startsWith(`${job.organization}/`))
    throw malformed(`${at}.repository`, 'expected a repository of the organization');
  return message;
}

/** The correlation id a message's log lines carry. */
export const correlationOf = (message: RunnerQueueMessage): string =>
  message.kind === 'check-queued' ? message.dispatch.correlationId : message.correlationId;

/** A correlation id as the messages' schema takes it: 1-128 printable ASCII characters. */
const CORRELATION_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The `correlationId` message attribute the router sets beside the body (router-adapters.ts), when it is a
 * well-formed correlation id: what traces a record whose body cannot be read. Own properties only; anything
 * else (absent, another type, too long) is none.
 */
export function correlationAttribute(record: SQSRecord): string | undefined {
  const own = (value: unknown, key: string): unknown =>
    typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, key)
      ? (value as Record<string, unknown>)[key]
      : undefined;
  const attribute = own(record.messageAttributes, 'correlationId');
  const value = own(attribute, 'stringValue');
  return own(attribute, 'dataType') === 'String' && typeof value === 'string' && CORRELATION_ID.test(value)
    ? value
    : undefined;
}

export interface SourceSettings {
  readonly region: string;
  readonly queuePrefix: string;
  readonly runnerTypes: readonly string[];
}

/** The queue that delivered a record must be one of this region's runner queues, of the message's type. */
export function checkSource(record: SQSRecord, message: RunnerQueueMessage, settings: SourceSettings): void {
  const arn = record.eventSourceARN;
  if (!arn) return;
  const [, , service, region, , name] = arn.split(':');
  const type = settings.runnerTypes.find((t) => runnerQueueName(settings.queuePrefix, t) === name);
  if (service !== 'sqs' || region !== settings.region || type === undefined)
    throw new PermanentError('source-queue', "eventSourceARN: expected one of the region's runner queues");
  const dispatch =
    message.kind === 'dispatch' ? message : message.kind === 'check-queued' ? message.dispatch : undefined;
  if (dispatch && dispatch.runnerType !== type)
    throw new PermanentError(
      'source-queue',
      'runnerType: expected the runner type of the queue that delivered it',
    );
}
