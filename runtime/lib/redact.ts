/**
 * Bounded, value-free renderings for errors and logs (DESIGN §7): what reaches a log line, an error message
 * or a response is bounded in length, and input values never appear where they could be secret.
 */

const ELLIPSIS = '…';

/** The first `maxChars` UTF-16 units of `text`, never ending in half a surrogate pair. */
function cut(text: string, maxChars: number): string {
  const head = text.slice(0, maxChars);
  return /[\uD800-\uDBFF]$/.test(head) ? head.slice(0, -1) : head;
}

/** `text` cut to at most `maxChars` characters, saying how much was left out. */
export function boundedText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const kept = cut(text, maxChars);
  return `${kept}${ELLIPSIS}(+${text.length - kept.length} chars)`;
}

/**
 * A short rendering of a received value for configuration errors (values that are not secret): numbers as
 * JavaScript shows them (`NaN`, `Infinity`, `-0`), strings quoted, objects and arrays as JSON-like text,
 * everything cut to `maxChars` characters however large or deeply nested the value is.
 */
export function renderValue(value: unknown, maxChars = 80): string {
  const out: string[] = [];
  let length = 0;
  const push = (text: string): boolean => {
    out.push(text);
    length += text.length;
    return length <= maxChars;
  };
  const visit = (item: unknown, depth: number): boolean => {
    if (item === undefined) return push('undefined');
    if (item === null) return push('null');
    switch (typeof item) {
      case 'number':
        return push(Object.is(item, -0) ? '-0' : String(item));
      case 'bigint':
        return push(`${item}n`);
      case 'boolean':
        return push(String(item));
      case 'string':
        return push(JSON.stringify(item.length > maxChars ? item.slice(0, maxChars + 1) : item));
      case 'function':
        return push('[function]');
      case 'symbol':
        return push('[symbol]');
    }
    if (item instanceof Date) return push(Number.isNaN(item.getTime()) ? 'Invalid Date' : item.toISOString());
    if (item instanceof Map || item instanceof Set)
      return push(`${item instanceof Map ? 'Map' : 'Set'}(${item.size})`);
    if (depth >= 4) return push(Array.isArray(item) ? '[…]' : '{…}');
    if (Array.isArray(item)) {
      if (!push('[')) return false;
      for (let i = 0; i < item.length; i++) {
        if (i > 0 && !push(',')) return false;
        if (!visit(item[i], depth + 1)) return false;
      }
      return push(']');
    }
    if (!push('{')) return false;
    let first = true;
    for (const key in item as object) {
      if (!Object.prototype.hasOwnProperty.call(item, key)) continue;
      if (!first && !push(',')) return false;
      first = false;
      if (!push(`${JSON.stringify(key.slice(0, maxChars + 1))}:`)) return false;
      if (!visit((item as Record<string, unknown>)[key], depth + 1)) return false;
    }
    return push('}');
  };
  let complete: boolean;
  try {
    complete = visit(value, 0);
  } catch {
    return '[unreadable value]';
  }
  const text = out.join('');
  return complete ? text : `${cut(text, maxChars - 1)}${ELLIPSIS}`;
}

/**
 * What may be said of an error in a log or a response: its name and, for AWS SDK errors, the HTTP status.
 * Never the message, which can quote input, ARNs or account ids.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return 'non-error thrown';
  const name = /^[A-Za-z0-9_.:-]{1,64}$/.test(error.name) ? error.name : 'Error';
  const status = (error as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
  return typeof status === 'number' ? `${name} (HTTP ${status})` : name;
}

/**
 * For a handler about to fail: logs what may be said of `error` and returns an error carrying only that,
 * so the Lambda runtime, which logs what a handler throws, never logs a message or a stack with ARNs or
 * account ids in it.
 */
export function sanitizedFailure(
  logger: { error(message: string, extra: Record<string, unknown>): void },
  what: string,
  error: unknown,
): Error {
  const described = describeError(error);
  logger.error(what, { error: described });
  const sanitized = new Error(`${what}: ${described}`);
  sanitized.stack = sanitized.message;
  return sanitized;
}
