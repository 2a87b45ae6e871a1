import {
  CrdtDecodeError,
  decodeDocument,
  encodeDocument,
  readField,
  UnsupportedVersionError,
  type CrdtDocument,
} from '../../runtime/crdt';

/** One field's variant wire in protocol version `v` (3 unless given); `a` (created) is filled in unless given. */
const doc = (variant: Record<string, unknown>, key = 'f', v = 3) =>
  JSON.stringify({ v, m: { [key]: { a: [1, 0, 'eu-central-1'], ...variant } } });
/** The same in protocol version 2 (the cloud as dots, no scope). */
const doc2 = (variant: Record<string, unknown>) => doc(variant, 'f', 2);
const counts = (r: Record<string, unknown>, f?: Record<string, unknown>) => ({
  t: 'g',
  r,
  ...(f ? { f } : {}),
});
const set = (parts: Record<string, unknown>) => ({
  t: 'or',
  r: ['eu-central-1'],
  e: [],
  vv: [],
  c: [],
  ...parts,
});
const register = (x: unknown, h: unknown = [5, 0, 'eu-central-1']) => ({ t: 'lww', x, h });
const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);
const MAX = Number.MAX_SAFE_INTEGER;
/** What decoding `text` threw (undefined when it decoded). */
const thrown = (text: string): unknown => {
  try {
    decodeDocument(text);
  } catch (error) {
    return error;
  }
  return undefined;
};
const EPOCH = 'eu-central-1@000000001abcd'; // epoch at 36^4 ms
const LATER = 'eu-central-1@00zzzzzzzabcd'; // an epoch after the fold's horizon

describe('decodeDocument refuses what no replica can produce, naming where and which rule', () => {
  it.each<[string, string, string]>([
    [
      'a count past 2^53 - 1',
      doc(counts({ r: 2 ** 53 })),
      '$.m[0].r[0]: expected a count from 1 to 9007199254740991',
    ],
    ['a count of 2^53 - 1 plus another', doc(counts({ r: MAX, s: 1 })), "$.m[0]: the counter's total passes"],
    ['a zero count', doc(counts({ r: 0 })), '$.m[0].r[0]: expected a count from 1'],
    ['a negative count', doc(counts({ r: -1 })), '$.m[0].r[0]: expected a count from 1'],
    ['a fractional count', doc(counts({ r: 1.5 })), '$.m[0].r[0]: expected a count from 1'],
    ['a count given as a string', doc(counts({ r: '3' })), '$.m[0].r[0]: expected a count from 1'],
    ['a replica id with a space', doc(counts({ 'a b': 1 })), '$.m[0].r[0]: invalid replica id'],
    [
      'a replica id of 65 characters',
      doc(counts({ ['r'.repeat(65)]: 1 })),
      '$.m[0].r[0]: invalid replica id',
    ],
    [
      'a count its fold covers',
      doc(counts({ [EPOCH]: 1 }, { 'eu-central-1': [10 ** 9, 5] })),
      "$.m[0].r[0]: a count its group's fold already covers",
    ],
    ['an empty fold list', doc(counts({}, {})), '$.m[0].f: expected a non-empty object of folds by group'],
    [
      'a fold with a zero total',
      doc(counts({}, { g: [5, 0] })),
      '$.m[0].f[0]: expected [beforeMs, total >= 1]',
    ],
    ['a counter missing its counts', doc({ t: 'g' }), '$.m[0]: expected {"r": counts by replica'],
    ['a PN-counter missing n', doc({ t: 'pn', p: { r: {} } }), '$.m[0].n: expected {"r": counts by replica'],
    ['an unknown type', doc({ t: 'zz' }), '$.m[0].t: unknown CRDT type; expected g, pn, lww or or'],
    [
      'an unexpected property',
      doc({ ...counts({}), extra: 1 }),
      '$.m[0]: unexpected property; expected only t, a, r, f',
    ],
    [
      'a register value of 1e999',
      doc(register(1)).replace('"x":1', '"x":1e999'),
      '$.m[0].x: numbers must be finite',
    ],
    ['a register nested 33 deep', doc(register(nested(33))), '$.m[0].x: nesting deeper than 32 levels'],
    [
      'a register nested 100,000 deep',
      doc(register(nested(0))).replace('"x":1', `"x":${'['.repeat(100_000)}1${']'.repeat(100_000)}`),
      '$.m[0].x: nesting deeper than 32 levels',
    ],
    [
      'a register value with a lone surrogate',
      doc(register('\ud800')),
      '$.m[0].x: strings must be well-formed Unicode',
    ],
    [
      'a register value with an own __proto__ key',
      doc(register({ a: 1 })).replace('"x":{"a":1}', '"x":{"a":1,"__proto__":{"polluted":true}}'),
      '$.m[0].x: object keys may not be __proto__',
    ],
    [
      'a register without a value',
      doc({ t: 'lww', h: [5, 0, 'eu-central-1'] }),
      '$.m[0].x: a register needs a value',
    ],
    [
      'a register created after its value was set',
      doc({ ...register(1, [0, 0, 'eu-central-1']) }),
      "$.m[0].a: a register's creation stamp cannot follow its value's stamp",
    ],
    [
      'a clock past the year 3000',
      doc(register(1, [Date.UTC(3000, 0, 2), 0, 'eu-central-1'])),
      '$.m[0].h: expected [wallMs 0-',
    ],
    ['a logical clock of 2^31', doc(register(1, [5, 2 ** 31, 'eu-central-1'])), '$.m[0].h: expected [wallMs'],
    ['a clock with a bad replica', doc(register(1, [5, 0, ''])), '$.m[0].h: expected [wallMs'],
    [
      'a creation stamp that is not a stamp',
      doc({ ...register(1), a: 'yesterday' }),
      '$.m[0].a: expected [wallMs',
    ],
    [
      'the same dot twice in one element',
      doc(set({ e: [['x', [0, 1, 0, 1]]], vv: [0, 1] })),
      '$.m[0].e[0][1]: a dot held twice',
    ],
    [
      'one dot on two elements',
      doc(
        set({
          e: [
            ['x', [0, 1]],
            ['y', [0, 1]],
          ],
          vv: [0, 1],
        }),
      ),
      '$.m[0].e[1][1]: a dot held twice',
    ],
    [
      'the same element twice',
      doc(
        set({
          e: [
            ['x', [0, 1]],
            ['x', [0, 2]],
          ],
          vv: [0, 2],
        }),
      ),
      '$.m[0].e[1]: an element appears twice',
    ],
    [
      'a dot outside the causal context',
      doc(set({ e: [['x', [0, 3]]], vv: [0, 2] })),
      '$.m[0].e[0][1]: a dot outside the causal context',
    ],
    [
      'a replica index out of range',
      doc(set({ e: [['x', [1, 1]]], vv: [0, 1] })),
      '$.m[0].e[0][1]: pair 0: replica index not in r',
    ],
    ['a zero dot counter', doc(set({ vv: [0, 0] })), '$.m[0].vv: pair 0: counter must be 1 to'],
    [
      'a dot counter past 2^53 - 1',
      doc(set({ vv: [0, 2 ** 53] })),
      '$.m[0].vv: pair 0: counter must be 1 to',
    ],
    [
      'an element of 1,025 bytes',
      doc(set({ e: [['x'.repeat(1025), [0, 1]]], vv: [0, 1] })),
      '$.m[0].e[0]: expected [element (0-1024 UTF-8 bytes',
    ],
    [
      'an element with a lone surrogate',
      doc(set({ e: [['\udc00', [0, 1]]], vv: [0, 1] })),
      '$.m[0].e[0]: expected [element',
    ],
    [
      'version 2: a cloud dot the version vector covers',
      doc2(set({ vv: [0, 3], c: [0, 2] })),
      '$.m[0].c: a dot the version vector or a horizon covers',
    ],
    [
      'version 2: a cloud dot that closes its gap',
      doc2(set({ vv: [0, 3], c: [0, 4] })),
      '$.m[0].c: a dot the version vector or a horizon covers',
    ],
    [
      'version 2: a cloud dot twice',
      doc2(set({ vv: [0, 3], c: [0, 6, 0, 6] })),
      '$.m[0].c: a dot appears twice',
    ],
    [
      'version 2: a cloud dot its horizon covers',
      doc2(set({ r: [EPOCH], c: [0, 5], z: { 'eu-central-1': 10 ** 9 } })),
      '$.m[0].c: a dot the version vector or a horizon covers',
    ],
    [
      'version 2: an odd cloud',
      doc2(set({ c: [0, 5, 0] })),
      '$.m[0].c: expected [replicaIndex, counter, ...] pairs',
    ],
    [
      'version 2: a scope (version 2 had none)',
      doc2(set({ s: ['x'] })),
      '$.m[0]: unexpected property; expected only t, a, r, e, vv, c, z',
    ],
    [
      'cloud dots as version 2 pairs',
      doc(set({ vv: [0, 3], c: [0, 5] })),
      '$.m[0].c: expected [replicaIndex, from, to, ...] triples',
    ],
    [
      'a cloud that is not a list',
      doc(set({ c: {} })),
      '$.m[0].c: expected [replicaIndex, from, to, ...] triples',
    ],
    [
      'a range with from above to',
      doc(set({ vv: [0, 3], c: [0, 9, 7] })),
      '$.m[0].c: range 0: from must not be above to',
    ],
    [
      'a range the version vector covers',
      doc(set({ vv: [0, 3], c: [0, 2, 3] })),
      "$.m[0].c: range 0: must start above the version vector's counter + 1",
    ],
    [
      'a range overlapping the version vector',
      doc(set({ vv: [0, 3], c: [0, 2, 8] })),
      "$.m[0].c: range 0: must start above the version vector's counter + 1",
    ],
    [
      'a range that meets vv + 1 (it belongs in vv)',
      doc(set({ vv: [0, 3], c: [0, 4, 8] })),
      "$.m[0].c: range 0: must start above the version vector's counter + 1",
    ],
    [
      'a range from dot 1 of a replica with no vector entry',
      doc(set({ c: [0, 1, 5] })),
      "$.m[0].c: range 0: must start above the version vector's counter + 1",
    ],
    [
      'overlapping ranges',
      doc(set({ c: [0, 3, 6, 0, 5, 9] })),
      "$.m[0].c: range 1: must start above the end + 1 of the replica's previous range",
    ],
    [
      'the same range twice',
      doc(set({ c: [0, 3, 6, 0, 3, 6] })),
      "$.m[0].c: range 1: must start above the end + 1 of the replica's previous range",
    ],
    [
      'adjacent ranges (they would be one)',
      doc(set({ c: [0, 3, 6, 0, 7, 9] })),
      "$.m[0].c: range 1: must start above the end + 1 of the replica's previous range",
    ],
    [
      'unsorted ranges',
      doc(set({ c: [0, 10, 12, 0, 3, 6] })),
      "$.m[0].c: range 1: must start above the end + 1 of the replica's previous range",
    ],
    [
      'unsorted ranges between another replica’s',
      doc(set({ r: ['eu-central-1', 'us-east-1'], c: [0, 10, 12, 1, 3, 4, 0, 3, 6] })),
      "$.m[0].c: range 2: must start above the end + 1 of the replica's previous range",
    ],
    [
      'a range from 0',
      doc(set({ c: [0, 0, 5] })),
      '$.m[0].c: range 0: counters must be 1 to 9007199254740991',
    ],
    [
      'a range past 2^53 - 1',
      doc(set({ c: [0, 5, 2 ** 53] })),
      '$.m[0].c: range 0: counters must be 1 to 9007199254740991',
    ],
    ['a fractional range end', doc(set({ c: [0, 5, 6.5] })), '$.m[0].c: range 0: counters must be 1 to'],
    [
      'a range of an unknown replica',
      doc(set({ c: [1, 5, 6] })),
      '$.m[0].c: range 0: replica index not in r',
    ],
    [
      'a range with a replica index as text',
      doc(set({ c: ['0', 5, 6] })),
      '$.m[0].c: range 0: replica index not in r',
    ],
    [
      'a range its horizon covers',
      doc(set({ r: [EPOCH], c: [0, 5, 6], z: { 'eu-central-1': 10 ** 9 } })),
      '$.m[0].c: range 0: a replica its horizon covers',
    ],
    ['an empty scope', doc(set({ s: [] })), '$.m[0].s: expected a non-empty list of elements'],
    ['a scope that is not a list', doc(set({ s: 'x' })), '$.m[0].s: expected a non-empty list of elements'],
    ['an unsorted scope', doc(set({ s: ['b', 'a'] })), '$.m[0].s[1]: elements must be distinct and sorted'],
    [
      'an element twice in the scope',
      doc(set({ s: ['a', 'a'] })),
      '$.m[0].s[1]: elements must be distinct and sorted',
    ],
    ['a scope element that is not text', doc(set({ s: ['a', 7] })), '$.m[0].s[1]: expected an element'],
    [
      'a scope element of 1,025 bytes',
      doc(set({ s: ['x'.repeat(1025)] })),
      '$.m[0].s[0]: expected an element (0-1024 UTF-8 bytes',
    ],
    [
      'a scope element with a lone surrogate',
      doc(set({ s: ['\ud800'] })),
      '$.m[0].s[0]: expected an element',
    ],
    [
      'an entry outside the scope',
      doc(set({ e: [['x', [0, 1]]], vv: [0, 1], s: ['y'] })),
      '$.m[0].e[0]: an element outside the scope s',
    ],
    [
      'a version vector entry its horizon covers',
      doc(set({ r: [EPOCH], vv: [0, 1], z: { 'eu-central-1': 10 ** 9 } })),
      '$.m[0].vv: a replica its horizon covers',
    ],
    [
      'a replica twice in r',
      doc(set({ r: ['a', 'a'] })),
      '$.m[0].r: expected a list of distinct replica ids',
    ],
    [
      'two variants of one type',
      doc({}).replace(
        /"f":\{.*\}\}\}$/,
        `"f":[${JSON.stringify({ ...counts({}), a: [1, 0, 'x'] })},${JSON.stringify({ ...counts({}), a: [1, 0, 'x'] })}]}}`,
      ),
      '$.m[0][1]: variants must have distinct types',
    ],
    [
      'a list of one variant',
      JSON.stringify({ v: 3, m: { f: [{ ...counts({}), a: [1, 0, 'x'] }] } }),
      '$.m[0]: expected one variant, or a list of 2-4',
    ],
    ['a field key with a control character', doc(counts({}), 'a\u0007b'), '$.m[0]: invalid field key'],
    ['a field key of 257 bytes', doc(counts({}), 'k'.repeat(257)), '$.m[0]: invalid field key'],
    ['a field key with a lone surrogate', doc(counts({}), '\ud83d'), '$.m[0]: invalid field key'],
    [
      'fields that are not an object',
      JSON.stringify({ v: 3, m: [] }),
      '$.m: expected an object of fields by key',
    ],
    [
      'another property beside v and m',
      JSON.stringify({ v: 3, m: {}, x: 1 }),
      '$: unexpected property; expected only v, m',
    ],
    ['text that is not JSON', '{"v":3,', '$: not valid JSON'],
    ['a value that is not text', 42 as unknown as string, '$: expected a JSON string, got number'],
  ])('%s', (_what, text, message) => {
    const error = thrown(text);
    expect(error).toBeInstanceOf(CrdtDecodeError);
    expect((error as Error).message).toContain(message);
  });

  it.each([
    ['an older version', 1, false],
    ['a newer version', 4, true],
    ['a much newer version', 1000, true],
    ['a version as text', '3', false],
    ['a fractional version', 2.5, false],
  ])('refuses %s, saying whether a later release may read it', (_what, v, newer) => {
    const error = thrown(JSON.stringify({ v, m: {} }));
    expect(error).toBeInstanceOf(UnsupportedVersionError);
    expect((error as UnsupportedVersionError).newer).toBe(newer);
  });
});

describe('decodeDocument accepts names of Object.prototype members as keys, replicas and elements', () => {
  it('reads them as data, and pollutes nothing', () => {
    const text = JSON.stringify({
      v: 2,
      m: {
        ['__proto__']: { a: [1, 0, 'constructor'], t: 'g', r: { constructor: 2, toString: 3 } },
        constructor: {
          a: [1, 0, '__proto__'],
          t: 'or',
          r: ['valueOf'],
          e: [['__proto__', [0, 1]]],
          vv: [0, 1],
          c: [],
        },
      },
    });
    expect(text).toContain('"__proto__":{');
    const decoded: CrdtDocument = decodeDocument(text);
    expect(readField(decoded.get('__proto__') as never)).toBe(5);
    expect(readField(decoded.get('constructor') as never)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).t).toBeUndefined();
    expect(encodeDocument(decodeDocument(encodeDocument(decoded)))).toBe(encodeDocument(decoded));
  });

  it('keeps a later epoch of a folded group', () => {
    const text = doc(counts({ [LATER]: 2 }, { 'eu-central-1': [10 ** 9, 5] }));
    expect(readField(decodeDocument(text).get('f') as never)).toBe(7);
  });
});

describe('decodeDocument reads version 2 (stored documents, messages sent before an upgrade)', () => {
  const R = ['eu-central-1', 'us-east-1'];
  const entries = [
    ['x', [0, 1]],
    ['y', [1, 5]],
  ];

  it('reads a version 2 cloud of dots, in whatever order, as the ranges version 3 writes', () => {
    const v2 = doc2(set({ r: R, e: entries, vv: [0, 1], c: [1, 9, 0, 4, 1, 5, 1, 3, 1, 6, 0, 3] }));
    const decoded = decodeDocument(v2);
    const variant = decoded.get('f')?.[0];
    expect(variant?.crdt.type).toBe('orset');
    if (variant?.crdt.type !== 'orset') return;
    expect([...variant.crdt.state.context.cloud].sort(([x], [y]) => (x < y ? -1 : 1))).toEqual([
      ['eu-central-1', [[3, 4]]],
      [
        'us-east-1',
        [
          [3, 3],
          [5, 6],
          [9, 9],
        ],
      ],
    ]);
    expect(variant.crdt.state.scope).toBeUndefined();
    expect(readField(decoded.get('f') as never)).toEqual(['x', 'y']);
    const v3 = encodeDocument(decoded);
    expect(v3).toContain('"v":3');
    expect(v3).toContain('"vv":[0,1],"c":[0,3,4,1,3,3,1,5,6,1,9,9]}');
    expect(encodeDocument(decodeDocument(v3))).toBe(v3);
  });

  it('folds version 2 cloud dots that meet the version vector only through each other', () => {
    // 3 and 4 beyond vv 1 stay a range; nothing version 2 carried is lost or invented
    const decoded = decodeDocument(doc2(set({ vv: [0, 1], c: [0, 4, 0, 3] })));
    const state = decoded.get('f')?.[0]?.crdt;
    expect(state?.type === 'orset' && [...state.state.context.cloud]).toEqual([['eu-central-1', [[3, 4]]]]);
    expect(state?.type === 'orset' && state.state.context.vv.get('eu-central-1')).toBe(1);
  });

  it('reads a version 3 scope and writes it back', () => {
    const text = doc(set({ e: [['x', [0, 1]]], vv: [0, 1], s: ['', 'x', 'y'] }));
    const decoded = decodeDocument(text);
    const state = decoded.get('f')?.[0]?.crdt;
    expect(state?.type === 'orset' && state.state.scope).toEqual(['', 'x', 'y']);
    const encoded = encodeDocument(decoded);
    expect(encoded).toContain('"c":[],"s":["","x","y"]}');
    expect(encodeDocument(decodeDocument(encoded))).toBe(encoded);
  });
});

describe('decoding errors never quote the input', () => {
  const MARK = 'hostile-MARK-4711';
  it.each([
    ['an unsorted scope', doc(set({ s: [`${MARK}b`, `${MARK}a`] }))],
    ['an entry outside the scope', doc(set({ e: [[MARK, [0, 1]]], vv: [0, 1], s: ['y'] }))],
    ['overlapping ranges', doc(set({ r: [`${MARK}`], c: [0, 3, 6, 0, 5, 9] }))],
  ])('%s', (_what, text) => {
    const error = thrown(text);
    expect(error).toBeInstanceOf(CrdtDecodeError);
    expect((error as Error).message).not.toContain('MARK');
  });
});
