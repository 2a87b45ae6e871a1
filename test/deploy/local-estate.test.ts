import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AwsRegion } from '../../environments';
import { deployLocalEstate, invokeDeployed, type LocalEstate } from '../../scripts/lib/local-estate';
import { planHasChanges, prepareTerraform } from '../../scripts/lib/terraform';
import { regionalStackName, resourceName } from '../../stacks/names';
import { DEPLOY_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

jest.setTimeout(15 * 60_000);

const endpoint = laneEndpoint(DEPLOY_LANE_ENDPOINT);
const cli = prepareTerraform();
const healthEvent = { rawPath: '/health', requestContext: { http: { method: 'GET', path: '/health' } } };
let estate: LocalEstate;

beforeAll(async () => {
  estate = await deployLocalEstate(cli, endpoint, { outdir: mkdtempSync(join(tmpdir(), 'estate-local-')) });
});

const stackFor = (region: AwsRegion) => {
  const stack = estate.stacks.find((s) => s.name === regionalStackName(estate.environment, region));
  if (!stack) throw new Error(`no stack for ${region}`);
  return stack;
};
type HttpAnswer = { statusCode: number; body: string };

describe('the local estate on the emulator', () => {
  it('applies every stack of the local environment', () => {
    expect(estate.stacks.map((s) => s.name).sort()).toEqual([
      'local-eu-central-1',
      'local-global',
      'local-us-east-1',
    ]);
    for (const stack of estate.stacks) expect(stack.resourceCount).toBeGreaterThan(0);
  });

  it('plans no changes right after apply', async () => {
    const plans = await Promise.all(
      estate.stacks.map(async (stack) => {
        const plan = await planHasChanges(cli, stack.dir);
        return { stack: stack.name, changes: plan.changes ? plan.output : 'none' };
      }),
    );
    expect(plans).toEqual(estate.stacks.map((stack) => ({ stack: stack.name, changes: 'none' })));
  });

  it("answers 200 from each region's deployed health bundle, then 503 naming the table once it is deleted", async () => {
    const functionName = resourceName(estate.environment, 'health');
    for (const region of estate.environment.regions) {
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
