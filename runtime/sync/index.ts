export * from './dynamodb-store';
export * from './envelope';
export * from './identity';
export * from './limits';
export * from './operations';
export * from './replica';
export * from './sns-publisher';
export * from './trust';
