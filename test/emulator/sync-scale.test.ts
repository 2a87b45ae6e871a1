import { createHash } from 'node:crypto';
import { GetItemCommand, PutItemCommand, QueryCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import {
  encodeDocument,
  epochReplicaId,
  orsetFromEntries,
  emptyPNCounter,
  pncounterAdd,
  tick,
  type CrdtDocument,
  type Hlc,
  type ORSetEntry,
} from '../../runtime/crdt';
import {
  decodeMessage,
  DynamodbDocumentStore,
  elementPartKey,
  LINE_IDLE_MS,
  encodeEnvelope,
  planChange,
  variantPartKey,
  type DigestMessage,
  type StateReference,
  type SyncMessage,
} from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import { bulkLoader, transactionItemSizes, writeUnits } from '../support/dynamodb-recording';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';
import {
  closeRegions,
  drainQueue,
  emulatedRegions,
  pumpInbox,
  sqsMessageBytes,
  sqsRecord,
  testClock,
  type EmulatedRegion,
  type TestClock,
} from '../support/sync-emulator';

/*
 * The sync service at scale on the emulator (moto): the real DynamoDB store, index and checkpoint store on
 * one state table per region (with the `sync-documents` index), SNS topics delivering raw to the peers'
 * SQS inboxes, S3 buckets for full states too large for a message. Every assertion is on what the emulator
 * stored or what was published.
 *
 * Sizes are what each test needs and no more: moto 5.2 deep-copies the whole table for every action of a
 * TransactWriteItems (to roll back), so a transaction of n actions costs n copies of the table; test data
 * is loaded with BatchWriteItem (`bulkLoader`) in the real store's item layout.
 */

// Building a 14,000-element set on moto takes ~20 s alone, several times that on a loaded machine.
jest.setTimeout(240_000);

const endpoint = laneEndpoint(EMULATOR_LANE_ENDPOINT);
const EU = 'eu-central-1';
const US = 'us-east-1';
const SETTLE_MS = 60_000;
const HOUR = 3_600_000;
/** Shared by every region of a test: settle windows are moved by hand. */
const START = Math.floor(Date.now() / 1000) * 1000;
const MAX_MESSAGE = 262_144;

let worlds = 0;
const regions: EmulatedRegion[] = [];
async function world(clock: TestClock, options: { pageSize?: number } = {}) {
  const made = await emulatedRegions([EU, US], {
    endpoint,
    suffix: `${START.toString(36)}${++worlds}`,
    clock,
    settleMs: SETTLE_MS,
    ...options,
  });
  regions.push(...made);
  return made as [EmulatedRegion, EmulatedRegion];
}
afterAll(() => closeRegions(regions));

type Item = Record<string, AttributeValue>;

/** A replica of `region` that wrote before the test's processes started (an earlier epoch). */
const earlierReplica = (region: string) => epochReplicaId(region, START - 2 * HOUR, '0abc');

/** A document with one OR-Set field holding `elements`, each added once by `replica`. */
function setDocument(field: string, elements: readonly string[], replica: string): CrdtDocument {
  const stamp: Hlc = { wallMs: START - HOUR, logical: 0, replica };
  const entries = elements.map((element, i): ORSetEntry => [element, [[replica, i + 1]]]);
  const state = orsetFromEntries(entries, {
    vv: new Map([[replica, elements.length]]),
    cloud: new Map(),
    horizons: new Map(),
  });
  return new Map([[field, [{ created: stamp, crdt: { type: 'orset' as const, state } }]]]);
}

/** A document with one PN-counter field `hits` at `count`, counted by `replica`. */
function counterDocument(count: number, replica: string): CrdtDocument {
  const stamp: Hlc = { wallMs: START - HOUR, logical: 0, replica };
  const state = pncounterAdd(emptyPNCounter(), replica, count);
  return new Map([['hits', [{ created: stamp, crdt: { type: 'pncounter' as const, state } }]]]);
}

/**
 * Stores documents as the region's store would (its item layout: a head and a part per field variant and
 * set element), each as one commit, loaded with batch writes. Returns the items written, by `pk sk`.
 */
async function seed(
  region: EmulatedRegion,
  documents: ReadonlyArray<readonly [string, CrdtDocument]>,
  changedAt: number,
): Promise<Map<string, Item>> {
  const loader = bulkLoader(region.dynamodb);
  const store = new DynamodbDocumentStore(loader.client, region.tableName);
  const unbounded = { parts: Number.MAX_SAFE_INTEGER, bytes: Number.MAX_SAFE_INTEGER };
  for (const [document, state] of documents) {
    const stamp = [...state.values()][0]?.[0]?.created as Hlc;
    const { commits } = planChange(new Map(), undefined, state, { clock: stamp, changedAt }, unbounded);
    for (const commit of commits) await store.save(document, commit);
  }
  const { items } = await loader.flush();
  region.requests.clear();
  return new Map(items.map((item) => [`${item.pk?.S} ${item.sk?.S}`, item]));
}

/** Every item the table holds for a document, by sort key (a consistent Query, page by page). */
async function itemsOf(region: EmulatedRegion, document: string): Promise<Map<string, Item>> {
  const items = new Map<string, Item>();
  let start: Item | undefined;
  do {
    const page = await region.dynamodb.send(
      new QueryCommand({
        TableName: region.tableName,
        ConsistentRead: true,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: `doc#${document}` } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) items.set(item.sk?.S as string, item);
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/** The head item's digest, as the table holds it. */
async function storedDigest(region: EmulatedRegion, document: string): Promise<string | undefined> {
  const { Item } = await region.dynamodb.send(
    new GetItemCommand({
      TableName: region.tableName,
      Key: { pk: { S: `doc#${document}` }, sk: { S: 'h' } },
      ConsistentRead: true,
    }),
  );
  return Item?.digest?.S;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const digestsIn = (messages: readonly SyncMessage[]) =>
  messages.filter((m): m is DigestMessage => m.kind === 'digests').flatMap((m) => m.entries);

describe('sync at scale on the emulator', () => {
  it('writes a few hundred bytes for one add to a 14,000-element set, and leaves the set’s other items as they were', async () => {
    const clock = testClock(START);
    const [eu] = await world(clock);
    const members = Array.from({ length: 14_000 }, (_, i) => `member-${String(i).padStart(5, '0')}`);
    const whole = setDocument('members', members, earlierReplica(EU));
    const seeded = await seed(eu, [['presence', whole]], START - HOUR);
    const before = new Map([...seeded.values()].map((item) => [item.sk?.S as string, item]));
    expect(before.size).toBe(14_002); // the head, the set's variant part (its context) and 14,000 elements

    eu.requests.clear();
    await eu.replica.update('presence', { kind: 'add', field: 'members', element: 'member-new' });

    const transactions = eu.requests.transactions();
    expect(transactions).toHaveLength(1);
    const sizes = transactionItemSizes(transactions[0] as (typeof transactions)[number]);
    const wholeBytes = Buffer.byteLength(encodeDocument(whole), 'utf8');
    expect(wholeBytes).toBeGreaterThan(350 * 1024); // the set as one item would be ~358 KiB
    expect(sizes).toHaveLength(3); // the head, the set's context, the new element
    expect(sum(sizes)).toBeLessThan(2048);
    expect(writeUnits(sizes, true)).toBe(6); // the set as one item: 359 (a conditional put)
    // It read only what it touched, by key: the head, the previous release's item, the field's variant part
    // of each type and the element (a snapshot read; at most the head twice more).
    expect(eu.requests.of('QueryCommand')).toHaveLength(0);
    expect(eu.requests.of('ScanCommand')).toHaveLength(0);
    expect(eu.requests.keysRead()).toBeLessThanOrEqual(9);
    // Its delta is as small.
    const [delta] = eu.published;
    expect(delta && delta.kind === 'delta' && Buffer.byteLength(encodeEnvelope(delta))).toBeLessThan(600);

    const after = await itemsOf(eu, 'presence');
    const added = [...after.keys()].filter((sk) => !before.has(sk));
    expect(added).toHaveLength(1);
    expect(after.get(added[0] as string)?.part?.S).toBe(elementPartKey('members', 'member-new'));
    const changed = [...before.keys()].filter(
      (sk) => JSON.stringify(before.get(sk)) !== JSON.stringify(after.get(sk)),
    );
    const header = [...before].find(([, item]) => item.part?.S === variantPartKey('members', 'or'))?.[0];
    expect(changed.sort()).toEqual(['h', header].sort());
    // The set now holds 14,001 elements: its context counts 14,001 adds, the new element reads back.
    const stored = await eu.store.load('presence', new Map([['members', ['member-new', 'member-00042']]]));
    const [set] = stored?.state.get('members') ?? [];
    expect(set?.crdt.type === 'orset' && set.crdt.state.entries.map(([element]) => element)).toEqual([
      'member-00042',
      'member-new',
    ]);
    expect(
      set?.crdt.type === 'orset' && [...set.crdt.state.context.vv.values()].sort((a, b) => a - b),
    ).toEqual([1, 14_000]);
  });

  it('merges 10 deltas of one document in one SQS batch with one load and one save', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock);
    for (let i = 0; i < 10; i++) {
      clock.advance(10);
      await eu.replica.update('room-7', { kind: 'add', field: 'members', element: `user-${i}` });
    }
    // The 10 deltas went through the topic to the peer's inbox: one batch, as the event-source mapping delivers.
    const messages = await drainQueue(us.sqs, us.inboxUrl);
    expect(messages).toHaveLength(10);
    us.requests.clear();
    const loads = jest.spyOn(us.store, 'load');
    const response = await processInbox(us.ctx, { Records: messages.map((m) => sqsRecord(m, US)) });

    expect(response.batchItemFailures).toEqual([]);
    const transactions = us.requests.transactions();
    expect(transactions).toHaveLength(1);
    expect(transactions[0]?.TransactItems).toHaveLength(12); // the head, the set's context, 10 elements
    expect(loads).toHaveBeenCalledTimes(1);
    expect(us.requests.of('QueryCommand')).toHaveLength(0); // the deltas name their elements: read by key
    expect(us.calls.merged).toBe(10);
    const [set] = (await us.replica.read('room-7')).get('members') ?? [];
    expect(set?.crdt.type === 'orset' && set.crdt.state.entries.map(([e]) => e)).toEqual(
      Array.from({ length: 10 }, (_, i) => `user-${i}`),
    );
    expect(await storedDigest(us, 'room-7')).toBe(await storedDigest(eu, 'room-7'));
  });

  it('writes nothing for a merge that changes nothing: a delta delivered again, a full state already merged', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock);
    await eu.replica.update('flags', { kind: 'set', field: 'mode', value: 'on' });
    await eu.replica.update('flags', { kind: 'increment', field: 'hits', by: 3 });
    await eu.replica.update('flags', { kind: 'add', field: 'owners', element: 'ana' });
    const deltas = await drainQueue(us.sqs, us.inboxUrl);
    expect(deltas).toHaveLength(3);
    await processInbox(us.ctx, { Records: deltas.map((m) => sqsRecord(m, US)) });
    expect(us.requests.transactions()).toHaveLength(1);

    // SQS delivers at least once: the same deltas again write nothing.
    us.requests.clear();
    const again = await processInbox(us.ctx, { Records: deltas.map((m) => sqsRecord(m, US)) });
    expect(again.batchItemFailures).toEqual([]);
    expect(us.requests.transactions()).toHaveLength(0);
    expect(us.requests.of('PutItemCommand')).toHaveLength(0);

    // A full state equal to what the peer holds: the first records when the peer heard it whole (the head
    // alone: folding waits for it), the same state again writes nothing.
    const full = await eu.replica.fullState('flags');
    if (!full) throw new Error('eu holds the document');
    const record = {
      ...sqsRecord(deltas[0] as (typeof deltas)[number], US),
      messageId: 'full',
      body: encodeEnvelope(full),
    };
    us.requests.clear();
    await processInbox(us.ctx, { Records: [record] });
    const [heard, ...more] = us.requests.transactions();
    expect(more).toHaveLength(0);
    expect(heard?.TransactItems?.map((action) => action.Put?.Item?.sk?.S)).toEqual(['h']);
    us.requests.clear();
    const repeated = await processInbox(us.ctx, { Records: [record] });
    expect(repeated.batchItemFailures).toEqual([]);
    expect(us.requests.transactions()).toHaveLength(0);
    expect(await storedDigest(us, 'flags')).toBe(await storedDigest(eu, 'flags'));
  });

  it('announces, after 10 changes among 1,000 documents, those 10 and one sweep page, in messages within 256 KiB', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock, { pageSize: 100 });
    // Long document keys (~300 bytes), so 1,000 digests take more than one message.
    const keys = Array.from(
      { length: 1000 },
      (_, i) => `tenant-${String(i).padStart(4, '0')}/${'k'.repeat(290)}`,
    );
    const replica = earlierReplica(EU);
    await seed(
      eu,
      keys.map((key, i) => [key, counterDocument(i + 1, replica)] as const),
      clock.now(),
    );
    const pages: string[][] = [];
    const page = eu.index.page.bind(eu.index);
    jest.spyOn(eu.index, 'page').mockImplementation(async (cursor, limit) => {
      const result = await page(cursor, limit);
      pages.push(result.documents.map((d) => d.document));
      return result;
    });
    const received = async () => {
      const messages = await drainQueue(us.sqs, us.inboxUrl);
      for (const message of messages) expect(sqsMessageBytes(message)).toBeLessThanOrEqual(MAX_MESSAGE);
      return messages;
    };

    // The first pass at least settleMs after the documents were written announces them all.
    clock.advance(SETTLE_MS + 1);
    const first = await eu.antiEntropy.pass();
    const firstMessages = await received();
    expect(first).toMatchObject({ changed: 1000, swept: 100, failed: 0, sweepDone: false });
    expect(first.messages).toBe(firstMessages.length);
    expect(firstMessages.length).toBeGreaterThan(1);
    const firstDigests = digestsIn(firstMessages.map((m) => decodeMessage(m.Body as string)));
    expect(new Set(firstDigests.map((e) => e.document))).toEqual(new Set(keys));

    // 10 change; the next pass settleMs later announces exactly those and the sweep's next page.
    const changed = keys.filter((_, i) => i % 100 === 7);
    for (const key of changed) await eu.replica.update(key, { kind: 'increment', field: 'hits', by: 1 });
    expect(await drainQueue(us.sqs, us.inboxUrl)).toHaveLength(10); // their deltas
    clock.advance(SETTLE_MS + 1);
    const second = await eu.antiEntropy.pass();
    const secondMessages = await received();
    const secondPage = pages[1] as string[];
    expect(secondPage).toHaveLength(100);
    expect(second).toMatchObject({ changed: 10, swept: 100, failed: 0, sweepDone: false });
    expect(second.messages).toBe(secondMessages.length);
    expect(second.bytes).toBe(sum(secondMessages.map((m) => Buffer.byteLength(m.Body as string, 'utf8'))));
    const announced = digestsIn(secondMessages.map((m) => decodeMessage(m.Body as string)));
    expect(new Set(announced.map((e) => e.document))).toEqual(new Set([...changed, ...secondPage]));
    expect(announced).toHaveLength(new Set([...changed, ...secondPage]).size);
    // Each digest is the one the table holds.
    for (const entry of announced.filter((e) => changed.includes(e.document)))
      expect(entry.digest).toBe(await storedDigest(eu, entry.document));

    // The sweep lists every document once in ceil(1,000 / 100) passes. (The clock stands still: these
    // passes list no changes, only the sweep's pages.)
    const reports = [];
    for (let pass = 3; pass <= 10; pass++) reports.push(await eu.antiEntropy.pass());
    await received();
    expect(reports.map((r) => r.sweepDone)).toEqual([false, false, false, false, false, false, false, true]);
    expect(pages.flat().sort()).toEqual([...keys].sort());
  });

  it('repairs a document whose full state does not fit a message by reference: S3 object, size and SHA-256 checked', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock);
    // 300 elements of ~1 KB (the most an element may be): the full state encodes to ~310 KB, more than a
    // message takes (256 KiB). Few large elements rather than many small ones: the emulator copies the whole
    // table for every action of a transaction, so merging 20,000 parts would take it minutes.
    const elements = Array.from(
      { length: 300 },
      (_, i) => `badge-${String(i).padStart(3, '0')}-${'x'.repeat(1000)}`,
    );
    await seed(eu, [['roster', setDocument('members', elements, earlierReplica(EU))]], START - HOUR);
    clock.advance(SETTLE_MS + 1);

    const report = await eu.antiEntropy.pass();
    expect(report).toMatchObject({ changed: 0, swept: 1, failed: 0 });
    const compared = await pumpInbox(us); // the digest: us lacks the document, pulls it
    expect(compared.failures).toEqual([]);
    expect(us.calls.diverged).toEqual([[1, EU]]);
    const answered = await pumpInbox(eu); // the pull: eu answers with a reference
    expect(answered.messages.map((m) => m.kind)).toEqual(['pull']);
    const fetched = await pumpInbox(us); // the reference: us fetches, checks and merges
    expect(fetched.failures).toEqual([]);
    const [reference] = fetched.messages as StateReference[];
    expect(reference).toMatchObject({ kind: 'reference', origin: EU, document: 'roster', bucket: eu.bucket });
    expect(reference?.key).toMatch(/^sync\//);
    expect(reference?.bytes).toBeGreaterThan(MAX_MESSAGE);

    const object = await eu.s3.send(new GetObjectCommand({ Bucket: eu.bucket, Key: reference?.key }));
    const body = (await object.Body?.transformToString('utf8')) ?? '';
    expect(object.ContentLength).toBe(reference?.bytes);
    expect(createHash('sha256').update(body).digest('hex')).toBe(reference?.sha256);
    const listed = await eu.s3.send(new ListObjectsV2Command({ Bucket: eu.bucket, Prefix: 'sync/' }));
    expect(listed.KeyCount).toBe(1);

    // Merged in several transactions, each within DynamoDB's 100 actions; the peer now holds the same state.
    const transactions = us.requests.transactions();
    expect(transactions.length).toBeGreaterThan(1);
    for (const t of transactions) expect(t.TransactItems?.length).toBeLessThanOrEqual(100);
    expect(await storedDigest(us, 'roster')).toBe(await storedDigest(eu, 'roster'));
    expect(encodeDocument(await us.replica.read('roster'))).toBe(
      encodeDocument(await eu.replica.read('roster')),
    );
    expect(await drainQueue(us.sqs, us.deadLetterUrl)).toEqual([]);
  });

  it('repairs a change whose delta was lost (saved, then the publish failed): the sweep pulls it at once, the first pass settleMs after it finds it equal', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock);
    await eu.replica.update('counters', { kind: 'increment', field: 'visits', by: 2 });
    await pumpInbox(us);
    expect(await storedDigest(us, 'counters')).toBe(await storedDigest(eu, 'counters'));

    clock.advance(5_000);
    eu.failDeltas = true;
    const changedAt = clock.now();
    await eu.replica.update('counters', { kind: 'increment', field: 'visits', by: 5 });
    eu.failDeltas = false;
    expect(eu.calls.publishFailed).toBe(1);
    expect(await drainQueue(us.sqs, us.inboxUrl)).toEqual([]); // nothing reached the peer

    // A pass before settleMs: the change is not yet announced as changed, and the peer does not count the
    // document as diverged (it is not quiet); the sweep's entry is compared anyway, so it is pulled.
    clock.advance(SETTLE_MS / 2);
    const early = await eu.antiEntropy.pass();
    expect(early.changed).toBe(0);
    const unsettled = await pumpInbox(us);
    expect(unsettled.messages.map((m) => m.kind)).toEqual(['digests']);
    expect(us.calls.diverged).toEqual([[0, EU]]);
    expect((await pumpInbox(eu)).messages.map((m) => m.kind)).toEqual(['pull']);
    const merged = await pumpInbox(us);
    expect(merged.messages.map((m) => m.kind)).toEqual(['state']);
    expect(merged.failures).toEqual([]);

    // The first pass at least settleMs after the change announces it as changed: the peer finds it equal.
    clock.advance(changedAt + SETTLE_MS - clock.now());
    const settled = await eu.antiEntropy.pass();
    expect(settled.changed).toBe(1);
    expect((await pumpInbox(us)).messages.map((m) => m.kind)).toEqual(['digests']);
    expect(us.calls.diverged.at(-1)).toEqual([0, EU]);
    expect(await pumpInbox(eu)).toMatchObject({ messages: [] });

    expect(await storedDigest(us, 'counters')).toBe(await storedDigest(eu, 'counters'));
    expect(encodeDocument(await us.replica.read('counters'))).toBe(
      encodeDocument(await eu.replica.read('counters')),
    );
  });

  it('migrates a document the previous release stored as one item, even when its first change fills a transaction', async () => {
    const clock = testClock(START);
    const [eu] = await world(clock);
    // The previous release's item: a set of 97 elements. Its first change writes 98 element parts and the
    // set's context: with the head and the old item's deletion, 101 actions, one more than DynamoDB allows.
    const replica = earlierReplica(EU);
    const old = setDocument(
      'members',
      Array.from({ length: 97 }, (_, i) => `m-${i}`),
      replica,
    );
    const legacyKey = { pk: { S: 'doc#old' }, sk: { S: 'crdt' } };
    await eu.dynamodb.send(
      new PutItemCommand({
        TableName: eu.tableName,
        Item: {
          ...legacyKey,
          version: { N: '3' },
          state: { S: encodeDocument(old) },
          clock: { S: JSON.stringify([START - HOUR, 0, replica]) },
        },
      }),
    );
    eu.requests.clear();
    await eu.replica.update('old', { kind: 'add', field: 'members', element: 'first' });
    await eu.replica.update('old', { kind: 'add', field: 'members', element: 'second' });
    const transactions = eu.requests.transactions();
    for (const t of transactions) expect(t.TransactItems?.length).toBeLessThanOrEqual(100);
    const deleted = transactions
      .flatMap((t) => t.TransactItems ?? [])
      .filter((a) => a.Delete?.Key?.sk?.S === 'crdt');
    expect(deleted).toHaveLength(1);
    const gone = await eu.dynamodb.send(new GetItemCommand({ TableName: eu.tableName, Key: legacyKey }));
    expect(gone.Item).toBeUndefined();
    const [set] = (await eu.replica.read('old')).get('members') ?? [];
    expect(set?.crdt.type === 'orset' && set.crdt.state.entries.length).toBe(99);
  });

  it('compares a digest message that names a document twice (BatchGetItem refuses a key named twice)', async () => {
    const clock = testClock(START);
    const [eu, us] = await world(clock);
    await eu.replica.update('twice', { kind: 'increment', field: 'hits', by: 1 });
    await drainQueue(us.sqs, us.inboxUrl);
    clock.advance(SETTLE_MS + 1);
    const entry = {
      document: 'twice',
      digest: (await storedDigest(eu, 'twice')) as string,
      changedAt: START,
    };
    const message: DigestMessage = {
      kind: 'digests',
      origin: EU,
      hlc: tick(undefined, eu.replica.identity.replica, clock.now()),
      entries: [entry, entry],
    };
    const result = await us.antiEntropy.compare(message); // before: a ValidationException
    expect(result.diverged).toBeGreaterThan(0);
    const pull = us.published.find((m) => m.kind === 'pull');
    expect(pull?.kind === 'pull' && pull.documents).toContain('twice');
  });

  it('keeps a line of writers that lost a race: each turn after the last, a new line once served or idle 30 s', async () => {
    const clock = testClock(START);
    const [eu] = await world(clock);
    await eu.replica.update('hot', { kind: 'increment', field: 'n', by: 1 }); // version 1
    // Three writers read version 1 and lost to version 2: they are to commit versions 3, 4 and 5.
    const turns = [
      await eu.store.queue('hot', 1),
      await eu.store.queue('hot', 1),
      await eu.store.queue('hot', 1),
    ];
    expect(turns).toEqual([3, 4, 5]);
    // A writer that read version 3 lost to version 4: the line still runs to 5, so its turn is 6.
    expect(await eu.store.queue('hot', 3)).toBe(6);
    // One that read version 6 lost to 7: everyone before was served, so it starts a new line, first in it.
    expect(await eu.store.queue('hot', 6)).toBe(8);
    expect(await eu.store.queue('hot', 6)).toBe(9);
    // A line nobody joined for LINE_IDLE_MS is still joined; one idle longer is over (writers gave up).
    clock.advance(LINE_IDLE_MS);
    expect(await eu.store.queue('hot', 2)).toBe(10);
    clock.advance(LINE_IDLE_MS + 1);
    expect(await eu.store.queue('hot', 2)).toBe(4);

    const line = await eu.dynamodb.send(
      new GetItemCommand({ TableName: eu.tableName, Key: { pk: { S: 'doc#hot' }, sk: { S: 'q' } } }),
    );
    expect(line.Item?.end?.N).toBe('4');
    expect(line.Item?.lastAt?.N).toBe(String(clock.now()));
    expect(Number(line.Item?.expiresAt?.N)).toBe(Math.ceil(clock.now() / 1000) + 3600); // the table's TTL
    // The line is no part of the document: a whole read (a Query of its partition) and the index skip it.
    const whole = await eu.store.load('hot');
    expect(whole?.version).toBe(1);
    expect([...(whole?.parts?.keys() ?? [])]).toEqual([variantPartKey('n', 'pn')]);
    expect(await eu.store.documents()).toEqual(['hot']);
  });
});
