import { Logger } from '@aws-lambda-powertools/logger';

/** A structured JSON logger for one capability (Powertools for AWS Lambda). */
export function createLogger(serviceName: string): Logger {
  return new Logger({ serviceName });
}
