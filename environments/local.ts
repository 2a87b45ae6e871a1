import type { EnvironmentInput } from './schema';
import { twoWayApplicationSecrets } from './secrets';

/** Where the local estate's AWS emulator listens; the test lanes and `npm start` set it to the port they chose. */
export const LOCAL_ENDPOINT_VARIABLE = 'ESTATE_EMULATOR_ENDPOINT';

/**
 * The estate on the embedded AWS emulator (moto_server on loopback). Moto account id, local state, no
 * deploy role. Switched off here because the emulator cannot do them: function environment encryption
 * with a CMK (moto does not store `kms_key_arn`); DynamoDB replicas (moto cannot create them: one table per
 * region instead); ECR registry replication (the provider cannot read it back from moto); custom domains
 * (no certificate can be validated). Table deletion protection is off so the estate can be torn down and a
 * lost table simulated; no NAT gateway (nothing leaves the machine); buckets admit plain HTTP (the emulator
 * serves nothing else, and enforces bucket policies). What moto cannot read back is off
 * under `features`: secret replicas keep the AWS-managed key, no artifact-bucket replication, and the sync
 * inbox's redrive policy is not compared on plan. It also hosts the shared services.
 */
export function local(env: NodeJS.ProcessEnv = process.env): EnvironmentInput {
  return {
    name: 'local',
    accountId: '123456789012',
    regions: ['eu-central-1', 'us-east-1'],
    backend: { type: 'local' },
    dns: { zoneName: 'estate.local.test', apiRecordName: 'api', customDomain: false },
    lambda: { provisionedConcurrency: 0, logRetentionDays: 7, environmentCmk: false },
    dynamodb: { deletionProtection: false, replication: 'per-region' },
    network: { firstVpcCidr: '10.90.0.0/16', natGateways: 'none', interfaceEndpoints: false },
    sharedServices: { repositories: ['runner'], consumerAccountIds: [], registryReplication: false },
    features: {
      secretReplicaCmk: false,
      artifactReplication: false,
      redrivePolicyDrift: false,
      launchTemplateTagsDrift: false,
      eventSourceMappings: false,
      preventDestroy: false,
      tlsOnlyBuckets: false,
    },
    quota: { resources: { requests: { limitPerSec: 100 }, 'runner-concurrency': { limitPerSec: 10 } } },
    runners: {
      document: {
        organizations: { 'estate-eu': 'eu-central-1', 'estate-us': 'us-east-1' },
        concurrencyResource: 'runner-concurrency',
      },
      capacityPerRegion: 8,
    },
    secrets: { replication: twoWayApplicationSecrets('eu-central-1', 'us-east-1') },
    emulator: { endpoint: env[LOCAL_ENDPOINT_VARIABLE] ?? 'http://127.0.0.1:5000' },
  };
}
