import fc from 'fast-check';
import {
  decodeDocument,
  encodeDocument,
  mergeDocument,
  type CrdtDocument,
  type Field,
} from '../../runtime/crdt';
import {
  digestOf,
  digestText,
  documentFromParts,
  partBytes,
  partsOf,
  planChange,
  scopeOf,
  viewOf,
  type DocumentScope,
} from '../../runtime/sync';
import { document, element, fieldKey } from '../support/crdt-arbitraries';
import { testRegion } from '../support/sync-harness';

/** A state as a store holds it: sets carry no scope (only deltas name the elements they speak for). */
const stored = (doc: CrdtDocument): CrdtDocument =>
  new Map(
    [...doc].map(([key, field]): [string, Field] => [
      key,
      field.map((variant) =>
        variant.crdt.type === 'orset'
          ? {
              created: variant.created,
              crdt: {
                type: 'orset',
                state: { entries: variant.crdt.state.entries, context: variant.crdt.state.context },
              },
            }
          : variant,
      ),
    ]),
  );

const scope: fc.Arbitrary<DocumentScope> = fc
  .array(fc.tuple(fieldKey, fc.oneof(fc.constant('all' as const), fc.array(element, { maxLength: 3 }))), {
    maxLength: 4,
  })
  .map((entries) => new Map(entries));

const sizeOf = (doc: CrdtDocument) =>
  [...partsOf(doc)].reduce((sum, [key, text]) => sum + partBytes(key, text), 0);

describe('the part layout', () => {
  it('reads back every state it stores, encoded the same as one item', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const state = stored(doc);
        expect(encodeDocument(documentFromParts(partsOf(state)))).toBe(encodeDocument(state));
      }),
    );
  });

  it('reads of a scope hold exactly the parts it names', () => {
    fc.assert(
      fc.property(document, scope, (doc, wanted) => {
        const state = stored(doc);
        const whole = partsOf(state);
        const view = partsOf(viewOf(state, wanted));
        for (const [key, text] of view) expect(whole.get(key)).toBe(text);
        for (const key of whole.keys()) {
          const [kind, fieldName, rest] = key.split('\u0000');
          const elements = wanted.get(fieldName as string);
          const named =
            elements !== undefined &&
            (kind === 'v' || elements === 'all' || elements.includes(rest as string));
          expect(view.has(key)).toBe(named);
        }
      }),
    );
  });

  it('commits a merge in steps that each leave a valid state on the way to the merge, and keep size and digest', () => {
    fc.assert(
      fc.property(document, document, fc.integer({ min: 2, max: 6 }), (left, right, parts) => {
        const base = stored(left);
        const next = mergeDocument(base, stored(right));
        const head = { version: 7, bytes: sizeOf(base), digest: digestText(digestOf(partsOf(base))) };
        const planned = planChange(base, head, next, { changedAt: 1 }, { parts, bytes: 1_000_000 });
        const table = partsOf(base);
        let version = head.version;
        for (const commit of planned.commits) {
          expect(commit.expected).toBe(version);
          expect(commit.puts.size + commit.deletes.length).toBeLessThanOrEqual(parts);
          for (const key of commit.deletes) table.delete(key);
          for (const [key, text] of commit.puts) table.set(key, text);
          version = commit.head.version;
          const state = documentFromParts(table);
          // a valid state (the decoder checks every element's dots are in its set's context) ...
          expect(() => decodeDocument(encodeDocument(state))).not.toThrow();
          // ... that the merge includes: merging it into the target changes nothing
          expect(encodeDocument(mergeDocument(next, state))).toBe(encodeDocument(next));
          expect(commit.head.digest).toBe(digestText(digestOf(table)));
          expect(commit.head.bytes).toBe(
            [...table].reduce((sum, [key, text]) => sum + partBytes(key, text), 0),
          );
        }
        expect(encodeDocument(documentFromParts(table))).toBe(
          encodeDocument(documentFromParts(partsOf(next))),
        );
        expect(planned.bytes).toBe(sizeOf(next));
      }),
    );
  });

  it('plans no write when the merge changes nothing', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const state = stored(doc);
        const head = { version: 3, bytes: sizeOf(state), digest: digestText(digestOf(partsOf(state))) };
        expect(planChange(state, head, mergeDocument(state, state), { changedAt: 1 }).commits).toEqual([]);
      }),
    );
  });

  it('reads a delta of a set for its element only, a full state for every element', () => {
    const eu = testRegion('eu-central-1');
    return eu.replica
      .update('doc', { kind: 'add', field: 's', element: 'x' })
      .then(() => eu.replica.update('doc', { kind: 'remove', field: 's', element: 'x' }))
      .then(() => {
        const [add, remove] = eu.published;
        expect(scopeOf([add?.body as CrdtDocument])).toEqual(new Map([['s', ['x']]]));
        expect(scopeOf([remove?.body as CrdtDocument])).toEqual(new Map([['s', ['x']]]));
        expect(scopeOf([stored(add?.body as CrdtDocument)])).toEqual(new Map([['s', 'all']]));
      });
  });
});

type Op =
  | { kind: 'increment'; field: string; by: number }
  | { kind: 'add' | 'remove'; field: string; element: string }
  | { kind: 'set'; field: string; value: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('increment' as const),
    field: fc.constant('n'),
    by: fc.integer({ min: -5, max: 5 }),
  }),
  fc.record({ kind: fc.constantFrom('add' as const, 'remove' as const), field: fc.constant('s'), element }),
  fc.record({ kind: fc.constant('set' as const), field: fc.constant('v'), value: fc.integer() }),
);

describe('a replica on the part layout', () => {
  it('reads back, after any sequence of changes, the state the single-item layout held (every delta merged whole)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.boolean(), async (ops, restart) => {
        const eu = testRegion('eu-central-1');
        let whole: CrdtDocument = new Map();
        for (const [i, operation] of ops.entries()) {
          if (restart && i % 7 === 6) eu.restart();
          const before = eu.published.length;
          await eu.replica.update('doc', operation);
          for (const envelope of eu.published.slice(before)) whole = mergeDocument(whole, envelope.body);
        }
        expect(encodeDocument(await eu.replica.read('doc'))).toBe(encodeDocument(stored(whole)));
      }),
      { numRuns: 60 },
    );
  });
});
