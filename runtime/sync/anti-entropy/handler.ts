import { createLogger } from '../../lib/logger';
import { sanitizedFailure } from '../../lib/redact';
import { createSyncContext, type SyncContext } from '../lambda-context';

const logger = createLogger('sync-anti-entropy');
let context: SyncContext | undefined;

/**
 * On schedule: publishes the full state of every document of the region, so a region that lost messages
 * (purged queue, dead-lettered message, long partition) converges.
 */
export async function handler(): Promise<{ documents: number }> {
  context ??= createSyncContext(logger);
  try {
    const documents = await context.replica.publishFullState();
    logger.info('anti-entropy published', { documents });
    return { documents };
  } catch (error) {
    throw sanitizedFailure(logger, 'anti-entropy failed', error);
  } finally {
    context.metrics.publishStoredMetrics();
  }
}
