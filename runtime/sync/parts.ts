import { createHash } from 'node:crypto';
import {
  compareDots,
  contextOf,
  CrdtDecodeError,
  isElement,
  isReplicaId,
  MAX_COUNT,
  orsetFromEntries,
  union,
  utf8Bytes,
  variantFromWire,
  variantWire,
  type CrdtDocument,
  type Dot,
  type Field,
  type ORSet,
  type ORSetEntry,
  type Variant,
} from '../crdt';

/*
 * A document is stored as parts, so one change reads and writes only what it touches:
 *   a variant part per field and type   `v<NUL><field><NUL><tag>`   the variant's wire form; a set's
 *                                                                   without its elements (stamp + context)
 *   an element part per set element     `e<NUL><field><NUL><element>`  the element's dots
 * Part texts are canonical (equal states give equal texts), so a document's digest (the sum of its parts'
 * hashes) is equal in every region that holds the same state.
 */

const NUL = '\u0000';
const TAGS = { gcounter: 'g', pncounter: 'pn', lww: 'lww', orset: 'or' } as const;

/** What a reader needs of a document: per field, which of its set's elements (`all`, or these). */
export type DocumentScope = ReadonlyMap<string, 'all' | readonly string[]>;

export const variantPartKey = (field: string, tag: string): string => `v${NUL}${field}${NUL}${tag}`;
export const elementPartKey = (field: string, element: string): string => `e${NUL}${field}${NUL}${element}`;

/** A part key's kind, field and (tag or element). */
export function parsePartKey(key: string): { kind: 'v' | 'e'; field: string; rest: string } {
  const kind = key[0];
  const at = key.indexOf(NUL, 2);
  if ((kind !== 'v' && kind !== 'e') || key[1] !== NUL || at < 0)
    throw new CrdtDecodeError('part', 'expected a part key v|e, field, tag or element');
  return { kind, field: key.slice(2, at), rest: key.slice(at + 1) };
}

/** Every tag a field's variant part may have: a reader of a field asks for each. */
export const VARIANT_TAGS: readonly string[] = Object.values(TAGS);

/** Most bytes of one part's text: a delta carrying it whole fits one sync message. */
export const MAX_PART_BYTES = 258_048;
/** What a stored part costs beside its key and text: its sort key (a hash) and attribute names. */
export const PART_OVERHEAD_BYTES = 60;

/** What a part takes stored, as DynamoDB counts an item (less the document's key, which every part repeats). */
export const partBytes = (key: string, text: string): number =>
  utf8Bytes(key) + utf8Bytes(text) + PART_OVERHEAD_BYTES;

const dotsText = (dots: readonly Dot[]): string =>
  JSON.stringify(dots.map(([replica, counter]) => [replica, counter]));

function dotsFromText(text: string, path: string): Dot[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CrdtDecodeError(path, 'not valid JSON');
  }
  if (!Array.isArray(value) || value.length === 0)
    throw new CrdtDecodeError(path, 'expected a non-empty list of [replica, counter] dots');
  return value.map((dot: unknown, i) => {
    if (
      !Array.isArray(dot) ||
      dot.length !== 2 ||
      !isReplicaId(dot[0]) ||
      !Number.isSafeInteger(dot[1]) ||
      (dot[1] as number) < 1 ||
      (dot[1] as number) > MAX_COUNT
    )
      throw new CrdtDecodeError(`${path}[${i}]`, `expected [replica id, counter 1-${MAX_COUNT}]`);
    return [dot[0], dot[1]] as Dot;
  });
}

/** A set's variant without its elements: what the set's variant part holds. */
const headerOf = (variant: Variant & { crdt: { type: 'orset' } }): Variant => ({
  created: variant.created,
  crdt: { type: 'orset', state: { entries: [], context: variant.crdt.state.context } },
});

/** The parts of `document` (a whole document or a view), keyed by part key. */
export function partsOf(document: CrdtDocument): Map<string, string> {
  const parts = new Map<string, string>();
  for (const [field, variants] of document) {
    for (const variant of variants) {
      const tag = TAGS[variant.crdt.type];
      if (variant.crdt.type !== 'orset') {
        parts.set(variantPartKey(field, tag), JSON.stringify(variantWire(variant)));
        continue;
      }
      const set = variant as Variant & { crdt: { type: 'orset' } };
      parts.set(variantPartKey(field, tag), JSON.stringify(variantWire(headerOf(set))));
      for (const [element, dots] of set.crdt.state.entries)
        parts.set(elementPartKey(field, element), dotsText(dots));
    }
  }
  return parts;
}

const TYPE_ORDER = ['gcounter', 'pncounter', 'lww', 'orset'];

/**
 * A document (or view) from its parts. A set holds the dots of its elements' parts, and counts them as
 * seen (a part written by a merge in several steps may hold dots its set's context has yet to list).
 */
export function documentFromParts(parts: Iterable<readonly [string, string]>): CrdtDocument {
  const variants = new Map<string, Variant[]>();
  const elements = new Map<string, ORSetEntry[]>();
  for (const [key, text] of parts) {
    const { kind, field, rest } = parsePartKey(key);
    if (kind === 'e') {
      if (!isElement(rest))
        throw new CrdtDecodeError('part.element', 'expected 0-1024 UTF-8 bytes of well-formed Unicode');
      const list = elements.get(field) ?? [];
      list.push([rest, dotsFromText(text, 'part.dots').sort(compareDots)]);
      elements.set(field, list);
      continue;
    }
    let wire: unknown;
    try {
      wire = JSON.parse(text);
    } catch {
      throw new CrdtDecodeError('part', 'not valid JSON');
    }
    const variant = variantFromWire(wire, 'part');
    if (TAGS[variant.crdt.type] !== rest)
      throw new CrdtDecodeError('part.t', "the variant's type is not its key's");
    const list = variants.get(field) ?? [];
    list.push(variant);
    variants.set(field, list);
  }
  const document = new Map<string, Field>();
  for (const [field, list] of variants) {
    const entries = elements.get(field);
    elements.delete(field);
    const merged = list
      .map((variant) => {
        if (variant.crdt.type !== 'orset' || !entries) return variant;
        const dots = entries.flatMap(([, d]) => d);
        const state: ORSet = orsetFromEntries(entries, union(variant.crdt.state.context, contextOf(dots)));
        return { created: variant.created, crdt: { type: 'orset' as const, state } };
      })
      .sort((a, b) => TYPE_ORDER.indexOf(a.crdt.type) - TYPE_ORDER.indexOf(b.crdt.type));
    document.set(field, merged);
  }
  if (elements.size > 0) throw new CrdtDecodeError('part.element', 'a set element without its set');
  return document;
}

/** The part of `document` a scope reads: its fields, and of their sets only the elements named. */
export function viewOf(document: CrdtDocument, scope: DocumentScope | undefined): CrdtDocument {
  if (!scope) return document;
  const view = new Map<string, Field>();
  for (const [field, elements] of scope) {
    const variants = document.get(field);
    if (!variants) continue;
    if (elements === 'all') {
      view.set(field, variants);
      continue;
    }
    const wanted = new Set(elements);
    view.set(
      field,
      variants.map((variant) =>
        variant.crdt.type === 'orset'
          ? {
              created: variant.created,
              crdt: {
                type: 'orset',
                state: {
                  entries: variant.crdt.state.entries.filter(([element]) => wanted.has(element)),
                  context: variant.crdt.state.context,
                },
              },
            }
          : variant,
      ),
    );
  }
  return view;
}

/** What a body needs read to merge it: its fields; of a scoped set delta its elements, else every element. */
export function scopeOf(bodies: Iterable<CrdtDocument>): DocumentScope {
  const scope = new Map<string, 'all' | Set<string>>();
  for (const body of bodies) {
    for (const [field, variants] of body) {
      let wanted = scope.get(field) ?? new Set<string>();
      for (const { crdt } of variants) {
        if (crdt.type !== 'orset' || wanted === 'all') continue;
        const named = crdt.state.scope;
        if (named === undefined) wanted = 'all';
        else for (const element of named) wanted.add(element);
      }
      scope.set(field, wanted);
    }
  }
  return new Map([...scope].map(([field, wanted]) => [field, wanted === 'all' ? 'all' : [...wanted]]));
}

/** Joins two scopes: per field `all` wins, else the elements of both. */
export function joinScopes(a: DocumentScope, b: DocumentScope): DocumentScope {
  const joined = new Map<string, 'all' | readonly string[]>(a);
  for (const [field, elements] of b) {
    const current = joined.get(field);
    if (current === undefined) joined.set(field, elements);
    else if (current === 'all' || elements === 'all') joined.set(field, 'all');
    else joined.set(field, [...new Set([...current, ...elements])]);
  }
  return joined;
}

/** A 64-bit hash of a part (its key and text). */
export function partHash(key: string, text: string): bigint {
  return createHash('sha256').update(key).update(NUL).update(text).digest().readBigUInt64BE(0);
}

const MOD = 1n << 64n;

/** Adds (`sign` 1) or removes (-1) a part's hash from a digest: digests are sums of part hashes mod 2^64. */
export const stepDigest = (digest: bigint, key: string, text: string, sign: 1 | -1): bigint =>
  (((digest + BigInt(sign) * partHash(key, text)) % MOD) + MOD) % MOD;

/** The digest of a whole document's parts. */
export function digestOf(parts: ReadonlyMap<string, string>): bigint {
  let digest = 0n;
  for (const [key, text] of parts) digest = stepDigest(digest, key, text, 1);
  return digest;
}

export const digestText = (digest: bigint): string => digest.toString(16).padStart(16, '0');
