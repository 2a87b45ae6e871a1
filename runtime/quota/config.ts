import { createHash } from 'node:crypto';
import { PermanentError } from '../lib/failures';

/**
 * What the allocation is computed under: the sync window, the regions and their weights, and per resource
 * the global limit, the burst and the regions' floors. Every amount is an integer in milli-units (1,000 =
 * one unit); limits and floors are milli-units per second. It rolls out region by region with the stacks,
 * so every snapshot carries it (and its hash): a region that sees peers on another configuration computes
 * its share under each and takes the smallest.
 */
export interface AllocationConfig {
  /**
   * Seconds per sync window: the epoch is `floor(ms / (windowSec x 1000))`. Whole minutes dividing an hour,
   * so an EventBridge cron can fire at the start of every window.
   */
  readonly windowSec: number;
  /**
   * How long after a window ends a share that grew in it may take effect: the hot path's caches (its limit
   * cache and token leases) plus a margin for clocks, so every peer's matching shrink is in force first.
   */
  readonly activationDelayMs: number;
  /** Every region of the estate, sorted by name, each once. */
  readonly regions: readonly RegionWeight[];
  /** The resources quotas exist for, sorted by name, each once. */
  readonly resources: readonly ResourceLimit[];
}

export interface RegionWeight {
  readonly region: string;
  /** Relative share of the limit (integer 1-1,000). */
  readonly weight: number;
}

export interface ResourceLimit {
  /** `[a-z0-9][a-z0-9._-]{0,62}`. */
  readonly name: string;
  /** Global limit of one entity, milli-units per second, shared by every region. */
  readonly limit: number;
  /** Seconds of the limit a bucket holds: capacity = share x burstSec (1-3,600). */
  readonly burstSec: number;
  /** Guaranteed minimum of a region (milli-units per second), sorted by region; absent regions have 0. */
  readonly floors: readonly { readonly region: string; readonly floor: number }[];
}

/** Largest limit: `limit x weight` stays a safe integer (weights are at most 1,000). */
export const MAX_LIMIT = Math.floor(Number.MAX_SAFE_INTEGER / 1000);
export const MAX_WEIGHT = 1000;
export const MAX_REGIONS = 32;
export const MAX_RESOURCES = 64;
export const RESOURCE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/** An allocation configuration that breaks a rule; `field` is its path, `rule` what was expected. */
export class AllocationConfigError extends PermanentError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('quota-config', `${field}: ${rule}`);
    this.name = 'AllocationConfigError';
    this.message = `${field}: ${rule}`;
  }
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const own = (object: Record<string, unknown>, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

function onlyKeys(object: Record<string, unknown>, field: string, keys: readonly string[]): void {
  for (const key of Object.keys(object))
    if (!keys.includes(key))
      throw new AllocationConfigError(field, `unexpected property; expected ${keys.join(', ')}`);
}

function int(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw new AllocationConfigError(field, `expected an integer from ${min} to ${max}`);
  return value;
}

function sortedUnique<T>(items: readonly T[], keyOf: (item: T) => string, field: string, what: string): void {
  for (let i = 1; i < items.length; i++) {
    const [previous, current] = [keyOf(items[i - 1] as T), keyOf(items[i] as T)];
    if (previous >= current)
      throw new AllocationConfigError(`${field}[${i}]`, `expected ${what}s sorted by name, each once`);
  }
}

/**
 * Validates an allocation configuration (from the function's environment or a peer's snapshot). Throws an
 * `AllocationConfigError` naming the first bad field; never quotes a value.
 */
export function parseAllocationConfig(value: unknown, field = 'config'): AllocationConfig {
  if (!isPlainObject(value)) throw new AllocationConfigError(field, 'expected an object');
  onlyKeys(value, field, ['windowSec', 'activationDelayMs', 'regions', 'resources']);
  const windowSec = int(own(value, 'windowSec'), `${field}.windowSec`, 60, 3600);
  if (windowSec % 60 !== 0 || 3600 % windowSec !== 0)
    throw new AllocationConfigError(
      `${field}.windowSec`,
      'expected whole minutes that divide an hour (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600)',
    );
  const activationDelayMs = int(
    own(value, 'activationDelayMs'),
    `${field}.activationDelayMs`,
    0,
    windowSec * 1000,
  );

  const rawRegions = own(value, 'regions');
  if (!Array.isArray(rawRegions) || rawRegions.length < 1 || rawRegions.length > MAX_REGIONS)
    throw new AllocationConfigError(`${field}.regions`, `expected 1-${MAX_REGIONS} regions`);
  const regions = rawRegions.map((entry: unknown, i): RegionWeight => {
    const at = `${field}.regions[${i}]`;
    if (!isPlainObject(entry)) throw new AllocationConfigError(at, 'expected { region, weight }');
    onlyKeys(entry, at, ['region', 'weight']);
    const region = own(entry, 'region');
    if (typeof region !== 'string' || !REGION_NAME.test(region))
      throw new AllocationConfigError(`${at}.region`, 'expected a region code such as eu-central-1');
    return { region, weight: int(own(entry, 'weight'), `${at}.weight`, 1, MAX_WEIGHT) };
  });
  sortedUnique(regions, (r) => r.region, `${field}.regions`, 'region');
  const known = new Set(regions.map((r) => r.region));

  const rawResources = own(value, 'resources');
  if (!Array.isArray(rawResources) || rawResources.length > MAX_RESOURCES)
    throw new AllocationConfigError(`${field}.resources`, `expected at most ${MAX_RESOURCES} resources`);
  const resources = rawResources.map((entry: unknown, i): ResourceLimit => {
    const at = `${field}.resources[${i}]`;
    if (!isPlainObject(entry))
      throw new AllocationConfigError(at, 'expected { name, limit, burstSec, floors }');
    onlyKeys(entry, at, ['name', 'limit', 'burstSec', 'floors']);
    const name = own(entry, 'name');
    if (typeof name !== 'string' || !RESOURCE_NAME.test(name))
      throw new AllocationConfigError(
        `${at}.name`,
        'expected 1-63 of a-z 0-9 . _ -, starting with a letter or digit',
      );
    const limit = int(own(entry, 'limit'), `${at}.limit`, 0, MAX_LIMIT);
    const burstSec = int(own(entry, 'burstSec'), `${at}.burstSec`, 1, 3600);
    const rawFloors = own(entry, 'floors');
    if (!Array.isArray(rawFloors) || rawFloors.length > regions.length)
      throw new AllocationConfigError(
        `${at}.floors`,
        'expected a list of { region, floor }, at most one per region',
      );
    const floors = rawFloors.map((f: unknown, j) => {
      const fat = `${at}.floors[${j}]`;
      if (!isPlainObject(f)) throw new AllocationConfigError(fat, 'expected { region, floor }');
      onlyKeys(f, fat, ['region', 'floor']);
      const region = own(f, 'region');
      if (typeof region !== 'string' || !known.has(region))
        throw new AllocationConfigError(`${fat}.region`, "expected one of the configuration's regions");
      return { region, floor: int(own(f, 'floor'), `${fat}.floor`, 0, MAX_LIMIT) };
    });
    sortedUnique(floors, (f) => f.region, `${at}.floors`, 'region');
    if (floors.reduce((sum, f) => sum + f.floor, 0) > limit)
      throw new AllocationConfigError(`${at}.floors`, 'expected floors summing to at most the limit');
    return { name, limit, burstSec, floors };
  });
  sortedUnique(resources, (r) => r.name, `${field}.resources`, 'resource');
  return { windowSec, activationDelayMs, regions, resources };
}

/** The configuration as canonical JSON: fixed key order, lists sorted (what the hash is taken of). */
export function canonicalConfig(config: AllocationConfig): string {
  return JSON.stringify({
    windowSec: config.windowSec,
    activationDelayMs: config.activationDelayMs,
    regions: config.regions.map((r) => ({ region: r.region, weight: r.weight })),
    resources: config.resources.map((r) => ({
      name: r.name,
      limit: r.limit,
      burstSec: r.burstSec,
      floors: r.floors.map((f) => ({ region: f.region, floor: f.floor })),
    })),
  });
}

/** SHA-256 (hex) of the canonical configuration: equal hashes, equal allocations. */
export function configHash(config: AllocationConfig): string {
  return createHash('sha256').update(canonicalConfig(config)).digest('hex');
}

/** The resource's settings, or undefined when the configuration has no such resource. */
export function resourceOf(config: AllocationConfig, name: string): ResourceLimit | undefined {
  return config.resources.find((r) => r.name === name);
}

/** The epoch (sync window index) that `ms` falls in. */
export function epochOf(config: Pick<AllocationConfig, 'windowSec'>, ms: number): number {
  return Math.floor(ms / (config.windowSec * 1000));
}

/** When epoch `epoch` starts, in ms. */
export function epochStart(config: Pick<AllocationConfig, 'windowSec'>, epoch: number): number {
  return epoch * config.windowSec * 1000;
}
