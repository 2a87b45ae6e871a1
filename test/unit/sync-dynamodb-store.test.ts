import {
  GetItemCommand,
  QueryCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DynamodbDocumentStore, type Commit } from '../../runtime/sync';

type Item = Record<string, AttributeValue>;

const head = (version: number): Item => ({
  pk: { S: 'doc#d' },
  sk: { S: 'h' },
  version: { N: String(version) },
  bytes: { N: '0' },
  digest: { S: '0000000000000000' },
  changedAt: { N: '1' },
});

/** A client that answers each command with the next answer its handler gives, recording every command. */
function stubClient(answer: (command: object) => unknown) {
  const sent: object[] = [];
  const client = {
    send: async (command: object) => {
      sent.push(command);
      const result = answer(command);
      if (result instanceof Error) throw result;
      return result;
    },
  } as unknown as DynamoDBClient;
  return { client, sent };
}

const commit: Commit = {
  expected: 3,
  head: { version: 4, bytes: 10, digest: '0000000000000001', changedAt: 5 },
  puts: new Map([['v\u0000n\u0000pn', '{}']]),
  deletes: [],
};

describe('DynamodbDocumentStore reads', () => {
  it('reads a change’s parts as one snapshot: a single TransactGetItems', async () => {
    const { client, sent } = stubClient(() => ({ Responses: [{ Item: head(3) }, {}] }));
    const stored = await new DynamodbDocumentStore(client, 't').load('d', new Map([['n', []]]));
    expect(stored?.version).toBe(3);
    expect(sent.map((c) => c.constructor)).toEqual([TransactGetItemsCommand]);
  });

  it('reads a whole document again when a change committed between its head and its parts', async () => {
    const versions = [1, 2, 2, 2];
    const { client, sent } = stubClient((command) => {
      if (command instanceof GetItemCommand) return { Item: head(versions.shift() as number) };
      if (command instanceof QueryCommand) return { Items: [head(2)] };
      return new Error('unexpected command');
    });
    const stored = await new DynamodbDocumentStore(client, 't').load('d');
    expect(stored?.version).toBe(2);
    expect(sent.map((c) => c.constructor.name)).toEqual([
      'GetItemCommand',
      'QueryCommand',
      'GetItemCommand',
      'GetItemCommand',
      'QueryCommand',
      'GetItemCommand',
    ]);
  });

  it('gives up on a document that changes under every read with a transient error', async () => {
    let version = 0;
    const { client } = stubClient((command) =>
      command instanceof GetItemCommand ? { Item: head(++version) } : { Items: [] },
    );
    await expect(new DynamodbDocumentStore(client, 't').load('d')).rejects.toMatchObject({
      code: 'document-busy',
    });
  });
});

describe('DynamodbDocumentStore commits', () => {
  const cancelled = (code: string) =>
    Object.assign(new Error('cancelled'), {
      name: 'TransactionCanceledException',
      CancellationReasons: [{ Code: code }],
    });

  it.each(['ConditionalCheckFailed', 'TransactionConflict', 'ThrottlingError'])(
    'reports a race (%s) as a lost write, to be read again after a backoff',
    async (code) => {
      const { client } = stubClient(() => cancelled(code));
      await expect(new DynamodbDocumentStore(client, 't').save('d', commit)).resolves.toBe(false);
    },
  );

  it('throws what is not a race (a request DynamoDB refuses)', async () => {
    const { client } = stubClient(() =>
      Object.assign(new Error('too many'), { name: 'ValidationException' }),
    );
    await expect(new DynamodbDocumentStore(client, 't').save('d', commit)).rejects.toThrow('too many');
  });

  it('deletes the previous release’s item with a migration’s last commit, within 100 actions', async () => {
    const { client, sent } = stubClient(() => ({}));
    await new DynamodbDocumentStore(client, 't').save('d', commit, { dropLegacy: true });
    const items = (sent[0] as TransactWriteItemsCommand).input.TransactItems ?? [];
    expect(items[0]?.Put?.ConditionExpression).toBe('version = :expected');
    expect(items.at(-1)?.Delete?.Key).toEqual({ pk: { S: 'doc#d' }, sk: { S: 'crdt' } });
    expect(items.length).toBeLessThanOrEqual(100);
  });
});
