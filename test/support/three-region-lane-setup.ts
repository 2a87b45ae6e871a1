import { startLaneEmulator, THREE_REGION_LANE_ENDPOINT } from './moto-lane';

export default () => startLaneEmulator(THREE_REGION_LANE_ENDPOINT);
