import {
  BatchGetItemCommand,
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItemsCommandInput,
} from '@aws-sdk/client-dynamodb';

type Item = Record<string, AttributeValue>;

export interface MemoryDynamodbOptions {
  /** Milliseconds a request of this command takes (it applies halfway). Default: none (no timer at all). */
  readonly latencyMs?: (command: string) => number;
  /** The table's creation time (DescribeTable). Default: 0. */
  readonly createdAt?: number;
}

const keyOf = (item: Item): string => `${item.pk?.S}\u0000${item.sk?.S}`;

/** A condition the sync store writes with, checked against the item it guards. */
function holds(condition: string | undefined, values: Item | undefined, current: Item | undefined): boolean {
  if (condition === undefined) return true;
  if (condition === 'attribute_not_exists(pk)') return current === undefined;
  if (condition === 'version = :expected') return current?.version?.N === values?.[':expected']?.N;
  // A document's line of writers (`DynamodbDocumentStore.queue`): fresh, or idle.
  const lastAt = current?.lastAt?.N === undefined ? undefined : Number(current.lastAt.N);
  const idleSince = Number(values?.[':idleSince']?.N);
  if (condition === 'attribute_not_exists(#last) OR #last >= :idleSince')
    return lastAt === undefined || lastAt >= idleSince;
  if (condition === '#last < :idleSince') return lastAt !== undefined && lastAt < idleSince;
  throw new Error(`MemoryDynamodb: condition not supported: ${condition}`);
}

/**
 * A DynamoDB table in memory, as far as `DynamodbDocumentStore` uses one: BatchGetItem, GetItem,
 * TransactGetItems, Query on the key (whole partition or a sort-key prefix; one page), DescribeTable and
 * TransactWriteItems with the store's two conditions, all or nothing, cancelled with per-action reasons as
 * DynamoDB does, and DynamoDB's 100 actions a transaction (`enforceLimits`); the line of writers' UpdateItem
 * and PutItem (`queue`). Counts requests per command
 * and keeps every transaction's input. Writes apply at once (no transaction is ever in flight, so a
 * transactional read never conflicts with one).
 */
export class MemoryDynamodb {
  readonly items = new Map<string, Item>();
  readonly requests = new Map<string, number>();
  readonly transactions: TransactWriteItemsCommandInput[] = [];
  /** Keep transactions' inputs (off for bulk loads). */
  record = true;
  /** DynamoDB's limits on a transaction (off for bulk loads). */
  enforceLimits = true;

  constructor(private readonly options: MemoryDynamodbOptions = {}) {}

  client(): DynamoDBClient {
    return { send: (command: unknown) => this.send(command) } as unknown as DynamoDBClient;
  }

  count(command: string): number {
    return this.requests.get(command) ?? 0;
  }

  private async send(command: unknown): Promise<unknown> {
    const name = (command as object).constructor.name;
    this.requests.set(name, this.count(name) + 1);
    const latency = this.options.latencyMs?.(name) ?? 0;
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency / 2));
    const answer = this.apply(command);
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency / 2));
    return answer;
  }

  private apply(command: unknown): unknown {
    if (command instanceof DescribeTableCommand)
      return { Table: { CreationDateTime: new Date(this.options.createdAt ?? 0) } };
    if (command instanceof GetItemCommand) return { Item: this.items.get(keyOf(command.input.Key as Item)) };
    if (command instanceof BatchGetItemCommand) {
      const responses: Record<string, Item[]> = {};
      for (const [table, request] of Object.entries(command.input.RequestItems ?? {})) {
        const keys = (request.Keys ?? []).map((key) => keyOf(key as Item));
        if (new Set(keys).size !== keys.length)
          throw validation('Provided list of item keys contains duplicates');
        responses[table] = keys
          .map((key) => this.items.get(key))
          .filter((item): item is Item => item !== undefined);
      }
      return { Responses: responses, UnprocessedKeys: {} };
    }
    if (command instanceof TransactGetItemsCommand) {
      const actions = command.input.TransactItems ?? [];
      if (this.enforceLimits && actions.length > 100)
        throw validation('Member must have length less than or equal to 100');
      return {
        Responses: actions.map((action) => ({ Item: this.items.get(keyOf(action.Get?.Key as Item)) })),
      };
    }
    if (command instanceof QueryCommand) {
      const values = command.input.ExpressionAttributeValues ?? {};
      const pk = values[':pk']?.S;
      const prefix = values[':prefix']?.S ?? '';
      const found = [...this.items.values()]
        .filter((item) => item.pk?.S === pk && (item.sk?.S ?? '').startsWith(prefix))
        .sort((a, b) => ((a.sk?.S ?? '') < (b.sk?.S ?? '') ? -1 : 1));
      return { Items: found };
    }
    if (command instanceof TransactWriteItemsCommand) return this.transact(command.input);
    if (command instanceof PutItemCommand) {
      const { Item, ConditionExpression, ExpressionAttributeValues } = command.input;
      const key = keyOf(Item as Item);
      if (!holds(ConditionExpression, ExpressionAttributeValues, this.items.get(key)))
        throw conditionFailed();
      this.items.set(key, Item as Item);
      return {};
    }
    if (command instanceof UpdateItemCommand) return this.joinLine(command);
    throw new Error(`MemoryDynamodb: ${(command as object).constructor.name} is not supported`);
  }

  /** The one UpdateItem the store sends: a ticket from a document's line of writers. */
  private joinLine(command: UpdateItemCommand) {
    const { Key, UpdateExpression, ConditionExpression, ExpressionAttributeValues: values } = command.input;
    if (UpdateExpression !== LINE_UPDATE)
      throw new Error(`MemoryDynamodb: update not supported: ${UpdateExpression}`);
    const key = keyOf(Key as Item);
    const current = this.items.get(key);
    if (!holds(ConditionExpression, values, current)) throw conditionFailed();
    const next: Item = {
      ...(current ?? (Key as Item)),
      tickets: { N: String(Number(current?.tickets?.N ?? 0) + Number(values?.[':one']?.N)) },
      startVersion: current?.startVersion ?? (values?.[':start'] as AttributeValue),
      lastAt: values?.[':last'] as AttributeValue,
      expiresAt: values?.[':expires'] as AttributeValue,
    };
    this.items.set(key, next);
    return { Attributes: next };
  }

  private transact(input: TransactWriteItemsCommandInput) {
    const actions = input.TransactItems ?? [];
    if (this.enforceLimits && actions.length > 100)
      throw validation('Member must have length less than or equal to 100');
    if (this.record) this.transactions.push(input);
    const reasons = actions.map((action) => {
      const put = action.Put;
      const del = action.Delete;
      const key = put?.Item ? keyOf(put.Item) : keyOf(del?.Key as Item);
      const condition = put?.ConditionExpression ?? del?.ConditionExpression;
      const values = put?.ExpressionAttributeValues ?? del?.ExpressionAttributeValues;
      return holds(condition, values, this.items.get(key)) ? 'None' : 'ConditionalCheckFailed';
    });
    if (reasons.some((code) => code !== 'None'))
      throw Object.assign(new Error('Transaction cancelled'), {
        name: 'TransactionCanceledException',
        CancellationReasons: reasons.map((Code) => ({ Code })),
      });
    for (const action of actions) {
      if (action.Put?.Item) this.items.set(keyOf(action.Put.Item), action.Put.Item);
      else if (action.Delete?.Key) this.items.delete(keyOf(action.Delete.Key));
    }
    return {};
  }
}

const LINE_UPDATE =
  'ADD #tickets :one SET #start = if_not_exists(#start, :start), #last = :last, #expires = :expires';

const conditionFailed = () =>
  Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });

const validation = (message: string) => Object.assign(new Error(message), { name: 'ValidationException' });
