import type { Hlc } from '../../runtime/crdt';
import { encodeEnvelope, MAX_DOCUMENT_BYTES, type Envelope, type StoredDocument } from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { captureOutput, findLeaks } from '../../runtime/lib/leak-check';
import { inboxContext, sqsEvent } from '../support/inbox-harness';
import { memoryStore, paddedTo, testRegion } from '../support/sync-harness';

const throttled = () =>
  Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });

async function deltas(count: number, document = 'doc'): Promise<string[]> {
  const eu = testRegion('eu-central-1');
  for (let i = 0; i < count; i++) await eu.replica.update(document, { kind: 'increment', field: 'n', by: 1 });
  return eu.published.map((e: Envelope) => encodeEnvelope(e));
}

describe('processInbox', () => {
  it('acknowledges what merged and reports only what failed transiently for redelivery', async () => {
    const us = testRegion('us-east-1');
    const [ok, flaky, okToo] = await deltas(3);
    let calls = 0;
    const { ctx, deadLettered } = inboxContext({
      receive: async (e) => {
        if (++calls === 2) throw throttled();
        return us.replica.receive(e);
      },
    });
    const response = await processInbox(ctx, sqsEvent([ok as string, flaky as string, okToo as string]));
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(deadLettered).toEqual([]);
  });

  it('dead-letters a permanent failure at once with a bounded reason and code, keeping the body', async () => {
    const us = testRegion('us-east-1');
    const { ctx, deadLettered } = inboxContext(us.replica);
    const response = await processInbox(ctx, sqsEvent(['not json', '{"v":1}']));
    expect(response.batchItemFailures).toEqual([]);
    expect(deadLettered).toEqual([
      { body: 'not json', code: 'invalid-envelope', reason: 'message: not valid JSON' },
      { body: '{"v":1}', code: 'invalid-envelope', reason: 'v (version): unsupported; expected 2 to 3' },
    ]);
  });

  it('retries a message of a newer protocol version, and dead-letters it with its reason on the last delivery', async () => {
    const us = testRegion('us-east-1');
    const newer = '{"v":4,"anything":"a later release reads"}';
    const first = inboxContext(us.replica);
    await expect(processInbox(first.ctx, sqsEvent([newer], 1))).resolves.toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }],
    });
    expect(first.deadLettered).toEqual([]);
    const last = inboxContext(us.replica);
    await expect(processInbox(last.ctx, sqsEvent([newer], 5))).resolves.toEqual({ batchItemFailures: [] });
    expect(last.deadLettered).toEqual([
      {
        body: newer,
        code: 'newer-protocol',
        reason: 'failed on 5 deliveries; the last: v (version): newer than 3; upgrade this region',
      },
    ]);
  });

  it('dead-letters a transient failure with its reason on the last delivery instead of leaving it to redrive', async () => {
    const [message] = await deltas(1);
    const { ctx, deadLettered } = inboxContext({ receive: () => Promise.reject(throttled()) });
    await expect(processInbox(ctx, sqsEvent([message as string], 5))).resolves.toEqual({
      batchItemFailures: [],
    });
    expect(deadLettered).toEqual([
      {
        body: message,
        code: 'transient',
        reason: 'failed on 5 deliveries; the last: transient failure: ProvisionedThroughputExceededException',
      },
    ]);
  });

  it('merges the fields that fit when the whole would pass the document limit, and reports the others', async () => {
    const eu = testRegion('eu-central-1');
    const us = testRegion('us-east-1');
    await eu.replica.update('big', { kind: 'set', field: 'a', value: 'x'.repeat(150_000) });
    await eu.replica.update('big', { kind: 'set', field: 'small', value: 'fits' });
    await us.replica.update('big', { kind: 'set', field: 'b', value: 'y'.repeat(150_000) });
    const stored = us.store.items.get('big') as StoredDocument;
    us.store.items.set('big', {
      ...stored,
      state: paddedTo(stored.state, MAX_DOCUMENT_BYTES - 100_000, stored.clock as Hlc),
    });
    eu.published.length = 0;
    await eu.replica.publishFullState();
    const { ctx, deadLettered } = inboxContext(us.replica);
    await expect(processInbox(ctx, sqsEvent([encodeEnvelope(eu.published[0] as Envelope)]))).resolves.toEqual(
      {
        batchItemFailures: [],
      },
    );
    expect(deadLettered).toEqual([]);
    const state = await us.replica.read('big');
    expect([...state.keys()].filter((key) => !key.startsWith('pad')).sort()).toEqual(['b', 'small']);
    expect(us.calls.refused).toEqual([['big', 1, 'the document would pass its size limit']]);
  });

  it('redelivers a transient failure after a growing, jittered backoff', async () => {
    const [message] = await deltas(1);
    const { ctx, backoffs } = inboxContext({ receive: () => Promise.reject(throttled()) });
    for (const delivery of [1, 2, 3, 4]) await processInbox(ctx, sqsEvent([message as string], delivery));
    const ranges = [
      [15, 30],
      [30, 60],
      [60, 120],
      [120, 240],
    ];
    backoffs.forEach((seconds, i) => {
      expect(seconds).toBeGreaterThanOrEqual(ranges[i]?.[0] as number);
      expect(seconds).toBeLessThanOrEqual(ranges[i]?.[1] as number);
    });
    expect(backoffs).toHaveLength(4);
  });

  it('retries a poison message whose dead-lettering failed, rather than lose it', async () => {
    const us = testRegion('us-east-1');
    const { ctx } = inboxContext(us.replica, { sqsDown: true });
    await expect(processInbox(ctx, sqsEvent(['garbage']))).resolves.toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }],
    });
  });

  it('leaves a message too large to carry a reason to the queue redrive, with the reason in the log', async () => {
    const us = testRegion('us-east-1');
    const { ctx, deadLettered } = inboxContext(us.replica);
    const output = captureOutput();
    let response;
    try {
      response = await processInbox(ctx, sqsEvent(['x'.repeat(262_100)]));
    } finally {
      output.restore();
    }
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm0' }]);
    expect(deadLettered).toEqual([]);
    const logged = output.lines.join('\n');
    expect(logged).toContain('message too large to dead-letter with its reason');
    expect(logged).toContain('"messageId":"m0"');
    expect(findLeaks(output.lines, 'xxxxxxxxxxxxxxxx')).toEqual([]);
  });

  it('never lets a poison message block its document: the good message in the same batch merges', async () => {
    const us = testRegion('us-east-1');
    const [good] = await deltas(1, 'shared');
    const poison = JSON.stringify({ ...JSON.parse(good as string), b: { m: { n: { t: 'g' } } } });
    const { ctx, deadLettered } = inboxContext(us.replica);
    await expect(processInbox(ctx, sqsEvent([poison, good as string]))).resolves.toEqual({
      batchItemFailures: [],
    });
    expect(deadLettered.map((d) => d.code)).toEqual(['invalid-envelope']);
    expect(us.store.items.get('shared')).toBeDefined();
  });

  it('does not answer before the write of every record completed', async () => {
    const store = memoryStore();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const us = testRegion('us-east-1', {
      store: {
        ...store,
        save: async (...args: Parameters<typeof store.save>) => (await gate, store.save(...args)),
      },
    });
    const [message] = await deltas(1);
    const { ctx } = inboxContext(us.replica);
    let answered = false;
    const processing = processInbox(ctx, sqsEvent([message as string])).then(() => (answered = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(answered).toBe(false);
    release();
    await processing;
    expect(store.items.get('doc')).toBeDefined();
  });
});
