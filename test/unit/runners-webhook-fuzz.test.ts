import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { WebhookRequest } from '../../runtime/runners/webhook';
import { createRouterHandler } from '../../runtime/runners/router/handler';
import { WebhookSecretSource } from '../../runtime/runners/webhook-secret';
import {
  handlerDeps,
  jobPayload,
  MemorySecret,
  recordingTelemetry,
  routerWorld,
  signature,
  US,
} from '../support/runners-fakes';
import { seededRandom } from '../support/seeded-random';

/*
 * 10,000 random deliveries at the router handler (in-memory ports): bodies signed with the webhook secret
 * and bodies that are not (no signature, a random one, another secret's, a signature of another body),
 * real payloads mutated, hostile JSON (deep nesting, huge numbers, `__proto__` and `constructor` keys),
 * wrong encodings (base64 that is not, bytes that are not UTF-8), random header casing and missing headers.
 * Whatever comes in: never a 5xx, never a secret in a response, and nothing claimed or enqueued unless the
 * body carried a valid signature. The seed is printed on failure; FUZZ_SEED replays a run.
 */

jest.setTimeout(60_000);

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_202);
const CASES = 10_000;
const SECRET = 'fuzz-webhook-secret-current';
const PREVIOUS = 'fuzz-webhook-secret-previous';

const random = seededRandom(SEED);
const int = (n: number) => Math.floor(random() * n);
const chance = (p: number) => random() < p;
const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;

function realPayloads(): string[] {
  const root = dirname(require.resolve('@octokit/webhooks-examples/package.json'));
  const index = JSON.parse(readFileSync(join(root, 'api.github.com', 'index.json'), 'utf8')) as {
    name: string;
    examples: unknown[];
  }[];
  const examples = index.find((e) => e.name === 'workflow_job')?.examples ?? [];
  return [
    ...examples.map((e) => JSON.stringify(e)),
    JSON.stringify(jobPayload('queued')),
    JSON.stringify(jobPayload('completed', { labels: ['self-hosted', 'linux', 'x64', 'docker'] })),
    JSON.stringify(jobPayload('queued', { repository: 'acme/mobile', installationId: 3 })),
  ];
}
const REAL = realPayloads();

const KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'action',
  'workflow_job',
  'id',
  'run_id',
  'run_attempt',
  'labels',
  'repository',
  'full_name',
  'owner',
  'login',
  'installation',
  'runner_name',
  'created_at',
  'status',
  'type',
  '',
  'é',
  '\u0000',
];
const NUMBERS = [
  '0',
  '-1',
  '1.5',
  '9007199254740992',
  '1e308',
  '1e999',
  '-0',
  '1' + '0'.repeat(400),
  '2e-400',
];
const STRINGS = [
  '',
  'queued',
  'waiting',
  'completed',
  'acme/web',
  'acme',
  'self-hosted',
  'x'.repeat(200),
  '\u0000',
  '\ud800',
];

function randomJson(depth: number): string {
  const roll = int(depth > 6 ? 3 : 6);
  if (roll === 0) return pick(NUMBERS);
  if (roll === 1) return JSON.stringify(pick(STRINGS));
  if (roll === 2) return pick(['null', 'true', 'false']);
  if (roll === 3) return `[${Array.from({ length: int(4) }, () => randomJson(depth + 1)).join(',')}]`;
  const keys = Array.from({ length: int(5) }, () => pick(KEYS));
  return `{${keys.map((k) => `${JSON.stringify(k)}:${randomJson(depth + 1)}`).join(',')}}`;
}

/** A workflow_job-shaped body whose fields are random: valid ones sometimes, hostile ones often. */
function shapedJson(): string {
  const field = (good: string) => (chance(0.7) ? good : randomJson(3));
  const labels = chance(0.7) ? '["self-hosted","linux","x64"]' : randomJson(3);
  return (
    `{"action":${field(JSON.stringify(pick(['queued', 'completed'])))},` +
    `"workflow_job":{"id":${field(String(1 + int(1e6)))},"run_id":${field(String(1 + int(1e6)))},` +
    `"run_attempt":${field('1')},"status":${field(JSON.stringify(pick(['queued', 'waiting', 'completed'])))},` +
    `"labels":${labels},"created_at":${field('"2025-10-09T08:52:20Z"')}},` +
    `"repository":{"full_name":${field('"acme/web"')},` +
    `"owner":${field(pick(['{"login":"acme","type":"Organization"}', '{"login":"acme","type":"User"}']))}}` +
    `${chance(0.3) ? `,"__proto__":${randomJson(2)}` : ''}${chance(0.2) ? `,"installation":${randomJson(3)}` : ''}}`
  );
}

const TOKENS = [
  '"__proto__":{},',
  '1e999',
  '[[[[',
  ']]',
  '\u0000',
  '\ud800',
  '"',
  ',',
  '{',
  '}',
  'null',
  '-0',
];

function mutated(text: string): string {
  let out = text;
  for (let n = 1 + int(4); n > 0; n--) {
    const at = int(out.length + 1);
    switch (int(4)) {
      case 0:
        out = out.slice(0, at) + String.fromCharCode(int(0x3000)) + out.slice(at + 1);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + int(20));
        break;
      case 2:
        out = out.slice(0, at) + pick(TOKENS) + out.slice(at);
        break;
      default:
        out = out.replace(/\d+/, pick(NUMBERS));
    }
  }
  return out;
}

const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const HOSTILE = [
  () => `{"deep":${deepArray(1000 + int(100_000))},"action":"queued"}`,
  () => `{"a":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
  () => `{"workflow_job":{"id":1${'0'.repeat(int(5000))}}}`,
  () =>
    `{"__proto__":{"action":"queued","workflow_job":{"id":1}},"constructor":{"prototype":{"polluted":1}}}`,
  () => JSON.stringify({ ...JSON.parse(pick(REAL.slice(-3))), __proto__: null, constructor: 'x' }),
  () => `[${'1,'.repeat(int(10_000))}1]`,
  () => '"' + 'é'.repeat(int(1000)) + '"',
];
const OVERSIZED = `{"pad":"${'x'.repeat(1_048_576)}"}`;

function body(): string {
  const roll = random();
  if (roll < 0.25) return mutated(pick(REAL));
  if (roll < 0.35) return pick(REAL);
  // A job not seen before (a body seen before is a duplicate: its identity is claimed).
  if (roll < 0.45)
    return JSON.stringify(
      jobPayload(pick(['queued', 'queued', 'completed']), { jobId: 1 + int(1e9), runId: 1 + int(1e6) }),
    );
  if (roll < 0.65) return shapedJson();
  if (roll < 0.8) return randomJson(0);
  if (roll < 0.95) return pick(HOSTILE)();
  if (roll < 0.96) return OVERSIZED;
  return Array.from({ length: int(200) }, () => String.fromCharCode(int(0x10000))).join('');
}

const recase = (name: string) =>
  chance(0.5) ? name : [...name].map((c) => (chance(0.5) ? c.toUpperCase() : c)).join('');
const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(16)]).join('');

/** A GUID from the seeded generator (the run replays from its seed alone). */
const uuid = () => `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
const recent: string[] = [];
/** A fresh GUID mostly, a redelivery (a recent one again) sometimes, a malformed one rarely. */
function deliveryId(): string {
  const roll = random();
  if (roll < 0.1) return pick(['', 'x', hex(36), `{${uuid()}}`]);
  if (roll < 0.2 && recent.length > 0) return pick(recent);
  const id = chance(0.5) ? uuid() : uuid().toUpperCase();
  recent.push(id);
  if (recent.length > 20) recent.shift();
  return id;
}

interface FuzzCase {
  readonly request: WebhookRequest;
  /**
   * Signed with a secret the router holds, over the exact text it verifies; undefined when that cannot be
   * told (a lone surrogate signed with the secret: see below), and then not checked either way.
   */
  readonly signed: boolean | undefined;
}

function fuzzCase(): FuzzCase {
  const text = body();
  const base64 = chance(0.2);
  const sign = random();
  let signed: boolean | undefined = false;
  let sig: string | undefined;
  if (sign < 0.5) {
    sig = signature(chance(0.8) ? SECRET : PREVIOUS, text);
    signed = true;
  } else if (sign < 0.6) sig = undefined;
  else if (sign < 0.7) sig = `sha256=${hex(64)}`;
  else if (sign < 0.8) sig = signature('not-the-secret', text);
  else if (sign < 0.9) sig = signature(SECRET, `${text} `);
  else sig = pick([`sha1=${hex(40)}`, `sha256=${hex(63)}`, 'sha256=', '', `SHA256=${hex(64)}`, hex(71)]);

  const headers: Record<string, string> = {};
  if (sig !== undefined) headers[recase('x-hub-signature-256')] = sig;
  if (chance(0.95)) headers[recase('x-github-delivery')] = deliveryId();
  if (chance(0.95))
    headers[recase('x-github-event')] = chance(0.85)
      ? 'workflow_job'
      : pick(['ping', 'push', '', 'Workflow_Job', '??']);
  if (chance(0.5))
    headers['content-type'] = pick(['application/json', 'application/x-www-form-urlencoded', 'text/plain']);

  let encoded = text;
  if (base64) {
    const roll = random();
    if (roll < 0.6) encoded = Buffer.from(text, 'utf8').toString('base64');
    else if (roll < 0.8) {
      // bytes that are not UTF-8, signed as latin1 text: never verifies as the text the router decodes
      encoded = Buffer.from([0xff, 0xfe, ...Buffer.from(text, 'latin1')]).toString('base64');
      signed = false;
    } else {
      encoded = `${Buffer.from(text, 'utf8').toString('base64')}*`;
      signed = false;
    }
  }
  // A lone surrogate is not what GitHub sends: signer and router both encode it as U+FFFD, so a body
  // signed with the secret may verify, or not once base64 or a mutation is involved. Not counted.
  if (signed && /[\ud800-\udfff]/.test(text)) signed = undefined;
  return {
    request: { headers: chance(0.01) ? null : headers, body: encoded, isBase64Encoded: base64 },
    signed,
  };
}

describe('the router handler under 10,000 random deliveries', () => {
  it(`never answers 5xx and enqueues nothing without a valid signature (seed ${SEED})`, async () => {
    const world = routerWorld();
    const stored = new MemorySecret(SECRET, PREVIOUS);
    const handle = createRouterHandler(
      handlerDeps(
        world,
        US,
        new WebhookSecretSource(stored.reader, { now: () => world.now }),
        recordingTelemetry(),
      ),
    );
    const statuses = new Map<number, number>();
    for (let i = 0; i < CASES; i++) {
      const { request, signed } = fuzzCase();
      const sentBefore = world.queues.sent.length;
      const claimsBefore = world.ledger.calls.length;
      const response = await handle(request);
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      const context = `case ${i} (seed ${SEED}): status ${response.statusCode}`;
      if (response.statusCode >= 500) throw new Error(`${context}: 5xx`);
      if (response.body.includes(SECRET) || response.body.includes(PREVIOUS))
        throw new Error(`${context}: secret`);
      if (
        signed === false &&
        (world.queues.sent.length !== sentBefore || world.ledger.calls.length !== claimsBefore)
      )
        throw new Error(`${context}: enqueued or claimed without a valid signature`);
      world.now += 50;
    }
    // every path was exercised
    for (const status of [200, 202, 400, 401, 413]) expect(statuses.get(status) ?? 0).toBeGreaterThan(0);
    expect(world.queues.sent.length).toBeGreaterThan(100);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
