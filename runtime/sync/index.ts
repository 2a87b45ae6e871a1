export * from './dynamodb-store';
export * from './envelope';
export * from './operations';
export * from './replica';
export * from './sns-publisher';
