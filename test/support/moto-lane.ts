import { startMoto, type MotoServer } from '../../scripts/lib/moto';

/** Each lane gets its own moto_server; its endpoint reaches the lane's test workers through this variable. */
export const EMULATOR_LANE_ENDPOINT = 'ESTATE_TEST_EMULATOR_ENDPOINT';
export const DEPLOY_LANE_ENDPOINT = 'ESTATE_TEST_DEPLOY_ENDPOINT';
export const THREE_REGION_LANE_ENDPOINT = 'ESTATE_TEST_THREE_REGION_ENDPOINT';

const servers = globalThis as typeof globalThis & { __estateMoto?: Map<string, MotoServer> };

export async function startLaneEmulator(variable: string): Promise<void> {
  const server = await startMoto();
  (servers.__estateMoto ??= new Map()).set(variable, server);
  process.env[variable] = server.endpoint;
}

export async function stopLaneEmulator(variable: string): Promise<void> {
  await servers.__estateMoto?.get(variable)?.stop();
  servers.__estateMoto?.delete(variable);
}

/** In a test: the endpoint of the lane's emulator. */
export function laneEndpoint(variable: string): string {
  const endpoint = process.env[variable];
  if (!endpoint)
    throw new Error(`${variable} is not set: run this test through its jest project (npm run test:<lane>)`);
  return endpoint;
}
