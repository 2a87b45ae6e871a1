/**
 * Replica ids with a lineage: `<group>@<epoch>`, where the group is the region and the epoch is when the
 * replica started (9 base-36 digits of milliseconds) plus 4 random base-36 digits. A region issues every
 * change under a fresh replica of its group, so no dot or counter value is ever issued twice even when the
 * region's stored state goes back (a restore); old replicas of a group are later folded into one total per
 * group (see `gcounterFold`, `orsetFold`). Ids without a lineage are never folded.
 */
const LINEAGE = /^([A-Za-z0-9_.:-]{1,50})@([0-9a-z]{9})[0-9a-z]{4}$/;

/** Group names: what may precede `@` in a replica id with a lineage. */
export const GROUP = /^[A-Za-z0-9_.:-]{1,50}$/;

export interface Lineage {
  readonly group: string;
  readonly epochMs: number;
}

/** Parsed lineages of recently seen replica ids (merges ask for the same few ids again and again). */
const parsed = new Map<string, Lineage | null>();
const PARSED_LIMIT = 4096;

export function lineageOf(replica: string): Lineage | undefined {
  let lineage = parsed.get(replica);
  if (lineage === undefined) {
    const match = LINEAGE.exec(replica);
    lineage = match ? { group: match[1] as string, epochMs: parseInt(match[2] as string, 36) } : null;
    if (parsed.size >= PARSED_LIMIT) parsed.clear();
    parsed.set(replica, lineage);
  }
  return lineage ?? undefined;
}

/** The replica id of a new epoch of `group` started at `startedMs`, `nonce` 4 base-36 digits. */
export function epochReplicaId(group: string, startedMs: number, nonce: string): string {
  if (!GROUP.test(group)) throw new RangeError('group: expected 1-50 letters, digits, _ . : or -');
  if (!Number.isSafeInteger(startedMs) || startedMs < 0 || startedMs >= 36 ** 9)
    throw new RangeError('startedMs: expected milliseconds that fit 9 base-36 digits');
  if (!/^[0-9a-z]{4}$/.test(nonce)) throw new RangeError('nonce: expected 4 base-36 digits');
  return `${group}@${startedMs.toString(36).padStart(9, '0')}${nonce}`;
}

/** True when `replica` belongs to a group whose epochs before `horizons.get(group)` were folded. */
export function isFolded(replica: string, horizons: ReadonlyMap<string, number>): boolean {
  if (horizons.size === 0) return false;
  const lineage = lineageOf(replica);
  if (!lineage) return false;
  const before = horizons.get(lineage.group);
  return before !== undefined && lineage.epochMs < before;
}

/** A replica issued a change after its epoch was folded: the caller must start a new epoch. */
export class ReplicaRetiredError extends Error {
  constructor() {
    super('the replica issuing this change was already folded into its group; start a new epoch');
    this.name = 'ReplicaRetiredError';
  }
}
