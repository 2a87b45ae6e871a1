export * from './causal-context';
export * from './codec';
export * from './crdt';
export * from './gcounter';
export * from './hlc';
export * from './lww-register';
export * from './orset';
export * from './pncounter';
