import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import * as z from 'zod/mini';
import { loadConfig } from '../../runtime/lib/config';
import { sanitizedFailure } from '../../runtime/lib/redact';
import { captureOutput, findLeaks, LEAK_MARKER } from '../../runtime/lib/leak-check';
import { checkHealth } from '../../runtime/health/handler';
import { encodeEnvelope, MAX_DOCUMENT_BYTES, type Envelope } from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { inboxContext, sqsEvent } from '../support/inbox-harness';
import { testRegion } from '../support/sync-harness';

const NOW = 1_700_000_000_000;
const M = LEAK_MARKER;

/** Sync messages that fail in every way the inbox knows, each carrying the marker where the input lets it. */
async function hostileMessages(): Promise<string[]> {
  const eu = testRegion('eu-central-1', { now: () => NOW });
  await eu.replica.update('doc', { kind: 'set', field: 'v', value: `${M} a secret value` });
  await eu.replica.update('doc', { kind: 'add', field: 's', element: `${M} an element` });
  const [valid, withElement] = eu.published as [Envelope, Envelope];
  const wire = JSON.parse(encodeEnvelope(valid)) as Record<string, unknown>;
  const text = (patch: Record<string, unknown>) => JSON.stringify({ ...wire, ...patch });
  const bodyWith = (variant: Record<string, unknown>) => ({
    m: { v: { a: [NOW, 0, valid.hlc.replica], ...variant } },
  });
  return [
    `${M} not json`,
    JSON.stringify({ v: 1, secret: M }),
    text({ o: `${M}-region` }),
    text({ o: 'ap-east-1' }), // no peer
    text({ o: 'us-east-1' }), // own origin
    text({ d: `${M}\u0000` }),
    text({ h: [NOW, 0, `${M} replica`] }),
    text({ h: [NOW + 3_600_000, 0, valid.hlc.replica] }), // clock ahead, body carries the marker
    text({
      b: bodyWith({
        t: 'lww',
        h: [NOW, 0, valid.hlc.replica],
        x: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[M]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
      }),
    }),
    text({ b: bodyWith({ t: 'g', r: { [`${M}`]: -1 } }) }),
    text({ b: bodyWith({ t: 'g', r: { [`${M} bad id`]: 1 } }) }),
    text({ b: bodyWith({ t: 'or', r: [valid.hlc.replica], e: [[`${M}`, [0, 9]]], vv: [0, 1], c: [] }) }),
    text({ b: bodyWith({ t: 'lww', h: [NOW, 0, valid.hlc.replica], x: `${M}`.repeat(14_390) }) }), // fits a message, but not the document limit once merged
    text({ b: { m: { [`${M}\u0001`]: {} } } }),
    text({ v: 3, x: M }), // newer version, last delivery
    encodeEnvelope(withElement),
  ];
}

describe('the marker of a hostile input', () => {
  it('reaches no log line, no dead-letter reason and no response, on every failure path', async () => {
    const output = captureOutput();
    const seen: string[] = [];
    try {
      // the inbox: every message of the batch fails except the last, on its last delivery
      const us = testRegion('us-east-1', { now: () => NOW });
      const { ctx, deadLettered } = inboxContext(us.replica);
      const messages = await hostileMessages();
      const response = await processInbox(ctx, sqsEvent(messages, 5));
      seen.push(JSON.stringify(response), ...deadLettered.map((d) => `${d.code} ${d.reason}`));
      expect(response).toEqual({ batchItemFailures: [] });
      expect(deadLettered).toHaveLength(messages.length - 2); // all but the valid one and the one too large
      expect(us.calls.refused).toHaveLength(1);
      // the inputs did carry the marker: the dead-lettered bodies keep it, as they must for a redrive
      expect(
        deadLettered.every(
          (d) =>
            d.body?.includes(M) ||
            d.body?.includes('"o":"us-east-1"') ||
            d.body?.includes('ap-east-1') ||
            d.body?.includes('"v":3'),
        ),
      ).toBe(true);

      // a local change too large to store: the error message names the document, not the value
      const error = await us.replica
        .update('doc', { kind: 'set', field: 'v', value: `${M}`.repeat(MAX_DOCUMENT_BYTES / M.length + 1) })
        .catch((e: Error) => e);
      seen.push(String(error), (error as { reason?: string }).reason ?? '');

      // the health endpoint, with AWS quoting the marker in its error message
      const health = await checkHealth({
        config: { AWS_REGION: 'eu-central-1', STATE_TABLE_NAME: 'state', PROBE_TIMEOUT_MS: 1000 },
        dynamodb: {
          send: () =>
            Promise.reject(
              Object.assign(new Error(`denied on arn:aws:x:${M}`), { name: 'AccessDeniedException' }),
            ),
        } as unknown as DynamoDBClient,
        now: () => new Date(NOW),
      });
      seen.push(JSON.stringify(health));

      // a handler about to fail (anti-entropy, the scheduled health report): what the runtime would log
      const failure = sanitizedFailure(
        { error: (message, extra) => void seen.push(message, JSON.stringify(extra)) },
        'anti-entropy failed',
        Object.assign(new Error(`User arn:aws:iam::123456789012:role/${M} is not authorized`), {
          name: 'AccessDeniedException',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      seen.push(failure.message, String(failure.stack));
      expect(failure.message).toBe('anti-entropy failed: AccessDeniedException (HTTP 403)');

      // handler settings: a bad value names the setting, never the value
      try {
        loadConfig(z.object({ SYNC_MAX_CLOCK_SKEW_MS: z.coerce.number().check(z.int()) }), {
          SYNC_MAX_CLOCK_SKEW_MS: M,
        });
      } catch (e) {
        seen.push(String(e));
      }
    } finally {
      output.restore();
    }
    expect(output.lines.length).toBeGreaterThan(10); // the failures were logged
    expect(findLeaks([...output.lines, ...seen])).toEqual([]);
  });
});
