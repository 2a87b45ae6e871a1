import { DEPLOY_LANE_ENDPOINT, stopLaneEmulator } from './moto-lane';

export default () => stopLaneEmulator(DEPLOY_LANE_ENDPOINT);
