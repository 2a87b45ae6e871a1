export * from './envelope';
export * from './operations';
export * from './replica';
