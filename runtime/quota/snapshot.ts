import { TextDecoder } from 'node:util';
import { PermanentError } from '../lib/failures';
import {
  AllocationConfigError,
  canonicalConfig,
  configHash,
  epochStart,
  MAX_LIMIT,
  parseAllocationConfig,
  REGION_NAME,
  type AllocationConfig,
} from './config';

/**
 * A region's quota snapshot: once per sync window it writes to S3 what it consumed and what was asked of it
 * per (entity, resource) in the last complete window (`epoch - 1`), with the configuration it computed under.
 * Every region reads every peer's snapshot, so the decoder treats the body as hostile: anything outside the
 * rules below is refused with a `SnapshotError` naming the field, never quoting the value (entity ids may be
 * customer data).
 *
 * Wire form (schema 1), compact JSON:
 * {"schema":1,"region":..,"epoch":..,"generatedAt":..,"configHash":..,"config":{..canonical..},
 *  "entries":[[entity,resource,consumed,demand(,operator)],..]}
 */

export const SNAPSHOT_SCHEMA = 1;
/** Largest body read (UTF-8 bytes), checked before parsing. */
export const MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024;
export const MAX_SNAPSHOT_ENTRIES = 250_000;
/** Entity ids: 1-512 UTF-8 bytes. */
export const MAX_ENTITY_BYTES = 512;

/** `generatedAt` bounds: 2020-01-01 to 3000-01-01 (ms). */
const MIN_GENERATED_AT = Date.UTC(2020, 0, 1);
const MAX_GENERATED_AT = Date.UTC(3000, 0, 1);

export interface SnapshotEntry {
  readonly entity: string;
  readonly resource: string;
  /** Milli-units consumed in the window. */
  readonly consumed: number;
  /** Milli-units asked for in the window (granted or not): at least `consumed`. */
  readonly demand: number;
  /** The operator-written limit in force in that region (milli-units/s), only when one is in force. */
  readonly operator?: number;
}

export interface Snapshot {
  readonly schema: 1;
  readonly region: string;
  readonly epoch: number;
  readonly generatedAt: number;
  /** SHA-256 (hex) of `canonicalConfig(config)`. */
  readonly configHash: string;
  readonly config: AllocationConfig;
  readonly entries: readonly SnapshotEntry[];
}

/** A snapshot that breaks a rule; `field` is where, `rule` what was expected. Never quotes a value. */
export class SnapshotError extends PermanentError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('quota-snapshot', `${field}: ${rule}`);
    this.name = 'SnapshotError';
    this.message = `${field}: ${rule}`;
  }
}

const LONE_SURROGATE = /\p{Surrogate}/u;
const CONTROL = /\p{Cc}/u;
/** Printable ASCII not starting with `#`. */
const PRINTABLE_ASCII = /^[\x20-\x22\x24-\x7e][\x20-\x7e]*$/;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * An entity id: 1-512 UTF-8 bytes of well-formed Unicode (no lone surrogate), no control characters, not
 * starting with `#` (reserved for the quota table's own items). Names of object members (`__proto__`,
 * `constructor`) are valid: whatever is keyed by entity must be a `Map`, never an object.
 */
export function isValidEntity(entity: unknown): entity is string {
  if (typeof entity !== 'string' || entity.length === 0 || entity.length > MAX_ENTITY_BYTES) return false;
  // The common case, without the (slower) Unicode property checks: printable ASCII, one byte a character.
  if (PRINTABLE_ASCII.test(entity)) return true;
  return (
    entity.charCodeAt(0) !== 0x23 /* # */ &&
    Buffer.byteLength(entity, 'utf8') <= MAX_ENTITY_BYTES &&
    !LONE_SURROGATE.test(entity) &&
    !CONTROL.test(entity)
  );
}

const KEYS = ['schema', 'region', 'epoch', 'generatedAt', 'configHash', 'config', 'entries'] as const;
const KEY_SET: ReadonlySet<string> = new Set(KEYS);

const own = (object: Record<string, unknown>, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

const isCount = (value: unknown, max = Number.MAX_SAFE_INTEGER): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;

const COUNT_RULE = 'expected an integer from 0 to 2^53-1 (milli-units)';
const ENTITY_RULE =
  'expected 1-512 UTF-8 bytes of well-formed Unicode without control characters, not starting with #';
const ENTRY_RULE =
  'expected [entity, resource, consumed, demand] or [entity, resource, consumed, demand, operator]';

function bodyText(body: string | Uint8Array): string {
  if (typeof body === 'string') {
    // Every UTF-16 unit is at least one UTF-8 byte: a longer string is over without counting.
    if (body.length > MAX_SNAPSHOT_BYTES || Buffer.byteLength(body, 'utf8') > MAX_SNAPSHOT_BYTES)
      throw new SnapshotError('snapshot', `larger than ${MAX_SNAPSHOT_BYTES} bytes`);
    return body;
  }
  if (!(body instanceof Uint8Array)) throw new SnapshotError('snapshot', 'expected text or bytes');
  if (body.byteLength > MAX_SNAPSHOT_BYTES)
    throw new SnapshotError('snapshot', `larger than ${MAX_SNAPSHOT_BYTES} bytes`);
  try {
    // ignoreBOM: a byte order mark stays in the text (and JSON.parse refuses it), as it would in a string.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw new SnapshotError('snapshot', 'not valid UTF-8');
  }
}

function parseConfig(raw: unknown): AllocationConfig {
  try {
    return parseAllocationConfig(raw, 'config');
  } catch (error) {
    if (error instanceof AllocationConfigError) throw new SnapshotError(error.field, error.rule);
    throw error;
  }
}

/**
 * Decodes and validates a snapshot (a string, or the bytes as read from S3). `expected` pins the region and
 * epoch the reader asked for (the object key is not trusted to say). Throws `SnapshotError` on the first
 * rule broken. Every entry comes back; nothing is dropped silently.
 */
export function decodeSnapshot(
  body: string | Uint8Array,
  expected: { region?: string; epoch?: number } = {},
): Snapshot {
  const text = bodyText(body);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new SnapshotError('snapshot', 'not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new SnapshotError('snapshot', 'expected a JSON object');
  const object = raw as Record<string, unknown>;

  // The schema first: a later release's snapshot (which may carry new properties) is refused as such.
  if (own(object, 'schema') !== SNAPSHOT_SCHEMA)
    throw new SnapshotError('schema', `unsupported; expected ${SNAPSHOT_SCHEMA}`);
  for (const key of Object.keys(object))
    if (!KEY_SET.has(key))
      throw new SnapshotError('snapshot', `unexpected property; expected ${KEYS.join(', ')}`);

  const region = own(object, 'region');
  if (typeof region !== 'string' || !REGION_NAME.test(region))
    throw new SnapshotError('region', 'expected a region code such as eu-central-1');
  if (expected.region !== undefined && region !== expected.region)
    throw new SnapshotError('region', `expected the snapshot of ${expected.region}`);

  const epoch = own(object, 'epoch');
  if (!isCount(epoch)) throw new SnapshotError('epoch', 'expected an integer from 0 to 2^53-1');
  if (expected.epoch !== undefined && epoch !== expected.epoch)
    throw new SnapshotError('epoch', `expected epoch ${expected.epoch}`);

  const generatedAt = own(object, 'generatedAt');
  if (
    typeof generatedAt !== 'number' ||
    !Number.isSafeInteger(generatedAt) ||
    generatedAt < MIN_GENERATED_AT ||
    generatedAt > MAX_GENERATED_AT
  )
    throw new SnapshotError('generatedAt', 'expected milliseconds from 2020-01-01 to 3000-01-01');

  const hash = own(object, 'configHash');
  if (typeof hash !== 'string' || !HEX_SHA256.test(hash))
    throw new SnapshotError('configHash', 'expected 64 lower-case hex digits (SHA-256)');

  const config = parseConfig(own(object, 'config'));
  if (!config.regions.some((r) => r.region === region))
    throw new SnapshotError('config.regions', "expected to include the snapshot's region");
  if (hash !== configHash(config)) throw new SnapshotError('configHash', 'does not match config');
  if (generatedAt < epochStart(config, epoch))
    throw new SnapshotError('generatedAt', 'expected a time at or after the start of its epoch');

  const rawEntries = own(object, 'entries');
  if (!Array.isArray(rawEntries)) throw new SnapshotError('entries', 'expected a list of entries');
  if (rawEntries.length > MAX_SNAPSHOT_ENTRIES)
    throw new SnapshotError('entries', `expected at most ${MAX_SNAPSHOT_ENTRIES} entries`);
  const resources: ReadonlySet<string> = new Set(config.resources.map((r) => r.name));
  // Keyed by resource, NUL, entity: a resource name holds no NUL, so no two pairs share a key.
  const seen = new Map<string, number>();
  const entries: SnapshotEntry[] = [];
  for (let i = 0; i < rawEntries.length; i++) {
    const item: unknown = rawEntries[i];
    if (!Array.isArray(item) || (item.length !== 4 && item.length !== 5))
      throw new SnapshotError(`entries[${i}]`, ENTRY_RULE);
    const [entity, resource, consumed, demand] = item as unknown[];
    if (!isValidEntity(entity)) throw new SnapshotError(`entries[${i}][0] (entity)`, ENTITY_RULE);
    if (typeof resource !== 'string' || !resources.has(resource))
      throw new SnapshotError(`entries[${i}][1] (resource)`, "expected a resource of the snapshot's config");
    if (!isCount(consumed)) throw new SnapshotError(`entries[${i}][2] (consumed)`, COUNT_RULE);
    if (!isCount(demand)) throw new SnapshotError(`entries[${i}][3] (demand)`, COUNT_RULE);
    if (consumed > demand) throw new SnapshotError(`entries[${i}][2] (consumed)`, 'expected at most demand');
    let entry: SnapshotEntry;
    if (item.length === 5) {
      const operator: unknown = item[4];
      if (!isCount(operator, MAX_LIMIT))
        throw new SnapshotError(`entries[${i}][4] (operator)`, `expected an integer from 0 to ${MAX_LIMIT}`);
      entry = { entity, resource, consumed, demand, operator };
    } else {
      entry = { entity, resource, consumed, demand };
    }
    const key = `${resource}\u0000${entity}`;
    const first = seen.get(key);
    if (first !== undefined)
      throw new SnapshotError(`entries[${i}]`, `appears twice; first at entries[${first}]`);
    seen.set(key, i);
    entries.push(entry);
  }

  return { schema: SNAPSHOT_SCHEMA, region, epoch, generatedAt, configHash: hash, config, entries };
}

/**
 * Encodes a snapshot as compact JSON, filling `schema` and `configHash` and writing the configuration in its
 * canonical form. What it writes is decoded again before it is returned, so it refuses (with the decoder's
 * `SnapshotError`) anything a peer would refuse: no region writes a snapshot its peers cannot read.
 */
export function encodeSnapshot(snapshot: Omit<Snapshot, 'schema' | 'configHash'>): string {
  const config = parseConfig(snapshot.config);
  const canonical = canonicalConfig(config);
  const entries: unknown = Array.isArray(snapshot.entries)
    ? (snapshot.entries as readonly unknown[]).map((entry) => {
        if (typeof entry !== 'object' || entry === null) return null;
        const e = entry as SnapshotEntry;
        return e.operator === undefined
          ? [e.entity, e.resource, e.consumed, e.demand]
          : [e.entity, e.resource, e.consumed, e.demand, e.operator];
      })
    : snapshot.entries;
  const text = JSON.stringify({
    schema: SNAPSHOT_SCHEMA,
    region: snapshot.region,
    epoch: snapshot.epoch,
    generatedAt: snapshot.generatedAt,
    configHash: configHash(config),
    config: JSON.parse(canonical) as unknown,
    entries,
  });
  decodeSnapshot(text);
  return text;
}
