import type { EnvironmentInput } from './schema';

/** Where the local estate's AWS emulator listens; the test lanes and `npm start` set it to the port they chose. */
export const LOCAL_ENDPOINT_VARIABLE = 'ESTATE_EMULATOR_ENDPOINT';

/**
 * The estate on the embedded AWS emulator (moto_server on loopback). Moto account id, local state, no
 * deploy role. Switched off here because the emulator cannot do them: function environment encryption
 * with a CMK (moto does not store `kms_key_arn`). Table deletion protection is off so the estate can be
 * torn down and a lost table simulated.
 */
export function local(env: NodeJS.ProcessEnv = process.env): EnvironmentInput {
  return {
    name: 'local',
    accountId: '123456789012',
    regions: ['eu-central-1', 'us-east-1'],
    backend: { type: 'local' },
    dns: { zoneName: 'estate.local.test', apiRecordName: 'api' },
    lambda: { provisionedConcurrency: 0, logRetentionDays: 7, environmentCmk: false },
    dynamodb: { deletionProtection: false },
    emulator: { endpoint: env[LOCAL_ENDPOINT_VARIABLE] ?? 'http://127.0.0.1:5000' },
  };
}
