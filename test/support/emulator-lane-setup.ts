import { EMULATOR_LANE_ENDPOINT, startLaneEmulator } from './moto-lane';

export default () => startLaneEmulator(EMULATOR_LANE_ENDPOINT);
