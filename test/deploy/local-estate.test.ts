import { DeleteTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AwsRegion } from '../../environments';
import { SyncBus } from '../../modules/sync-bus';
import {
  deployLocalEstate,
  invokeDeployed,
  regionalStackOf,
  type DeployedStack,
  type LocalEstate,
} from '../../scripts/lib/local-estate';
import { planHasChanges, prepareTerraform } from '../../scripts/lib/terraform';
import { bucketName, resourceName } from '../../stacks/names';
import { DEPLOY_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';
import { syncRegionsOf } from '../../scripts/lib/event-pump';
import { runnersScenarios } from './runners-scenarios';
import { secretsScenarios } from './secrets-scenarios';
import { syncScenarios } from './sync-scenarios';
import { admittedTopics, bucketProtection, drain, emulatorClients, publish, purge } from './topology';

jest.setTimeout(20 * 60_000);

const endpoint = laneEndpoint(DEPLOY_LANE_ENDPOINT);
const cli = prepareTerraform();
const healthEvent = { rawPath: '/health', requestContext: { http: { method: 'GET', path: '/health' } } };
let estate: LocalEstate;

beforeAll(async () => {
  estate = await deployLocalEstate(cli, endpoint, { outdir: mkdtempSync(join(tmpdir(), 'estate-local-')) });
});

const regions = (): readonly AwsRegion[] => estate.environment.regions;
const stackFor = (region: AwsRegion): DeployedStack => regionalStackOf(estate, region);
const inboxUrl = (region: AwsRegion) => stackFor(region).outputs.sync_inbox_url as string;
const topicArn = (region: AwsRegion) => stackFor(region).outputs.sync_topic_arn as string;
type HttpAnswer = { statusCode: number; body: string };

describe('the local estate on the emulator', () => {
  it('applies every stack of the local environment, in dependency order', () => {
    expect(estate.stacks.map((s) => s.name)).toEqual([
      'local-shared-us-east-1',
      'local-shared-eu-central-1',
      'local-global',
      'local-eu-central-1',
      'local-us-east-1',
    ]);
    for (const stack of estate.stacks) expect(stack.resourceCount).toBeGreaterThan(0);
  });

  it('plans no changes right after apply', async () => {
    const plans = await Promise.all(
      estate.stacks.map(async (stack) => {
        const plan = await planHasChanges(cli, stack.dir);
        return {
          stack: stack.name,
          changes: plan.changes ? plan.output.split('Terraform will perform')[1] : 'none',
        };
      }),
    );
    expect(plans).toEqual(estate.stacks.map((stack) => ({ stack: stack.name, changes: 'none' })));
  });

  it("delivers a message published in each region to every other region's inbox and not its own", async () => {
    for (const region of regions()) await purge(emulatorClients(endpoint, region).sqs, inboxUrl(region));
    for (const origin of regions()) {
      await publish(emulatorClients(endpoint, origin).sns, topicArn(origin), `hello from ${origin}`);
    }
    for (const region of regions()) {
      const received = await drain(emulatorClients(endpoint, region).sqs, inboxUrl(region));
      const expected = regions()
        .filter((origin) => origin !== region)
        .map((origin) => `hello from ${origin}`);
      expect({ region, received: received.sort() }).toEqual({ region, received: expected.sort() });
    }
  });

  it("admits exactly the other regions' topics to each inbox", async () => {
    for (const region of regions()) {
      const expected = regions()
        .filter((peer) => peer !== region)
        .map((peer) =>
          SyncBus.topicArn(peer, estate.environment.accountId, resourceName(estate.environment, 'sync')),
        )
        .sort();
      await expect(admittedTopics(emulatorClients(endpoint, region).sqs, inboxUrl(region))).resolves.toEqual(
        expected,
      );
    }
  });

  it('keeps every regional bucket private and encrypted with the customer-managed key', async () => {
    for (const region of regions()) {
      for (const purpose of ['snapshots', 'artifact-cache']) {
        const protection = await bucketProtection(
          emulatorClients(endpoint, region).s3,
          bucketName(estate.environment, purpose, region),
        );
        expect(protection).toMatchObject({
          algorithm: 'aws:kms',
          kmsKey: expect.stringMatching(new RegExp(`^arn:aws:kms:${region}:`)),
          publicAccessBlock: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
        });
      }
    }
  });

  it("records each region's verdict in its region-status table when the schedule fires", async () => {
    const functionName = resourceName(estate.environment, 'health');
    const scheduled = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} };
    for (const region of regions()) {
      const { environment } = await invokeDeployed(
        endpoint,
        region,
        stackFor(region).dir,
        functionName,
        scheduled,
      );
      const dynamodb = new DynamoDBClient({
        region,
        endpoint,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      const item = await dynamodb.send(
        new GetItemCommand({
          TableName: environment.REGION_STATUS_TABLE_NAME,
          Key: { region: { S: region } },
        }),
      );
      expect(item.Item).toMatchObject({ region: { S: region }, status: { S: 'healthy' } });
    }
  });
});

describe('the sync service on the deployed bus (bundled handlers, the test pumping the inboxes)', () => {
  syncScenarios(endpoint, () => syncRegionsOf(estate));
});

describe('the secrets replicator as deployed (bundled handler, the test pumping its queue)', () => {
  secretsScenarios(endpoint, () => estate);
});

describe('the runner control plane as deployed (bundled handlers; ECS RunTask and GitHub stand in)', () => {
  runnersScenarios(endpoint, () => estate);
});

describe('the local estate on the emulator, losing a dependency', () => {
  it("answers 200 from each region's deployed health bundle, then 503 naming the table once it is deleted", async () => {
    const functionName = resourceName(estate.environment, 'health');
    for (const region of regions()) {
      const stack = stackFor(region);
      const healthy = await invokeDeployed(endpoint, region, stack.dir, functionName, healthEvent);
      expect((healthy.response as HttpAnswer).statusCode).toBe(200);
      expect(JSON.parse((healthy.response as HttpAnswer).body)).toMatchObject({
        status: 'healthy',
        region,
        failing: [],
      });

      const table = healthy.environment.STATE_TABLE_NAME;
      expect(table).toBe(stack.outputs.state_table);
      const dynamodb = new DynamoDBClient({
        region,
        endpoint,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      await dynamodb.send(new DeleteTableCommand({ TableName: table }));

      const unhealthy = await invokeDeployed(endpoint, region, stack.dir, functionName, healthEvent);
      expect((unhealthy.response as HttpAnswer).statusCode).toBe(503);
      expect(JSON.parse((unhealthy.response as HttpAnswer).body)).toMatchObject({
        status: 'unhealthy',
        region,
        failing: [`dynamodb:${table}`],
      });
    }
  });
});
