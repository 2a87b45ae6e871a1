import { stopLaneEmulator, THREE_REGION_LANE_ENDPOINT } from './moto-lane';

export default () => stopLaneEmulator(THREE_REGION_LANE_ENDPOINT);
