import { EMULATOR_LANE_ENDPOINT, stopLaneEmulator } from './moto-lane';

export default () => stopLaneEmulator(EMULATOR_LANE_ENDPOINT);
