// Runner router benchmark. Prints, in one run:
//  - routing decisions per second in-process: routeJob over 3 regions, 50 organisations (20 repository
//    overrides), 4 runner types, jobs with mixed labels, a third of the runs already placed and one region
//    spilling, against a baseline taken in the same run: JSON.parse of the job's webhook payload (a real
//    GitHub `queued` payload of ~7 KB, what every delivery costs anyway);
//  - the router handler's latency p50/p99 per delivery, as esbuild bundles it, with the in-memory ports of
//    test/support/runners-fakes.ts: signature verification, parsing, claim, placement, routing and the
//    queue send all included (telemetry off: Powertools would write every line to this terminal), against a
//    baseline in the same run: HMAC-SHA256 of the same body.
// The handler is run from its bundle because @octokit/webhooks-methods is ESM-only and tsx cannot require
// it from this CommonJS project; Lambda runs the bundle anyway.
// Usage: npm run bench:router  (ROUTER_BENCH_DELIVERIES to change the number of deliveries timed)
import { randomUUID } from 'node:crypto';
import webhookDefinitions from '@octokit/webhooks-examples';
import { parseRunnerConfig } from '../runtime/runners/config';
import type { RegionView, RunPlacement, WorkflowJob } from '../runtime/runners/model';
import { routeJob } from '../runtime/runners/route';
import type { RouterTelemetry } from '../runtime/runners/router/handler';
import {
  handlerDeps,
  loadRouterBundle,
  routerBundleSource,
  routerWorld,
  signature,
  staticSecrets,
  view,
  webhookEvent,
} from '../test/support/runners-fakes';
import { seededRandom } from '../test/support/seeded-random';

const REGIONS = ['eu-central-1', 'us-east-1', 'ap-southeast-1'];
const DELIVERIES = Number(process.env.ROUTER_BENCH_DELIVERIES ?? 20_000);
const random = seededRandom(7);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

const ORGS = Array.from({ length: 50 }, (_, i) => `org-${i}`);
const CONFIG = parseRunnerConfig({
  regions: REGIONS.map((region, i) => ({ region, priority: i + 1, capacity: 200 })),
  organizations: Object.fromEntries(ORGS.map((org, i) => [org, REGIONS[i % 3]])),
  repositories: Object.fromEntries(
    ORGS.slice(0, 20).map((org, i) => [`${org}/mobile`, REGIONS[(i + 1) % 3]]),
  ),
  runnerTypes: [
    { name: 'standard', labels: ['self-hosted', 'linux', 'x64'], launch: 'fargate-spot' },
    { name: 'arm', labels: ['self-hosted', 'linux', 'arm64'], launch: 'fargate' },
    {
      name: 'docker',
      labels: ['self-hosted', 'linux', 'x64', 'docker'],
      launch: 'ec2',
      runnerGroup: 'docker-trusted',
    },
    {
      name: 'large',
      labels: ['self-hosted', 'linux', 'x64', 'large'],
      launch: 'fargate',
      cpu: 4096,
      memoryMiB: 8192,
    },
  ],
});
const LABEL_SETS = [
  ['self-hosted', 'linux', 'x64'],
  ['self-hosted', 'linux'],
  ['self-hosted', 'linux', 'arm64'],
  ['self-hosted', 'linux', 'x64', 'docker'],
  ['self-hosted', 'large'],
  ['ubuntu-latest'],
];

// A real `queued` payload (@octokit/webhooks-examples), its job fields varied per delivery.
const EXAMPLES = webhookDefinitions as unknown as { name: string; examples: Record<string, unknown>[] }[];
const TEMPLATE = (EXAMPLES.find((e) => e.name === 'workflow_job')?.examples ?? []).find(
  (e) => e.action === 'queued',
) as Record<string, Record<string, unknown>>;

function payload(job: WorkflowJob): string {
  const [, name] = job.repository.split('/');
  return JSON.stringify({
    ...TEMPLATE,
    workflow_job: {
      ...TEMPLATE.workflow_job,
      id: job.jobId,
      run_id: job.runId,
      run_attempt: job.runAttempt,
      labels: job.labels,
      // A fresh job: the router refuses an old body as a replay.
      created_at: new Date().toISOString(),
    },
    repository: {
      ...TEMPLATE.repository,
      name,
      full_name: job.repository,
      // Runners are registered per organisation: the example's user-owned repository made an organisation's.
      owner: { ...(TEMPLATE.repository?.owner as object), login: job.organization, type: 'Organization' },
    },
  });
}

function randomJob(i: number): WorkflowJob {
  const organization = pick(ORGS);
  return {
    action: 'queued',
    jobId: 1_000_000 + i,
    runId: 500_000 + Math.floor(i / 3),
    runAttempt: 1,
    organization,
    repository: `${organization}/${pick(['web', 'api', 'mobile'])}`,
    labels: pick(LABEL_SETS),
  };
}

function time(rounds: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] as number;
}

function decisions(): void {
  const jobs = Array.from({ length: 2_000 }, (_, i) => randomJob(i));
  const texts = jobs.map(payload);
  const placements = jobs.map((): RunPlacement | undefined =>
    random() < 0.33 ? { region: pick(REGIONS), placedAt: 1 } : undefined,
  );
  const regions = new Map<string, RegionView>([
    ['eu-central-1', view('active', { queueDepth: 140, inUse: 120, capacity: 200 }, ['queue-depth'])],
    ['us-east-1', view('active', { queueDepth: 20, inUse: 60, capacity: 200, dispatched: 80, failed: 1 })],
    ['ap-southeast-1', view('draining', { queueDepth: 5, inUse: 10, capacity: 200 })],
  ]);
  let sink = 0;
  const routeMs = time(25, () => {
    jobs.forEach((job, i) => {
      const placement = placements[i];
      const decision = routeJob({ job, config: CONFIG, regions, ...(placement ? { placement } : {}) });
      sink += decision ? decision.region.length : 0;
    });
  });
  const parseMs = time(25, () => {
    for (const text of texts) sink += (JSON.parse(text) as { action: string }).action.length;
  });
  const perSecond = (ms: number) => (jobs.length / ms) * 1000;
  const bytes = texts.reduce((sum, t) => sum + t.length, 0) / texts.length;
  console.log('routing decisions (3 regions, 50 organisations, 4 runner types), in-process');
  console.log(`  routeJob:   ${Math.round(perSecond(routeMs)).toLocaleString('en')} decisions/s`);
  console.log(
    `  JSON.parse: ${Math.round(perSecond(parseMs)).toLocaleString('en')} payloads/s ` +
      `(the job's webhook payload, ${Math.round(bytes).toLocaleString('en')} bytes)`,
  );
  console.log(`  ratio: a decision costs ${(routeMs / parseMs).toFixed(2)}x a JSON.parse of its payload`);
  if (sink === 0) console.log('');
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

const silent: RouterTelemetry = {
  begin: () => undefined,
  refused: () => undefined,
  ignored: () => undefined,
  decided: () => undefined,
  sideFailure: () => undefined,
  outcome: () => undefined,
  unreadable: () => undefined,
  regionUnreadable: () => undefined,
  end: () => undefined,
};

async function handlerLatency(): Promise<void> {
  const secret = 'bench-webhook-secret';
  const { source, filename } = routerBundleSource();
  const bundle = loadRouterBundle(source, filename);
  const world = routerWorld(CONFIG);
  world.views.regions.set('eu-central-1', view('active', { queueDepth: 140 }, ['queue-depth']));
  // current and previous secrets; deliveries signed with the current one
  const handle = bundle.createRouterHandler(
    handlerDeps(world, 'us-east-1', staticSecrets(secret, 'bench-previous-secret'), silent),
  );
  const events = Array.from({ length: DELIVERIES + 2_000 }, (_, i) =>
    webhookEvent(payload({ ...randomJob(i), labels: pick(LABEL_SETS.slice(0, 5)) }), secret, {
      deliveryId: randomUUID(),
    }),
  );
  const handlerMs: number[] = [];
  let statuses = 0;
  for (const [i, event] of events.entries()) {
    const started = process.hrtime.bigint();
    const response = await handle(event);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (i >= 2_000) handlerMs.push(ms);
    statuses += response.statusCode === 202 ? 1 : 0;
    world.now += 1;
  }
  const hmacMs: number[] = [];
  for (const [i, event] of events.entries()) {
    const started = process.hrtime.bigint();
    const digest = signature(secret, event.body);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (i >= 2_000) hmacMs.push(ms);
    if (digest.length !== 71) throw new Error('unexpected digest');
  }
  handlerMs.sort((a, b) => a - b);
  hmacMs.sort((a, b) => a - b);
  const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
  console.log(
    `\nrouter handler (bundled), ${DELIVERIES.toLocaleString('en')} queued deliveries, in-memory ports`,
  );
  console.log(`  handler:      p50 ${us(percentile(handlerMs, 50))}, p99 ${us(percentile(handlerMs, 99))}`);
  console.log(`  HMAC-SHA256:  p50 ${us(percentile(hmacMs, 50))}, p99 ${us(percentile(hmacMs, 99))}`);
  console.log(
    `  ratio: p50 ${(percentile(handlerMs, 50) / percentile(hmacMs, 50)).toFixed(1)}x, ` +
      `p99 ${(percentile(handlerMs, 99) / percentile(hmacMs, 99)).toFixed(1)}x the body's HMAC`,
  );
  console.log(
    `  dispatched: ${statuses.toLocaleString('en')} of ${events.length.toLocaleString('en')} (202)`,
  );
}

async function main(): Promise<void> {
  decisions();
  await handlerLatency();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
