export * from './bundle';
export * from './bundled-function';
