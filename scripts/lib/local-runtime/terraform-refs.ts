/**
 * Reading a synthesized stack (`cdk.tf.json`) beside its applied state (`terraform.<stack>.tfstate`): the
 * resources of one type, and `${type.name.attr}` references resolved through the state's attribute values or
 * the configuration's literals. Pure: the parsed JSON goes in.
 */

/** A JSON value as read from a file. */
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };
export type JsonObject = { readonly [key: string]: Json };

/** A resource of the configuration: its address parts and its block as synthesized. */
export interface ConfigResource {
  readonly type: string;
  readonly name: string;
  readonly block: JsonObject;
}

/** A `${type.name.attr}` reference. */
export interface Reference {
  readonly type: string;
  readonly name: string;
  readonly attribute: string;
}

/** What is wrong with a stack's files: names the resource and field, never a value. */
export class DiscoveryError extends Error {
  constructor(address: string, problem: string) {
    super(`${address}: ${problem}`);
    this.name = 'DiscoveryError';
  }
}

export const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An own property of a JSON object (never through the prototype: `__proto__` is a valid key). */
export function own(object: JsonObject | undefined, key: string): Json | undefined {
  return object && Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;
}

/** A reference spanning a whole string (`${aws_sqs_queue.Inbox_1234.arn}`), else undefined. */
export function wholeReference(value: unknown): Reference | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^\$\{(data\.)?([A-Za-z0-9_]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\}$/.exec(value);
  if (!match) return undefined;
  return { type: `${match[1] ?? ''}${match[2]}`, name: match[3] as string, attribute: match[4] as string };
}

const EMBEDDED = /\$\{(data\.)?([A-Za-z0-9_]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\}/g;

/** Attribute values of the state's resource instances, by `type.name` (data sources as `data.type.name`). */
export type StateIndex = ReadonlyMap<string, JsonObject>;

/**
 * Indexes Terraform's local state (`resources[].{mode,type,name,instances[].attributes}`): the first
 * instance's attributes of every resource (the synthesized stacks use neither `count` nor `for_each`).
 */
export function indexState(state: unknown): StateIndex {
  const index = new Map<string, JsonObject>();
  if (state === undefined) return index;
  if (!isObject(state)) throw new DiscoveryError('state', 'expected Terraform state (a JSON object)');
  const resources = own(state, 'resources') ?? [];
  if (!Array.isArray(resources)) throw new DiscoveryError('state', 'resources: expected an array');
  for (const resource of resources as readonly Json[]) {
    if (!isObject(resource)) continue;
    const type = own(resource, 'type');
    const name = own(resource, 'name');
    const instances = own(resource, 'instances');
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(instances)) continue;
    const first = (instances as readonly Json[])[0];
    const attributes = isObject(first) ? own(first, 'attributes') : undefined;
    if (!isObject(attributes)) continue;
    const key = own(resource, 'mode') === 'data' ? `data.${type}.${name}` : `${type}.${name}`;
    index.set(key, attributes);
  }
  return index;
}

/** A stack's configuration and state, read together. */
export class StackModel {
  /** The whole configuration (providers, resources, outputs). */ private readonly resources: JsonObject;
  private readonly state: StateIndex;

  constructor(config: unknown, state: unknown) {
    if (!isObject(config)) throw new DiscoveryError('cdk.tf.json', 'expected a JSON object');
    const resources = own(config, 'resource') ?? {};
    if (!isObject(resources)) throw new DiscoveryError('cdk.tf.json', 'resource: expected an object');
    this.resources = resources;
    this.config = config;
    this.state = indexState(state);
  }

  readonly config: JsonObject;

  /** Every resource of `type` in the configuration, in the order synthesized. */
  ofType(type: string): ConfigResource[] {
    const blocks = own(this.resources, type);
    if (blocks === undefined) return [];
    if (!isObject(blocks)) throw new DiscoveryError(type, 'expected an object of resources');
    return Object.entries(blocks).map(([name, block]) => {
      if (!isObject(block)) throw new DiscoveryError(`${type}.${name}`, 'expected an object');
      return { type, name, block };
    });
  }

  /** One resource of the configuration, or undefined. */
  find(type: string, name: string): ConfigResource | undefined {
    const blocks = own(this.resources, type);
    const block = isObject(blocks) ? own(blocks, name) : undefined;
    return isObject(block) ? { type, name, block } : undefined;
  }

  /** The applied attributes of a resource (from the state), or undefined when it has none. */
  applied(type: string, name: string): JsonObject | undefined {
    return this.state.get(`${type}.${name}`);
  }

  /** Whether the stack has been applied at all (its state names any resource). */
  get hasState(): boolean {
    return this.state.size > 0;
  }

  /**
   * An attribute's value: the state's when applied, else the configuration's when it is a literal (a string
   * still holding `${...}` is resolved in turn); undefined when neither knows it.
   */
  attribute(
    type: string,
    name: string,
    attribute: string,
    seen: ReadonlySet<string> = new Set(),
  ): Json | undefined {
    const applied = own(this.applied(type, name), attribute);
    if (applied !== undefined && applied !== null && applied !== '') return applied;
    const block = this.find(type, name)?.block;
    const literal = own(block, attribute);
    if (literal === undefined) return undefined;
    return this.resolve(literal, new Set([...seen, `${type}.${name}.${attribute}`]));
  }

  /**
   * A configuration value with its references resolved: a whole-string reference answers the referenced
   * value (of any JSON type), references inside a longer string are substituted, objects and arrays are
   * resolved member by member. Undefined when a reference cannot be resolved.
   */
  resolve(value: Json, seen: ReadonlySet<string> = new Set()): Json | undefined {
    if (typeof value === 'string') {
      const whole = wholeReference(value);
      if (whole) return this.referenced(whole, seen);
      let unresolved = false;
      const text = value.replace(
        EMBEDDED,
        (_match, data: string | undefined, type: string, name: string, attr: string) => {
          const found = this.referenced({ type: `${data ?? ''}${type}`, name, attribute: attr }, seen);
          if (typeof found === 'string' || typeof found === 'number' || typeof found === 'boolean')
            return String(found);
          unresolved = true;
          return '';
        },
      );
      return unresolved ? undefined : text;
    }
    if (Array.isArray(value)) {
      const items = (value as readonly Json[]).map((item) => this.resolve(item, seen));
      return items.some((item) => item === undefined) ? undefined : (items as Json[]);
    }
    if (isObject(value)) {
      const entries = Object.entries(value).map(([key, item]) => [key, this.resolve(item, seen)] as const);
      if (entries.some(([, item]) => item === undefined)) return undefined;
      return Object.fromEntries(entries) as JsonObject;
    }
    return value;
  }

  private referenced(reference: Reference, seen: ReadonlySet<string>): Json | undefined {
    const key = `${reference.type}.${reference.name}.${reference.attribute}`;
    if (seen.has(key)) return undefined;
    if (reference.type.startsWith('data.')) {
      return own(this.state.get(`${reference.type}.${reference.name}`), reference.attribute);
    }
    return this.attribute(reference.type, reference.name, reference.attribute, seen);
  }
}
