import { DEPLOY_LANE_ENDPOINT, startLaneEmulator } from './moto-lane';

export default () => startLaneEmulator(DEPLOY_LANE_ENDPOINT);
