import {
  BatchGetItemCommand,
  DescribeTableCommand,
  GetItemCommand,
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
  throw new Error(`MemoryDynamodb: condition not supported: ${condition}`);
}

/**
 * A DynamoDB table in memory, as far as `DynamodbDocumentStore` uses one: BatchGetItem, GetItem,
 * TransactGetItems, Query on the key (whole partition or a sort-key prefix; one page), DescribeTable and
 * TransactWriteItems with the store's two conditions, all or nothing, cancelled with per-action reasons as
 * DynamoDB does, and DynamoDB's 100 actions a transaction (`enforceLimits`); the line of writers' two
 * UpdateItems (`queue`). Counts requests per command
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
    if (command instanceof UpdateItemCommand) return this.joinLine(command);
    throw new Error(`MemoryDynamodb: ${(command as object).constructor.name} is not supported`);
  }

  /**
   * The UpdateItems the store sends: joining a document's line of writers, or starting one. Attribute
   * names are resolved through `ExpressionAttributeNames`; updated attributes are returned only when
   * `ReturnValues` asks for them (`UPDATED_NEW`).
   */
  private joinLine(command: UpdateItemCommand) {
    const { Key, UpdateExpression, ConditionExpression, ReturnValues } = command.input;
    const names = command.input.ExpressionAttributeNames ?? {};
    const values = command.input.ExpressionAttributeValues ?? {};
    const key = keyOf(Key as Item);
    const current = this.items.get(key);
    const number = (alias: string) => {
      const value = current?.[names[alias] ?? alias]?.N;
      return value === undefined ? undefined : Number(value);
    };
    const value = (name: string) => Number(values[name]?.N);
    const end = number('#end');
    const last = number('#last');
    const holds =
      ConditionExpression === '#end > :lost AND #last >= :idleSince'
        ? end !== undefined && end > value(':lost') && last !== undefined && last >= value(':idleSince')
        : ConditionExpression === 'attribute_not_exists(#end) OR #end <= :lost OR #last < :idleSince'
          ? end === undefined || end <= value(':lost') || (last !== undefined && last < value(':idleSince'))
          : unsupported(`condition ${ConditionExpression}`);
    if (!holds) throw conditionFailed();
    const suffix = ', #last = :now, #expires = :expires';
    const next =
      UpdateExpression === `SET #end = #end + :one${suffix}`
        ? (end ?? NaN) + value(':one')
        : UpdateExpression === `SET #end = :first${suffix}`
          ? value(':first')
          : unsupported(`update ${UpdateExpression}`);
    const updated: Item = {
      [names['#end'] ?? '#end']: { N: String(next) },
      [names['#last'] ?? '#last']: values[':now'] as AttributeValue,
      [names['#expires'] ?? '#expires']: values[':expires'] as AttributeValue,
    };
    this.items.set(key, { ...(current ?? (Key as Item)), ...updated });
    return ReturnValues === 'UPDATED_NEW' ? { Attributes: updated } : {};
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

const unsupported = (what: string): never => {
  throw new Error(`MemoryDynamodb: ${what} is not supported`);
};

const conditionFailed = () =>
  Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });

const validation = (message: string) => Object.assign(new Error(message), { name: 'ValidationException' });
