import { verify } from '@octokit/webhooks-methods';
import { LOGIN, REPOSITORY, type RunnerConfig } from './config';
import { DELIVERY_GUID, MAX_JOB_LABELS, MAX_LABEL_CHARS, type JobAction, type WorkflowJob } from './model';

/**
 * A GitHub webhook delivery as the regional HTTP API hands it over (payload format 2.0), read in the order
 * that never looks at what an unauthenticated caller sent beyond its size:
 *
 * 1. the body's size in decoded bytes over `maxBodyBytes`: 413;
 * 2. a base64 body that is not base64, or a body that is not UTF-8 text: 400;
 * 3. `X-Hub-Signature-256` missing, malformed, or verified by no secret (the current one and, during a
 *    rotation, the previous one; over the exact body text): 401;
 * 4. `X-GitHub-Delivery` (a GUID) or `X-GitHub-Event` missing or malformed: 400;
 * 5. an event other than `workflow_job`: 202, nothing to do (the body is not parsed);
 * 6. the body is not a JSON object: 400;
 * 7. a `workflow_job` action other than `queued` and `completed`: 202, nothing to do;
 * 8. a field missing or outside its rule: 400 naming the field and the rule, never the value.
 *
 * Besides the job, a delivery carries signed facts the router uses: `workflow_job.status` (required, one
 * of JOB_STATUSES: part of the body's identity, since a job behind an environment's approval or wait timer
 * is sent `queued` with status `waiting` at creation, and a `queued` sent at its approval has status
 * `queued`), and `repository.owner.type` (a user-owned repository can get no organisation runner).
 * `workflow_job.created_at` is optional and never judged: a job approved days later keeps its creation
 * time, and a replayed body is harmless (the dispatcher asks GitHub whether the job is still queued).
 *
 * Pure: no AWS, no clock. Bodies are parsed with `JSON.parse` (iterative in V8: deep nesting does not
 * overflow the stack) and read through own properties only (`__proto__` is an ordinary key here).
 */

/** The parts of an API Gateway HTTP API event a delivery is read from (header names in whatever case). */
export interface WebhookRequest {
  readonly headers?: Readonly<Record<string, string | undefined>> | null;
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
}

export type RefusalCode =
  | 'body-too-large'
  | 'body-encoding'
  | 'signature-missing'
  | 'signature-mismatch'
  | 'header-invalid'
  | 'json-malformed'
  | 'field-invalid';

/** What a delivery amounts to. Reasons name the header or field and the rule, never a value. */
export type Delivery =
  /** A `workflow_job` `queued` or `completed`, authenticated and valid. */
  | {
      readonly kind: 'job';
      readonly deliveryId: string;
      readonly job: WorkflowJob;
      /** `workflow_job.status` (one of JOB_STATUSES): part of the signed body's identity (router.ts). */
      readonly jobStatus: JobStatus;
      /** `workflow_job.created_at`, epoch ms, when the payload has it (informative: never judged). */
      readonly createdAt?: number;
      /** `repository.owner.type`, lower-cased (`organization`, `user`, ...), when the payload names it. */
      readonly ownerType?: string;
    }
  /** Authenticated, but nothing this estate acts on (202). */
  | { readonly kind: 'ignored'; readonly deliveryId: string; readonly reason: string }
  /** Refused with an HTTP status; nothing is done. */
  | {
      readonly kind: 'refused';
      readonly status: 400 | 401 | 413;
      readonly code: RefusalCode;
      readonly reason: string;
      /**
       * The delivery's id, when it was signed and its id well-formed (its event or body was refused): its log
       * lines carry it as their correlation id. Absent before that: an unauthenticated id is not trusted.
       */
      readonly deliveryId?: string;
    };

export type Refusal = Extract<Delivery, { kind: 'refused' }>;

export const SIGNATURE_HEADER = 'x-hub-signature-256';
export const DELIVERY_HEADER = 'x-github-delivery';
export const EVENT_HEADER = 'x-github-event';

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;
const GUID = DELIVERY_GUID;
const EVENT_NAME = /^[a-z_]{1,64}$/;
/** One character class and a length check: a grouped pattern overflows the regex stack on 10 MiB bodies. */
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (text: string): boolean => text.length % 4 === 0 && BASE64_CHARS.test(text);
const MAX_RUNNER_NAME_CHARS = 255;
/** GitHub's timestamps: `2021-09-13T02:21:13Z`, fractions and offsets allowed. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const OWNER_TYPE = /^[a-z]{1,32}$/;
const ACTED_ON: ReadonlySet<JobAction> = new Set<JobAction>(['queued', 'completed']);

/** The values of `workflow_job.status` GitHub sends (a job behind an environment approval: `waiting`). */
export const JOB_STATUSES = [
  'queued',
  'waiting',
  'in_progress',
  'completed',
  'pending',
  'requested',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
const isJobStatus = (value: unknown): value is JobStatus =>
  typeof value === 'string' && (JOB_STATUSES as readonly string[]).includes(value);

const refused = (status: 400 | 401 | 413, code: RefusalCode, reason: string): Refusal => ({
  kind: 'refused',
  status,
  code,
  reason,
});

/** Header values by lower-cased name (API Gateway lower-cases them; other callers may not). */
function headerMap(headers: WebhookRequest['headers']): ReadonlyMap<string, string> {
  const map = new Map<string, string>();
  if (!headers) return map;
  for (const [name, value] of Object.entries(headers))
    if (typeof value === 'string') map.set(name.toLowerCase(), value);
  return map;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body as the text GitHub signed, or a refusal (size first: nothing larger is decoded). */
function bodyText(request: WebhookRequest, maxBodyBytes: number): string | Refusal {
  const raw = request.body ?? '';
  const tooLarge = refused(413, 'body-too-large', `body: expected at most ${maxBodyBytes} bytes`);
  if (!request.isBase64Encoded) return Buffer.byteLength(raw, 'utf8') > maxBodyBytes ? tooLarge : raw;
  // The decoded size from the encoded length alone (exact for valid base64), before decoding anything.
  if (Math.floor((raw.length * 3) / 4) - (raw.endsWith('==') ? 2 : raw.endsWith('=') ? 1 : 0) > maxBodyBytes)
    return tooLarge;
  if (!isBase64(raw)) return refused(400, 'body-encoding', 'body: expected valid base64 (isBase64Encoded)');
  try {
    return utf8.decode(Buffer.from(raw, 'base64'));
  } catch {
    return refused(400, 'body-encoding', 'body: expected UTF-8 text');
  }
}

/** Whether one of `secrets` signed `payload`; `verify` refuses empty arguments, which verify nothing. */
export async function signedByOneOf(
  payload: string,
  signature: string,
  secrets: readonly string[],
): Promise<boolean> {
  if (payload.length === 0) return false;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    if (await verify(secret, payload, signature)) return true;
  }
  return false;
}

type Json = Readonly<Record<string, unknown>>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An own property only: nothing is read through the prototype. */
const own = (object: Json, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

class FieldError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
  }
}

function objectAt(parent: Json, key: string, field: string): Json {
  const value = own(parent, key);
  if (!isObject(value)) throw new FieldError(field, 'expected an object');
  return value;
}

function idAt(parent: Json, key: string, field: string): number {
  const value = own(parent, key);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw new FieldError(field, 'expected a positive safe integer');
  return value;
}

function nameAt(parent: Json, key: string, field: string, pattern: RegExp, rule: string): string {
  const value = own(parent, key);
  if (typeof value !== 'string') throw new FieldError(field, 'expected a string');
  const lower = value.toLowerCase();
  if (!pattern.test(lower)) throw new FieldError(field, rule);
  return lower;
}

function labelsAt(job: Json): string[] {
  const value = own(job, 'labels');
  if (!Array.isArray(value)) throw new FieldError('workflow_job.labels', 'expected an array of strings');
  if (value.length > MAX_JOB_LABELS)
    throw new FieldError('workflow_job.labels', `expected at most ${MAX_JOB_LABELS} labels`);
  return value.map((label: unknown) => {
    if (typeof label !== 'string' || label.length < 1 || label.length > MAX_LABEL_CHARS)
      throw new FieldError('workflow_job.labels', `expected strings of 1-${MAX_LABEL_CHARS} characters`);
    return label.toLowerCase();
  });
}

function runnerNameAt(job: Json): string | undefined {
  const value = own(job, 'runner_name');
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > MAX_RUNNER_NAME_CHARS)
    throw new FieldError(
      'workflow_job.runner_name',
      `expected null or a string of at most ${MAX_RUNNER_NAME_CHARS} characters`,
    );
  return value;
}

/** `workflow_job.status`, one of JOB_STATUSES (exactly as GitHub spells them). */
function statusOf(job: Json): JobStatus {
  const value = own(job, 'status');
  if (!isJobStatus(value))
    throw new FieldError('workflow_job.status', `expected one of ${JOB_STATUSES.join(', ')}`);
  return value;
}

/** `workflow_job.created_at` as epoch ms; undefined when absent. */
function createdAtOf(job: Json): number | undefined {
  const value = own(job, 'created_at');
  if (value === undefined || value === null) return undefined;
  const rule = 'expected an ISO 8601 date-time such as 2021-09-13T02:21:13Z';
  if (typeof value !== 'string' || !DATE_TIME.test(value))
    throw new FieldError('workflow_job.created_at', rule);
  const ms = Date.parse(value);
  if (!Number.isSafeInteger(ms)) throw new FieldError('workflow_job.created_at', rule);
  return ms;
}

/** `repository.owner.type`, lower-cased; undefined when absent. */
function ownerTypeOf(owner: Json): string | undefined {
  const value = own(owner, 'type');
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !OWNER_TYPE.test(value.toLowerCase()))
    throw new FieldError('repository.owner.type', 'expected an account type such as Organization or User');
  return value.toLowerCase();
}

interface JobFacts {
  readonly job: WorkflowJob;
  readonly jobStatus: JobStatus;
  readonly createdAt: number | undefined;
  readonly ownerType: string | undefined;
}

/** The job of a `workflow_job` payload whose action is acted on; throws a FieldError naming the field. */
function jobOf(payload: Json, action: JobAction): JobFacts {
  const job = objectAt(payload, 'workflow_job', 'workflow_job');
  const jobId = idAt(job, 'id', 'workflow_job.id');
  const runId = idAt(job, 'run_id', 'workflow_job.run_id');
  const attempt = own(job, 'run_attempt');
  const runAttempt =
    attempt === undefined || attempt === null ? 1 : idAt(job, 'run_attempt', 'workflow_job.run_attempt');
  const jobStatus = statusOf(job);
  const labels = labelsAt(job);
  const repository = objectAt(payload, 'repository', 'repository');
  const fullName = nameAt(
    repository,
    'full_name',
    'repository.full_name',
    REPOSITORY,
    'expected owner/name: a GitHub login, then 1-100 of letters, digits, . - _',
  );
  const owner = objectAt(repository, 'owner', 'repository.owner');
  const organization = nameAt(
    owner,
    'login',
    'repository.owner.login',
    LOGIN,
    'expected a GitHub login: 1-39 of letters, digits and single inner hyphens',
  );
  const installation = own(payload, 'installation');
  let installationId: number | undefined;
  if (installation !== undefined && installation !== null) {
    if (!isObject(installation)) throw new FieldError('installation', 'expected an object or null');
    installationId = idAt(installation, 'id', 'installation.id');
  }
  const runnerName = runnerNameAt(job);
  return {
    job: {
      action,
      jobId,
      runId,
      runAttempt,
      organization,
      repository: fullName,
      labels,
      ...(installationId === undefined ? {} : { installationId }),
      ...(runnerName === undefined ? {} : { runnerName }),
    },
    jobStatus,
    createdAt: createdAtOf(job),
    ownerType: ownerTypeOf(owner),
  };
}

/** The body as a JSON object (a payload's own keys can never pass for a refusal: they are kept apart). */
function parsedBody(
  text: string,
  contentType: string | undefined,
): { readonly payload: Json } | { readonly refusal: Refusal } {
  let payload: unknown;
  try {
    payload = JSON.parse(text) as unknown;
  } catch {
    return {
      refusal: refused(
        400,
        'json-malformed',
        contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')
          ? 'body: expected JSON (set the webhook content type to application/json)'
          : 'body: expected a JSON object',
      ),
    };
  }
  return isObject(payload)
    ? { payload }
    : { refusal: refused(400, 'json-malformed', 'body: expected a JSON object') };
}

/**
 * Reads a delivery (see the file's comment for the order of the checks). `secrets`: the webhook secrets
 * that may have signed it, current first.
 */
export async function readDelivery(
  request: WebhookRequest,
  secrets: readonly string[],
  config: Pick<RunnerConfig, 'maxBodyBytes'>,
): Promise<Delivery> {
  const text = bodyText(request, config.maxBodyBytes);
  if (typeof text !== 'string') return text;
  const headers = headerMap(request.headers);

  const signature = headers.get(SIGNATURE_HEADER);
  if (signature === undefined || !SIGNATURE.test(signature))
    return refused(401, 'signature-missing', `${SIGNATURE_HEADER}: expected sha256= and 64 hex digits`);
  if (!(await signedByOneOf(text, signature, secrets)))
    return refused(
      401,
      'signature-mismatch',
      `${SIGNATURE_HEADER}: expected a signature of the webhook secret`,
    );

  const deliveryId = headers.get(DELIVERY_HEADER)?.toLowerCase();
  if (deliveryId === undefined || !GUID.test(deliveryId))
    return refused(400, 'header-invalid', `${DELIVERY_HEADER}: expected a GUID`);
  // Signed, its id well-formed: a refusal from here on names the delivery.
  const refusedDelivery = (refusal: Refusal): Refusal => ({ ...refusal, deliveryId });
  const event = headers.get(EVENT_HEADER);
  if (event === undefined || !EVENT_NAME.test(event))
    return refusedDelivery(refused(400, 'header-invalid', `${EVENT_HEADER}: expected an event name`));
  if (event !== 'workflow_job')
    return { kind: 'ignored', deliveryId, reason: `${EVENT_HEADER}: only workflow_job is handled` };

  const parsed = parsedBody(text, headers.get('content-type'));
  if ('refusal' in parsed) return refusedDelivery(parsed.refusal);
  const { payload } = parsed;
  const action = own(payload, 'action');
  if (typeof action !== 'string')
    return refusedDelivery(refused(400, 'field-invalid', 'action: expected a string'));
  if (!ACTED_ON.has(action as JobAction))
    return { kind: 'ignored', deliveryId, reason: 'action: only queued and completed are acted on' };
  try {
    const { job, jobStatus, createdAt, ownerType } = jobOf(payload, action as JobAction);
    return {
      kind: 'job',
      deliveryId,
      job,
      jobStatus,
      ...(createdAt === undefined ? {} : { createdAt }),
      ...(ownerType === undefined ? {} : { ownerType }),
    };
  } catch (error) {
    if (error instanceof FieldError) return refusedDelivery(refused(400, 'field-invalid', error.message));
    throw error;
  }
}
