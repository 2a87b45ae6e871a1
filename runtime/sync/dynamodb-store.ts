import { createHash } from 'node:crypto';
import {
  BatchGetItemCommand,
  DescribeTableCommand,
  QueryCommand,
  ScanCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  GetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { CrdtDecodeError, decodeDocument, GROUP, hlcFromWire, isCount, MAX_WALL_MS } from '../crdt';
import { PermanentError, RetryableError } from '../lib/failures';
import type { Commit } from './commit-plan';
import { documentFromParts, parsePartKey, VARIANT_TAGS, variantPartKey, type DocumentScope } from './parts';
import type { DocumentStore, StoredDocument } from './replica';

const PREFIX = 'doc#';
const HEAD = 'h';
/** The previous release's one item per document. */
const LEGACY = 'crdt';
/** How long a process trusts the table's creation time it read. */
const CREATION_RECHECK_MS = 5 * 60 * 1000;
/** Partitions of the `sync-documents` index (its hash key), so no index partition runs hot. */
export const DOCUMENT_SHARDS = 64;
/** A document's line of writers that lost a race (see `queue`). */
const LINE = 'q';
/** A line nobody joined for this long is over: longer than a writer waits for its turn (replica.ts). */
export const LINE_IDLE_MS = 30_000;
const LINE_JOIN = 'SET #end = #end + :one';
const LINE_START = 'SET #end = :first';
/** How long a line's item outlives its last writer before the table's TTL deletes it. */
const LINE_TTL_SEC = 3_600;
/** Reads of a document before giving up on one that changes under every read. */
const STABLE_READ_ATTEMPTS = 5;

type Item = Record<string, AttributeValue>;
const BATCH_GET_KEYS = 100;
/** DynamoDB's most actions in one TransactWriteItems (more is a ValidationException). */
const MAX_TRANSACTION_ACTIONS = 100;

/** A stored item that does not decode: no message can merge into it until an operator repairs it. */
export class StoredDocumentError extends PermanentError {
  constructor(reason: string) {
    super('stored-document-unreadable', `the stored document does not decode: ${reason}`);
    this.name = 'StoredDocumentError';
  }
}

const hashId = (text: string): string => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/** The sort key of a part: hashes keep it within DynamoDB's 1,024 bytes whatever the field and element. */
function sortKeyOf(partKey: string): string {
  const { kind, field, rest } = parsePartKey(partKey);
  return kind === 'v' ? `v#${hashId(field)}#${rest}` : `e#${hashId(field)}#${hashId(rest)}`;
}

/** The index partition a document's head is listed under. */
export const shardOf = (document: string): string =>
  `s${createHash('sha256').update(document).digest().readUInt32BE(0) % DOCUMENT_SHARDS}`;

export const documentKey = (document: string) => ({ pk: { S: `${PREFIX}${document}` } });
export const documentOfKey = (pk: string): string | undefined =>
  pk.startsWith(PREFIX) ? pk.slice(PREFIX.length) : undefined;

/** `heard` as stored: `{"<peer region>": wallMs}`. */
export function heardFromItem(text: string | undefined): ReadonlyMap<string, number> | undefined {
  if (text === undefined) return undefined;
  const value = JSON.parse(text) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CrdtDecodeError('heard', 'expected an object of milliseconds by region');
  const heard = new Map<string, number>();
  for (const [region, at] of Object.entries(value)) {
    if (!GROUP.test(region) || !isCount(at, MAX_WALL_MS))
      throw new CrdtDecodeError('heard', 'expected an object of milliseconds by region');
    heard.set(region, at);
  }
  return heard;
}

const optionalCount = (value: string | undefined, field: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!isCount(n, Number.MAX_SAFE_INTEGER))
    throw new CrdtDecodeError(field, 'expected a non-negative integer');
  return n;
};

/** The head's bookkeeping (everything but the state). */
function headFromItem(item: Record<string, AttributeValue>) {
  const version = Number(item.version?.N ?? 0);
  if (!Number.isSafeInteger(version) || version < 1)
    throw new CrdtDecodeError('version', 'expected a positive integer');
  const regressedAt = optionalCount(item.regressedAt?.N, 'regressedAt');
  if (regressedAt !== undefined && regressedAt > MAX_WALL_MS)
    throw new CrdtDecodeError('regressedAt', 'expected milliseconds');
  const digest = item.digest?.S;
  if (digest !== undefined && !/^[0-9a-f]{16}$/.test(digest))
    throw new CrdtDecodeError('digest', 'expected 16 hex digits');
  return {
    version,
    clock: item.clock?.S ? hlcFromWire(JSON.parse(item.clock.S) as unknown, 'clock') : undefined,
    heard: heardFromItem(item.heard?.S),
    regressedAt,
    bytes: optionalCount(item.bytes?.N, 'bytes'),
    digest,
    changedAt: optionalCount(item.changedAt?.N, 'changedAt'),
  };
}

function decoding<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof CrdtDecodeError) throw new StoredDocumentError(`${error.path}: ${error.reason}`);
    if (error instanceof SyntaxError) throw new StoredDocumentError('clock or heard: not valid JSON');
    throw error;
  }
}

/** Cancellation reasons of a lost race (read again, after a backoff): another writer, or throttling. */
const RACE_CODES = new Set(['ConditionalCheckFailed', 'TransactionConflict', 'ThrottlingError']);

const isConflict = (error: unknown): boolean => {
  const name = (error as Error).name;
  if (
    name === 'ConditionalCheckFailedException' ||
    name === 'TransactionConflictException' ||
    // The SDK's retry of a commit still running: its outcome is unknown, so read again.
    name === 'TransactionInProgressException'
  )
    return true;
  if (name !== 'TransactionCanceledException') return false;
  const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
  // Without reasons (some emulators), a cancelled transaction of ours is a lost race: read again.
  return reasons.length === 0 || reasons.some((reason) => RACE_CODES.has(reason.Code ?? ''));
};

/** A cancelled transaction that no other writer's commit cancelled: only throttled. */
const lostToThrottling = (error: unknown): boolean => {
  const codes = ((error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? []).map(
    (reason) => reason.Code,
  );
  return (
    codes.includes('ThrottlingError') &&
    !codes.some((code) => code === 'ConditionalCheckFailed' || code === 'TransactionConflict')
  );
};

/**
 * Documents in the region's state table, one item per part (`pk` = `doc#<document>`): a head (`sk` = `h`:
 * version, clock, the peers heard, when the state went back, size, digest, when it changed, and the
 * `sync-documents` index keys) and one item per field variant (`v#<field hash>#<type>`) and per set
 * element (`e#<field hash>#<element hash>`), each holding its key and its text. A change is one
 * transaction: the head, conditional on the version read, and the parts it changes. The previous release's
 * one item per document (`sk` = `crdt`) is read until a change merges it into the parts and deletes it.
 * Beside them, the document's line of writers that lost a race (`sk` = `q`, see `queue`), which is no part.
 */
export class DynamodbDocumentStore implements DocumentStore {
  private created: { readonly at: number; readonly checkedMs: number } | undefined;
  /** Documents whose last write lost to throttling rather than to another writer (see `queue`). */
  private readonly throttled = new Set<string>();

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
    private readonly indexName = 'sync-documents',
  ) {}

  /**
   * When the table was created, read every few minutes (a restore replaces the table). When it cannot be
   * read, it is taken to be now, which only holds folding back.
   */
  async tableCreatedAt(): Promise<number> {
    const nowMs = this.now();
    if (this.created && nowMs - this.created.checkedMs < CREATION_RECHECK_MS) return this.created.at;
    let at: number;
    try {
      const { Table } = await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      at = Table?.CreationDateTime?.getTime() ?? nowMs;
    } catch {
      at = nowMs;
    }
    this.created = { at, checkedMs: nowMs };
    return at;
  }

  /**
   * A consistent read of the parts `scope` names (all without one): one `TransactGetItems` (a snapshot)
   * when it names at most 100 items, else the head read before and after the parts (a multi-item read is
   * only read-committed: a change committed in between would mix two versions), again until they agree.
   */
  async load(document: string, scope?: DocumentScope): Promise<StoredDocument | undefined> {
    for (let round = 1; round <= STABLE_READ_ATTEMPTS; round++) {
      const items = await this.snapshot(document, scope);
      if (items) return this.stored(items);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** round));
    }
    throw new RetryableError('document-busy', 'the document changed during every read of it; retried later');
  }

  private stored(items: ReadonlyArray<Record<string, AttributeValue>>): StoredDocument | undefined {
    let head: Record<string, AttributeValue> | undefined;
    let legacy: Record<string, AttributeValue> | undefined;
    const parts: Array<[string, string]> = [];
    for (const item of items) {
      const sk = item.sk?.S;
      if (sk === HEAD) head = item;
      else if (sk === LEGACY) legacy = item;
      else if (sk === LINE) continue;
      else if (item.part?.S !== undefined && item.t?.S !== undefined) parts.push([item.part.S, item.t.S]);
      else if (item.sk?.S?.startsWith('v#') || item.sk?.S?.startsWith('e#'))
        throw new StoredDocumentError('part: an item without its key or text');
    }
    if (!head && !legacy) return undefined;
    return decoding(() => {
      const stored: StoredDocument = head
        ? { ...headFromItem(head), state: documentFromParts(parts), parts: new Map(parts) }
        : { version: 0, state: new Map() };
      if (!legacy) return stored;
      const old = headFromItem(legacy);
      return {
        ...stored,
        legacy: {
          state: decodeDocument(legacy.state?.S),
          clock: old.clock,
          heard: old.heard,
          regressedAt: old.regressedAt,
        },
      };
    });
  }

  async save(
    document: string,
    commit: Commit,
    options?: { readonly dropLegacy?: boolean },
  ): Promise<boolean> {
    const { head, expected } = commit;
    const key = documentKey(document);
    const items: TransactWriteItem[] = [
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...key,
            sk: { S: HEAD },
            version: { N: String(head.version) },
            bytes: { N: String(head.bytes) },
            digest: { S: head.digest },
            changedAt: { N: String(head.changedAt ?? 0) },
            syncShard: { S: shardOf(document) },
            ...(head.clock
              ? { clock: { S: JSON.stringify([head.clock.wallMs, head.clock.logical, head.clock.replica]) } }
              : {}),
            ...(head.heard?.size ? { heard: { S: JSON.stringify(Object.fromEntries(head.heard)) } } : {}),
            ...(head.regressedAt === undefined ? {} : { regressedAt: { N: String(head.regressedAt) } }),
          },
          ConditionExpression: expected === 0 ? 'attribute_not_exists(pk)' : 'version = :expected',
          ...(expected === 0 ? {} : { ExpressionAttributeValues: { ':expected': { N: String(expected) } } }),
        },
      },
      ...[...commit.puts].map(([part, text]) => ({
        Put: {
          TableName: this.tableName,
          Item: { ...key, sk: { S: sortKeyOf(part) }, part: { S: part }, t: { S: text } },
        },
      })),
      ...commit.deletes.map((part) => ({
        Delete: { TableName: this.tableName, Key: { ...key, sk: { S: sortKeyOf(part) } } },
      })),
    ];
    // A commit that fills a transaction (the head and 99 parts) leaves the previous release's item to the
    // next change, which reads it, merges it again (a no-op: the parts hold it) and deletes it.
    if (options?.dropLegacy && items.length < MAX_TRANSACTION_ACTIONS)
      items.push({ Delete: { TableName: this.tableName, Key: { ...key, sk: { S: LEGACY } } } });
    try {
      await this.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
      this.throttled.delete(document);
      return true;
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (lostToThrottling(error)) this.throttled.add(document);
      else this.throttled.delete(document);
      return false;
    }
  }

  /**
   * Joins the document's line (`sk` = `q`): `end`, the version its last writer is to commit. A writer that
   * read `seenVersion` lost to a commit of `seenVersion + 1` at least; while `end` is past that, writers are
   * still ahead of it and its turn is `end + 1`. Otherwise (the line was served, or nobody joined it for
   * `LINE_IDLE_MS`: writers gave up, the table went back) it starts a new line, first in it. Returns the
   * version of its turn; undefined when its write lost to throttling (a line would only add writes to the
   * throttled partition) or when it could neither join nor start a line.
   */
  async queue(document: string, seenVersion: number): Promise<number | undefined> {
    if (this.throttled.delete(document)) return undefined;
    const nowMs = this.now();
    const line = (update: string, condition: string, values: Item) =>
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { ...documentKey(document), sk: { S: LINE } },
        UpdateExpression: `${update}, #last = :now, #expires = :expires`,
        ConditionExpression: condition,
        ExpressionAttributeNames: { '#end': 'end', '#last': 'lastAt', '#expires': 'expiresAt' },
        ExpressionAttributeValues: {
          ...values,
          ':lost': { N: String(seenVersion + 1) },
          ':idleSince': { N: String(nowMs - LINE_IDLE_MS) },
          ':now': { N: String(nowMs) },
          ':expires': { N: String(Math.ceil(nowMs / 1000) + LINE_TTL_SEC) },
        },
        ReturnValues: 'UPDATED_NEW',
      });
    for (let round = 1; round <= 2; round++) {
      try {
        const joined = await this.client.send(
          line(LINE_JOIN, '#end > :lost AND #last >= :idleSince', { ':one': { N: '1' } }),
        );
        return Number(joined.Attributes?.end?.N);
      } catch (error) {
        if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      }
      try {
        const started = await this.client.send(
          line(LINE_START, 'attribute_not_exists(#end) OR #end <= :lost OR #last < :idleSince', {
            ':first': { N: String(seenVersion + 2) },
          }),
        );
        return Number(started.Attributes?.end?.N);
      } catch (error) {
        // Another writer started the new line first: join it.
        if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      }
    }
    return undefined;
  }

  /** Every document with a head, from the index (tests and tools). */
  async documents(): Promise<string[]> {
    const documents: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({ TableName: this.tableName, IndexName: this.indexName, ExclusiveStartKey: start }),
      );
      for (const item of page.Items ?? []) {
        const document = documentOfKey(item.pk?.S ?? '');
        if (document !== undefined) documents.push(document);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return documents.sort();
  }

  /** Every item of a document (consistent). */
  private async query(document: string, prefix?: string): Promise<Array<Record<string, AttributeValue>>> {
    const items: Array<Record<string, AttributeValue>> = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          KeyConditionExpression: prefix ? 'pk = :pk AND begins_with(sk, :prefix)' : 'pk = :pk',
          ExpressionAttributeValues: {
            ':pk': documentKey(document).pk,
            ...(prefix ? { ':prefix': { S: prefix } } : {}),
          },
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** The head and the parts a scope names: one batch read, plus a query per field whose every element is read. */
  /** The items of one version of the document, or undefined when a change came between the reads. */
  private async snapshot(document: string, scope: DocumentScope | undefined): Promise<Item[] | undefined> {
    // The previous release's item, until a change merged it (a migration in several steps keeps it to the last).
    const sortKeys = new Set<string>([HEAD, LEGACY]);
    const prefixes: string[] = [];
    for (const [field, elements] of scope ?? []) {
      for (const tag of VARIANT_TAGS) sortKeys.add(sortKeyOf(variantPartKey(field, tag)));
      if (elements === 'all') prefixes.push(`e#${hashId(field)}#`);
      else for (const element of elements) sortKeys.add(`e#${hashId(field)}#${hashId(element)}`);
    }
    const keys = [...sortKeys].map((sk) => ({ ...documentKey(document), sk: { S: sk } }));
    if (scope && prefixes.length === 0 && keys.length <= MAX_TRANSACTION_ACTIONS)
      return this.transactGet(keys);
    const before = await this.head(document);
    const batches: Array<Promise<Item[]>> = [];
    if (scope) {
      for (let i = 0; i < keys.length; i += BATCH_GET_KEYS)
        batches.push(this.batchGet(keys.slice(i, i + BATCH_GET_KEYS)));
      for (const prefix of prefixes) batches.push(this.query(document, prefix));
    } else batches.push(this.query(document));
    const items = (await Promise.all(batches)).flat();
    const after = await this.head(document);
    return before?.version?.N === after?.version?.N ? items : undefined;
  }

  private async head(document: string): Promise<Item | undefined> {
    const found = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { ...documentKey(document), sk: { S: HEAD } },
        ConsistentRead: true,
        ProjectionExpression: 'version',
      }),
    );
    return found.Item;
  }

  private async transactGet(keys: Item[]): Promise<Item[] | undefined> {
    try {
      const answer = await this.client.send(
        new TransactGetItemsCommand({
          TransactItems: keys.map((Key) => ({ Get: { TableName: this.tableName, Key } })),
        }),
      );
      return (answer.Responses ?? []).flatMap((response) => (response.Item ? [response.Item] : []));
    } catch (error) {
      // A write transaction on the same items was in flight: read again.
      if ((error as Error).name === 'TransactionCanceledException') return undefined;
      throw error;
    }
  }

  private async batchGet(
    keys: Array<Record<string, AttributeValue>>,
  ): Promise<Array<Record<string, AttributeValue>>> {
    const items: Array<Record<string, AttributeValue>> = [];
    let pending = keys;
    for (let round = 0; pending.length > 0; round++) {
      if (round > 0)
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 20 * 2 ** round) * Math.random()));
      if (round > 8) throw new Error('BatchGetItem kept leaving keys unprocessed');
      const answer = await this.client.send(
        new BatchGetItemCommand({
          RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
        }),
      );
      items.push(...(answer.Responses?.[this.tableName] ?? []));
      pending = (answer.UnprocessedKeys?.[this.tableName]?.Keys as typeof keys | undefined) ?? [];
    }
    return items;
  }
}
