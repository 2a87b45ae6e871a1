/**
 * The one item of the region's state table the health function owns. Pure (no AWS imports), so the
 * regional stack can build the function's IAM condition from the same key the probe writes:
 * `dynamodb:UpdateItem` and `dynamodb:GetItem` on the state table with `dynamodb:LeadingKeys` =
 * `healthItemKey(region).pk`.
 *
 * The key never collides with sync documents: those are `pk = doc#<document>`, `sk = crdt`, and the
 * anti-entropy scan keeps only `begins_with(pk, 'doc#') AND sk = 'crdt'`. A partition key starting with
 * `health#` can never start with `doc#`, and the sort key differs too, so no document name can address
 * this item and the scan never reports it as a document.
 */

/** Partition-key prefix of the health probe's item; the region follows it. */
export const HEALTH_ITEM_PREFIX = 'health#';

/** Sort key of the health probe's item. */
export const HEALTH_ITEM_SORT_KEY = 'probe';

/** The probe item expires this long after it was written (the state table's TTL attribute is `expiresAt`). */
export const HEALTH_ITEM_TTL_SEC = 300;

/** The key of `region`'s health probe item: `{ pk: 'health#<region>', sk: 'probe' }`. */
export function healthItemKey(region: string): { readonly pk: string; readonly sk: string } {
  if (region.length === 0) throw new Error('healthItemKey: expected a region, received an empty string');
  return { pk: `${HEALTH_ITEM_PREFIX}${region}`, sk: HEALTH_ITEM_SORT_KEY };
}
