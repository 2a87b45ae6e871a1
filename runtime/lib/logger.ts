import { Logger } from '@aws-lambda-powertools/logger';

/** A structured JSON logger for one capability (Powertools for AWS Lambda). */
export function createLogger(serviceName: string): Logger {
  return new Logger({ serviceName });
}

/** The key a log line's correlation id goes under (Powertools' own, as `setCorrelationId` writes it). */
export const CORRELATION_KEY = 'correlation_id';

const LINE_METHODS: ReadonlySet<PropertyKey> = new Set([
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'critical',
]);

/**
 * The correlation ids of one SQS batch's records, by message id. Powertools' batch processor handles a
 * batch's records at once, so a key appended to the shared logger (`appendKeys`, `setCorrelationId`) would
 * land on the lines of whichever record logs next; instead every line names its own record's id: the
 * handler's lines through `keysOf`, and the lines a shared consumer (`consumeQueue`) writes of a record,
 * which name its `messageId`, through `logger`. Make one per batch: nothing carries over to the next.
 */
export class BatchCorrelation {
  private readonly ids = new Map<string, string>();

  /** `messageId`'s record carries `correlationId` (a validated value: it goes into log lines as is). */
  set(messageId: string, correlationId: string): void {
    this.ids.set(messageId, correlationId);
  }

  get(messageId: string): string | undefined {
    return this.ids.get(messageId);
  }

  /** `{ correlation_id }` of the record, or nothing when it has none. */
  keysOf(messageId: string): { readonly [CORRELATION_KEY]?: string } {
    const id = this.ids.get(messageId);
    return id === undefined ? {} : { [CORRELATION_KEY]: id };
  }

  /**
   * `base`, adding to each line whose attributes name a record's `messageId` that record's correlation id
   * (lines that already carry one keep it). Everything else is `base`'s own.
   */
  logger(base: Logger): Logger {
    const withId = (item: unknown): unknown => {
      if (typeof item !== 'object' || item === null || Array.isArray(item) || item instanceof Error)
        return item;
      if (Object.prototype.hasOwnProperty.call(item, CORRELATION_KEY)) return item;
      const messageId = Object.prototype.hasOwnProperty.call(item, 'messageId')
        ? (item as { messageId: unknown }).messageId
        : undefined;
      const id = typeof messageId === 'string' ? this.ids.get(messageId) : undefined;
      return id === undefined ? item : { ...item, [CORRELATION_KEY]: id };
    };
    return new Proxy(base, {
      get: (target, property) => {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        // Bound to the logger itself: its private state is not reachable through the proxy.
        if (!LINE_METHODS.has(property)) return value.bind(target);
        return (input: unknown, ...extra: unknown[]) => value.call(target, input, ...extra.map(withId));
      },
    });
  }
}
