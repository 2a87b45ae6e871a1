import { createLogger } from '../../lib/logger';
import { sanitizedFailure } from '../../lib/redact';
import type { PassReport } from '../anti-entropy';
import { createSyncContext, type SyncContext } from '../lambda-context';

const logger = createLogger('sync-anti-entropy');
let context: SyncContext | undefined;

/**
 * On schedule: announces the digests of the documents that changed since the last pass and of one page of
 * the incremental sweep, so a region that lost messages is found and repaired (see `AntiEntropy`).
 */
export async function handler(): Promise<PassReport> {
  context ??= createSyncContext(logger);
  try {
    const report = await context.antiEntropy.pass();
    logger.info('anti-entropy pass', { ...report });
    return report;
  } catch (error) {
    throw sanitizedFailure(logger, 'anti-entropy failed', error);
  } finally {
    context.metrics.publishStoredMetrics();
  }
}
