import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncRegionsOf } from '../../scripts/lib/event-pump';
import { deployLocalEstate, type LocalEstate } from '../../scripts/lib/local-estate';
import { prepareTerraform } from '../../scripts/lib/terraform';
import { quotaScenarios } from '../deploy/quota-scenarios';
import { syncScenarios } from '../deploy/sync-scenarios';
import { laneEndpoint, THREE_REGION_LANE_ENDPOINT } from '../support/moto-lane';

jest.setTimeout(20 * 60_000);

const endpoint = laneEndpoint(THREE_REGION_LANE_ENDPOINT);
const REGIONS = ['eu-central-1', 'us-east-1', 'ap-southeast-1'] as const;
let estate: LocalEstate;

beforeAll(async () => {
  estate = await deployLocalEstate(prepareTerraform(), endpoint, {
    outdir: mkdtempSync(join(tmpdir(), 'estate-local-3r-')),
    regions: REGIONS,
  });
});

describe('the local estate with a third region added by config', () => {
  it('deploys a regional stack per region', () => {
    expect(estate.stacks.map((s) => s.name)).toEqual(
      expect.arrayContaining(REGIONS.map((region) => `local-${region}`)),
    );
  });
});

describe('the sync service across three regions (bundled handlers, the test pumping the inboxes)', () => {
  syncScenarios(endpoint, () => syncRegionsOf(estate));
});

describe('the quota sync across three regions (bundled handlers, the test driving demand and the schedule)', () => {
  quotaScenarios(endpoint, () => estate);
});
