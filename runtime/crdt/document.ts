import {
  CRDT_TYPES,
  crdtLimitProblem,
  foldCrdt,
  mergeCrdt,
  readCrdt,
  type Crdt,
  type CrdtType,
} from './crdt';
import { compareHlc, type Hlc } from './hlc';
import type { JsonValue } from './lww-register';

/** One type's state of a field, and the stamp of the earliest write that created the field as that type. */
export interface Variant {
  readonly created: Hlc;
  readonly crdt: Crdt;
}

/**
 * A field of a document: one variant, or several when regions first wrote it concurrently as different
 * types (an increment in one region, an add in another). Every variant is kept and merged on its own, so a
 * clash blocks nothing and loses nothing; the field reads as its earliest-created variant (`visibleVariant`),
 * which every region agrees on. Variants are sorted by `CRDT_TYPES` order, one per type.
 */
export type Field = readonly Variant[];

/** A document: fields by key. Merging merges field by field, variant by variant. */
export type CrdtDocument = ReadonlyMap<string, Field>;

export const emptyDocument = (): CrdtDocument => new Map();

const typeRank = (type: CrdtType) => CRDT_TYPES.indexOf(type);

/** The variant a field reads as: the earliest created (a tie, impossible between correct clocks, by type). */
export function visibleVariant(field: Field): Variant {
  let best = field[0] as Variant;
  for (const variant of field.slice(1)) {
    const order = compareHlc(variant.created, best.created);
    if (order < 0 || (order === 0 && typeRank(variant.crdt.type) < typeRank(best.crdt.type))) best = variant;
  }
  return best;
}

export const readField = (field: Field): number | JsonValue | string[] =>
  readCrdt(visibleVariant(field).crdt);

export const variantOf = (field: Field | undefined, type: CrdtType): Variant | undefined =>
  field?.find((variant) => variant.crdt.type === type);

function mergeVariant(a: Variant, b: Variant): Variant {
  if (a === b) return a;
  const created = compareHlc(a.created, b.created) <= 0 ? a.created : b.created;
  return { created, crdt: mergeCrdt(a.crdt, b.crdt) };
}

/** Merges two states of a field, variant by variant: commutative, associative, idempotent. */
export function mergeField(a: Field | undefined, b: Field): Field {
  if (!a || a === b) return b;
  if (a.length === 1 && b.length === 1 && a[0]?.crdt.type === b[0]?.crdt.type)
    return [mergeVariant(a[0] as Variant, b[0] as Variant)];
  const merged: Variant[] = [];
  for (const type of CRDT_TYPES) {
    const left = variantOf(a, type);
    const right = variantOf(b, type);
    if (left && right) merged.push(mergeVariant(left, right));
    else if (left || right) merged.push((left ?? right) as Variant);
  }
  return merged;
}

export function mergeDocument(a: CrdtDocument, b: CrdtDocument): CrdtDocument {
  const merged = new Map(a);
  for (const [key, field] of b) merged.set(key, mergeField(merged.get(key), field));
  return merged;
}

/** Why a field (typically a merge of two valid ones) cannot be kept, or undefined. */
export function fieldLimitProblem(field: Field): string | undefined {
  for (const variant of field) {
    const problem = crdtLimitProblem(variant.crdt);
    if (problem) return problem;
  }
  return undefined;
}

/** Folds `group`'s replicas with epochs before `beforeMs` in every field (the same map when nothing changes). */
export function foldDocument(document: CrdtDocument, group: string, beforeMs: number): CrdtDocument {
  let folded: Map<string, Field> | undefined;
  for (const [key, field] of document) {
    let changed = false;
    const next = field.map((variant) => {
      const crdt = foldCrdt(variant.crdt, group, beforeMs);
      if (crdt === variant.crdt) return variant;
      changed = true;
      return { created: variant.created, crdt };
    });
    if (changed) (folded ??= new Map(document)).set(key, next);
  }
  return folded ?? document;
}
