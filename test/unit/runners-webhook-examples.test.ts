import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { capturingOutput } from '../../scripts/lib/load-bundle';
import type { HttpResponse } from '../../runtime/lib/http';
import type { CompletedMessage, DispatchMessage } from '../../runtime/runners/model';
import { USER_OWNED_REASON } from '../../runtime/runners/router';
import {
  AP,
  EU,
  handlerDeps,
  loadRouterBundle,
  MemorySecret,
  routerBundleSource,
  routerWorld,
  testRunnerConfig,
  US,
  webhookEvent,
  type RouterWorld,
} from '../support/runners-fakes';

/*
 * Every `workflow_job` example of @octokit/webhooks-examples (api.github.com and each GHES version),
 * through the router as esbuild bundles it: the bundle's own `createRouterHandler` (its webhook reader,
 * signature check with the bundled @octokit/webhooks-methods, routing and Powertools telemetry), with the
 * in-memory ports of test/support/runners-fakes.ts in place of DynamoDB and SQS. The secret cache is the
 * bundle's too, over an in-memory Secrets Manager with a current and a previous value.
 */

jest.setTimeout(60_000);

interface Example {
  readonly source: string;
  readonly index: number;
  readonly action: string;
  readonly text: string;
  readonly jobId: number;
  readonly repository: string;
  /** `workflow_job.created_at`, epoch ms (the in_progress examples of GHES have none). */
  readonly createdAt: number | undefined;
  /** `repository.owner.type`: `User` repositories get no organisation runner. */
  readonly ownerType: string;
}

function examples(): Example[] {
  const root = dirname(require.resolve('@octokit/webhooks-examples/package.json'));
  const sources = readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const seen = new Set<string>();
  const found: Example[] = [];
  for (const source of sources) {
    const index = JSON.parse(readFileSync(join(root, source, 'index.json'), 'utf8')) as {
      name: string;
      examples: {
        action: string;
        workflow_job: { id: number; created_at?: string };
        repository: { full_name: string; owner: { type: string } };
      }[];
    }[];
    const event = index.find((e) => e.name === 'workflow_job');
    event?.examples.forEach((example, i) => {
      // GitHub's body as sent: the example's JSON text (the signature covers exactly this text).
      const text = JSON.stringify(example);
      if (seen.has(text)) return;
      seen.add(text);
      found.push({
        source,
        index: i,
        action: example.action,
        text,
        jobId: example.workflow_job.id,
        repository: example.repository.full_name.toLowerCase(),
        createdAt:
          example.workflow_job.created_at === undefined
            ? undefined
            : Date.parse(example.workflow_job.created_at),
        ownerType: example.repository.owner.type,
      });
    });
  }
  return found;
}

const ALL = examples();
const CURRENT = 'webhook-secret-current-5d2a';
const PREVIOUS = 'webhook-secret-previous-0c71';

// The examples' labels: `ubuntu-latest` (served here by a runner type of that label, as a runner set
// named after it would be), `self-hosted` + `k8s`; `gpu` jobs only ever arrive in_progress.
const CONFIG = testRunnerConfig({
  organizations: { octocoders: EU, wolfy1339: US, 'octo-org': AP },
  repositories: { 'lineville/elastic-machines-testing': AP, 'codertocat/hello-world': US },
  runnerTypes: [
    { name: 'k8s', labels: ['self-hosted', 'linux', 'x64', 'k8s'] },
    { name: 'ubuntu', labels: ['ubuntu-latest'] },
    { name: 'gpu', labels: ['gpu', 'db-app', 'dc-03'] },
  ],
});
/**
 * The routers' clock for an example: a minute after GitHub created its job (a delivery as it arrives).
 * The examples were recorded in 2021-2023; their age is not judged (a job may be approved days later).
 */
const arrival = (example: Example): number => (example.createdAt ?? Date.UTC(2023, 0, 1)) + 60_000;
const userOwned = (example: Example): boolean => example.ownerType === 'User';

/** Where each example repository's jobs go under CONFIG, and on which runner type. */
const EXPECTED: Record<string, { region: string; runnerType: string }> = {
  'codertocat/hello-world': { region: US, runnerType: 'ubuntu' },
  'lineville/elastic-machines-testing': { region: AP, runnerType: 'k8s' },
};

const { source, filename } = routerBundleSource();

function router(world: RouterWorld, region: string) {
  const bundle = loadRouterBundle(source, filename);
  const secret = new MemorySecret(CURRENT, PREVIOUS);
  const secrets = new bundle.WebhookSecretSource(secret.reader, { now: () => world.now });
  // Powertools telemetry of the bundle (logs and EMF to the real stdout, captured below).
  const handle = bundle.createRouterHandler({ ...handlerDeps(world, region, secrets, 'powertools') });
  return async (event: ReturnType<typeof webhookEvent>) => {
    const { result, output } = await capturingOutput(() => handle(event));
    return { response: result as HttpResponse, output };
  };
}

describe('the workflow_job examples of @octokit/webhooks-examples, through the bundled router', () => {
  it('covers every example of the package, queued and completed among them', () => {
    expect(ALL.length).toBeGreaterThanOrEqual(8); // 11 examples, 8 distinct bodies
    expect(ALL.map((e) => e.action)).toEqual(expect.arrayContaining(['queued', 'completed', 'in_progress']));
  });

  describe.each(ALL.map((e) => [`${e.source} #${e.index} (${e.action})`, e] as const))(
    '%s',
    (_name, example) => {
      it.each([
        ['the current secret', CURRENT],
        ['the previous secret', PREVIOUS],
      ])('signed with %s: routed as its action says', async (_secretName, secret) => {
        const world = routerWorld(CONFIG, arrival(example));
        const handle = router(world, EU);
        const expected = EXPECTED[example.repository];
        if (example.action === 'completed' && expected)
          // the job was dispatched earlier: the dispatcher recorded it
          world.jobs.records.set(example.jobId, expected);
        const event = webhookEvent(example.text, secret);
        const { response, output } = await handle(event);
        expect(output).not.toContain(secret);
        const logged = `"correlation_id":"${event.headers['x-github-delivery']}"`;

        if (example.action === 'queued' && userOwned(example)) {
          // This estate registers its runners per organisation: it serves no user-owned repository.
          expect(response.statusCode).toBe(202);
          expect(JSON.parse(response.body)).toEqual({ status: 'ignored', reason: USER_OWNED_REASON });
          expect(world.queues.sent).toHaveLength(0);
          expect(world.ledger.calls).toHaveLength(0);
          expect(output).toContain('"outcome":"user-owned"');
        } else if (example.action === 'queued') {
          expect(response.statusCode).toBe(202);
          expect(world.queues.sent).toHaveLength(1);
          const [sent] = world.queues.sent;
          expect(sent).toMatchObject({ region: expected?.region, runnerType: expected?.runnerType });
          const message = sent?.message as DispatchMessage;
          expect(message).toMatchObject({ kind: 'dispatch', region: expected?.region, retry: 0 });
          expect(message.job).toMatchObject({
            action: 'queued',
            jobId: example.jobId,
            repository: example.repository,
          });
          expect(output).toContain('"Decisions"');
          expect(output).toContain(logged);
        } else if (example.action === 'completed') {
          expect(response.statusCode).toBe(202);
          expect(world.queues.sent).toHaveLength(1);
          expect(world.queues.sent[0]).toMatchObject({
            region: expected?.region,
            runnerType: expected?.runnerType,
          });
          const message = world.queues.sent[0]?.message as CompletedMessage;
          expect(message).toMatchObject({ kind: 'completed', job: { jobId: example.jobId } });
          expect(output).toContain(logged);
        } else {
          expect(response.statusCode).toBe(202);
          expect(JSON.parse(response.body)).toMatchObject({ status: 'ignored' });
          expect(world.queues.sent).toHaveLength(0);
        }
      });

      it('with no dispatch record: only a queued job of an organisation enqueues', async () => {
        const world = routerWorld(CONFIG, arrival(example));
        const { response } = await router(world, US)(webhookEvent(example.text, CURRENT));
        expect(response.statusCode).toBe(202);
        expect(world.queues.sent).toHaveLength(example.action === 'queued' && !userOwned(example) ? 1 : 0);
        // a completed job of ours that was never dispatched: its tombstone keeps the dispatcher off it
        expect(world.jobs.tombstones.has(example.jobId)).toBe(
          example.action === 'completed' && EXPECTED[example.repository] !== undefined,
        );
      });

      if (example.action === 'queued' && !userOwned(example))
        it('arriving past the delivery time-to-live (created_at old): enqueued (the dispatcher checks GitHub)', async () => {
          const world = routerWorld(CONFIG, arrival(example) + CONFIG.deliveryTtlSec * 1000);
          const { response } = await router(world, EU)(webhookEvent(example.text, CURRENT));
          expect(response.statusCode).toBe(202);
          expect(JSON.parse(response.body)).toMatchObject({ status: 'queued' });
          expect(world.queues.sent).toHaveLength(1);
        });

      it.each([
        ['unsigned', undefined],
        ['signed with another secret', 'not-the-webhook-secret'],
      ])('%s: 401 and nothing enqueued', async (_case, secret) => {
        const world = routerWorld(CONFIG);
        world.jobs.records.set(example.jobId, { region: EU, runnerType: 'k8s' });
        const { response, output } = await router(world, EU)(webhookEvent(example.text, secret));
        expect(response.statusCode).toBe(401);
        expect(world.queues.sent).toHaveLength(0);
        expect(world.ledger.calls).toHaveLength(0);
        expect(output).not.toContain(CURRENT);
      });

      it('a redelivery of the same delivery to another region enqueues nothing more', async () => {
        const world = routerWorld(CONFIG, arrival(example));
        world.jobs.records.set(
          example.jobId,
          EXPECTED[example.repository] ?? { region: EU, runnerType: 'k8s' },
        );
        const event = webhookEvent(example.text, CURRENT);
        await router(world, EU)(event);
        const sent = world.queues.sent.length;
        const { response } = await router(world, AP)(event);
        expect(world.queues.sent).toHaveLength(sent);
        if (sent > 0) expect(response.statusCode).toBe(200);
      });
    },
  );
});
