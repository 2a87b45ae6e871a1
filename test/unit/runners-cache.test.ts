import { createHash } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { HandlerConfigError } from '../../runtime/lib/config';
import { LEAK_MARKER } from '../../runtime/lib/leak-check';
import {
  checksumSha256Base64,
  getCacheEntry,
  putCacheEntry,
  recordUploads,
  type CacheCoreDeps,
  type CacheEntry,
  type CacheIndex,
  type Presigner,
} from '../../runtime/runners/cache';
import {
  createCacheHandler,
  DynamoDbCacheIndex,
  loadCacheSettings,
  regionExpiryAttribute,
  S3Presigner,
  type CacheHandlerDeps,
} from '../../runtime/runners/cache/handler';
import { checkCacheToken, issueCacheToken } from '../../runtime/runners/cache-token';
import { parseRunnerConfig } from '../../runtime/runners/config';

const KEY = 'cache-token-key-for-unit-tests-0123456789';
const NOW = 1_700_000_000;
const DAY = 86_400;
const EU = 'eu-central-1';
const US = 'us-east-1';
const AP = 'ap-southeast-2';
const BUCKETS = new Map([
  [EU, 'cache-eu'],
  [US, 'cache-us'],
  [AP, 'cache-ap'],
]);
const CONTENT = 'a build artifact';
const HASH = createHash('sha256').update(CONTENT).digest('hex');

const runners = {
  regions: [
    { region: EU, priority: 1, capacity: 10 },
    { region: US, priority: 2, capacity: 10 },
    { region: AP, priority: 3, capacity: 10 },
  ],
  runnerTypes: [{ name: 'standard', labels: ['self-hosted', 'linux'] }],
  // nearest first, not by priority: from eu-central-1, ap-southeast-2 is declared nearer than us-east-1
  cacheDistance: { [EU]: [AP, US], [US]: [EU, AP], [AP]: [US, EU] },
};
const CONFIG = parseRunnerConfig(runners);

const bearer = (organization = 'acme', expiresAt = NOW + 3_600) =>
  `Bearer ${issueCacheToken(KEY, { organization, repository: `${organization}/app`, jobId: 7 }, expiresAt)}`;

/** The index as a map of items with the table's semantics (a set of regions, per-region expiry). */
class MemoryIndex implements CacheIndex {
  readonly items = new Map<
    string,
    { regions: Set<string>; bytes: number; expiresAtSec: number; perRegion: Map<string, number> }
  >();
  failOn: string | undefined;

  async get(key: string): Promise<CacheEntry | undefined> {
    const item = this.items.get(key);
    if (!item) return undefined;
    return {
      regions: [...item.regions],
      bytes: item.bytes,
      expiresAtSec: item.expiresAtSec,
      regionExpiresAtSec: new Map(item.perRegion),
    };
  }

  async recordUpload(key: string, region: string, bytes: number, expiresAtSec: number): Promise<void> {
    if (this.failOn === key)
      throw Object.assign(new Error(`throttled ${key}`), { name: 'ThrottlingException' });
    const item = this.items.get(key) ?? { regions: new Set(), bytes, expiresAtSec, perRegion: new Map() };
    item.regions.add(region);
    item.bytes = bytes;
    item.expiresAtSec = expiresAtSec;
    item.perRegion.set(region, expiresAtSec);
    this.items.set(key, item);
  }

  /** An entry as another region's function would have recorded it. */
  hold(key: string, regions: readonly string[], expiresAtSec = NOW + 29 * DAY): void {
    for (const region of regions) void this.recordUpload(key, region, 16, expiresAtSec);
  }
}

class FakePresigner implements Presigner {
  readonly calls: unknown[][] = [];
  async getUrl(region: string, bucket: string, objectKey: string, ttlSec: number): Promise<string> {
    this.calls.push(['get', region, bucket, objectKey, ttlSec]);
    return `https://${bucket}.s3.${region}.example/${objectKey}?get`;
  }
  async putUrl(...args: [string, string, string, string, number, number?]): Promise<string> {
    this.calls.push(['put', ...args]);
    return `https://${args[1]}.s3.${args[0]}.example/${args[2]}?put`;
  }
}

function core(region = EU, overrides: Partial<CacheCoreDeps> = {}) {
  const index = new MemoryIndex();
  const presigner = new FakePresigner();
  const deps: CacheCoreDeps = {
    region,
    cacheDistance: CONFIG.cacheDistance,
    buckets: BUCKETS,
    index,
    presigner,
    tokens: { check: async (token, nowSec) => checkCacheToken([KEY], token, nowSec) },
    nowSec: () => NOW,
    urlTtlSec: 300,
    expireDays: 30,
    ...overrides,
  };
  return { deps, index, presigner };
}

const bodyOf = (answer: { response: { body: string } }) =>
  JSON.parse(answer.response.body) as Record<string, unknown>;

describe('GET /cache/{hash}', () => {
  it('answers a presigned GET from this region when it holds the object', async () => {
    const { deps, index, presigner } = core();
    index.hold(`acme/${HASH}`, [US, EU]);
    const answer = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect(answer.outcome).toBe('hit-local');
    expect(answer.response.statusCode).toBe(200);
    expect(bodyOf(answer)).toEqual({
      url: `https://cache-eu.s3.${EU}.example/acme/${HASH}?get`,
      region: EU,
      expiresInSec: 300,
    });
    expect(presigner.calls).toEqual([['get', EU, 'cache-eu', `acme/${HASH}`, 300]]);
  });

  it('answers from the nearest region holding it, in the configured distance order', async () => {
    const { deps, index } = core();
    index.hold(`acme/${HASH}`, [US, AP]);
    const nearest = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([nearest.outcome, nearest.region]).toEqual(['hit-remote', AP]);
    expect(bodyOf(nearest)).toMatchObject({ region: AP, url: expect.stringContaining('cache-ap') });

    // ap-southeast-2 does not hold the next one: skipped for us-east-1
    const other = createHash('sha256').update('other').digest('hex');
    index.hold(`acme/${other}`, [US]);
    const next = await getCacheEntry({ authorization: bearer(), hash: other }, deps);
    expect([next.outcome, next.region]).toEqual(['hit-remote', US]);

    // from us-east-1 the order is eu-central-1 first
    const fromUs = core(US);
    fromUs.index.hold(`acme/${HASH}`, [AP, EU]);
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, fromUs.deps)).region).toBe(EU);
  });

  it('answers 404 when no region holds it, or only regions not configured', async () => {
    const { deps, index, presigner } = core();
    const missing = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([missing.response.statusCode, bodyOf(missing), missing.outcome]).toEqual([
      404,
      { error: 'not-found' },
      'miss',
    ]);
    index.hold(`acme/${HASH}`, ['sa-east-1']);
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).response.statusCode).toBe(
      404,
    );
    expect(presigner.calls).toEqual([]);
  });

  it('ignores an entry past its expiry, and a region past its own', async () => {
    const { deps, index } = core();
    index.hold(`acme/${HASH}`, [EU], NOW); // expired at NOW (DynamoDB deletes it later)
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).outcome).toBe('miss');
    index.hold(`acme/${HASH}`, [US], NOW + DAY); // the item lives on, eu-central-1's object does not
    const answer = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([answer.outcome, answer.region]).toEqual(['hit-remote', US]);
  });

  it('scopes entries to the organisation of the token', async () => {
    const { deps, index, presigner } = core();
    index.hold(`other/${HASH}`, [EU]);
    expect(
      (await getCacheEntry({ authorization: bearer('acme'), hash: HASH }, deps)).response.statusCode,
    ).toBe(404);
    const own = await getCacheEntry({ authorization: bearer('other'), hash: HASH }, deps);
    expect(own.response.statusCode).toBe(200);
    expect(presigner.calls).toEqual([['get', EU, 'cache-eu', `other/${HASH}`, 300]]);
  });

  it('answers 400 for a hash that is not 64 lowercase hex', async () => {
    const { deps, index } = core();
    index.hold(`acme/${HASH.toUpperCase()}`, [EU]);
    for (const hash of [
      HASH.toUpperCase(),
      HASH.slice(1),
      `${HASH}0`,
      `${HASH.slice(1)}g`,
      '',
      undefined,
      `../${HASH.slice(3)}`,
      `${LEAK_MARKER}`,
    ]) {
      const answer = await getCacheEntry({ authorization: bearer(), hash }, deps);
      expect([answer.response.statusCode, answer.outcome]).toEqual([400, 'bad-request']);
      expect(answer.response.body).toContain('hash: expected 64 lowercase hexadecimal characters');
      expect(answer.response.body).not.toContain(LEAK_MARKER);
    }
  });

  it('answers 401 for a missing or invalid token, before looking at the hash', async () => {
    const { deps, index, presigner } = core();
    index.hold(`acme/${HASH}`, [EU]);
    const other = `Bearer ${issueCacheToken('another-key-of-at-least-32-bytes!!', { organization: 'acme', repository: 'acme/app', jobId: 7 }, NOW + 60)}`;
    const cases: [string | undefined, string][] = [
      [undefined, 'missing'],
      ['', 'missing'],
      ['Basic dXNlcjpwYXNz', 'format'],
      ['Bearer', 'format'],
      ['Bearer a b', 'format'],
      [`Bearer ${'x'.repeat(5_000)}`, 'format'],
      [`Bearer ${LEAK_MARKER}`, 'format'],
      [bearer('acme', NOW), 'expired'],
      [other, 'signature'],
    ];
    for (const [authorization, refusal] of cases)
      for (const hash of [HASH, 'not-a-hash']) {
        const answer = await getCacheEntry(
          { ...(authorization === undefined ? {} : { authorization }), hash },
          deps,
        );
        expect([answer.response.statusCode, answer.refusal]).toEqual([401, refusal]);
        expect(answer.response.headers['www-authenticate']).toBe('Bearer realm="runner-cache"');
        expect(answer.response.body).toBe('{"error":"unauthorized"}');
        const put = await putCacheEntry(
          { ...(authorization === undefined ? {} : { authorization }), hash },
          deps,
        );
        expect(put.response.statusCode).toBe(401);
      }
    expect(presigner.calls).toEqual([]);
    // the scheme is case-insensitive, as HTTP says
    expect(
      (await getCacheEntry({ authorization: bearer().replace('Bearer', 'bearer'), hash: HASH }, deps))
        .response.statusCode,
    ).toBe(200);
  });
});

describe('PUT /cache/{hash}', () => {
  it("answers a presigned PUT into this region's bucket, with the checksum header the client must send", async () => {
    const { deps, presigner } = core(US);
    const answer = await putCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([answer.response.statusCode, answer.outcome, answer.region]).toEqual([200, 'upload-url', US]);
    expect(bodyOf(answer)).toEqual({
      url: `https://cache-us.s3.${US}.example/acme/${HASH}?put`,
      expiresInSec: 300,
      headers: { 'x-amz-checksum-sha256': createHash('sha256').update(CONTENT).digest('base64') },
    });
    expect(presigner.calls).toEqual([['put', US, 'cache-us', `acme/${HASH}`, HASH, 300, undefined]]);
  });

  it('binds a declared size as a signed content-length', async () => {
    const { deps, presigner } = core();
    const answer = await putCacheEntry({ authorization: bearer(), hash: HASH, body: '{"bytes":16}' }, deps);
    expect(bodyOf(answer).headers).toEqual({
      'x-amz-checksum-sha256': checksumSha256Base64(HASH),
      'content-length': '16',
    });
    expect(presigner.calls[0]?.at(-1)).toBe(16);
    for (const body of ['', '  ', '{}'])
      expect(
        (await putCacheEntry({ authorization: bearer(), hash: HASH, body }, deps)).response.statusCode,
      ).toBe(200);
  });

  it('refuses a body that is not a size from 1 byte to 5 GiB, naming the field', async () => {
    const { deps, presigner } = core();
    const bodies = [
      '{"bytes":0}',
      `{"bytes":${5 * 1024 ** 3 + 1}}`,
      '{"bytes":1.5}',
      '{"bytes":"16"}',
      '{"bytes":16,"extra":1}',
      '{"__proto__":{"bytes":1}}',
      '[16]',
      `${LEAK_MARKER}`,
      '{"bytes":1e400}',
    ];
    for (const body of bodies) {
      const answer = await putCacheEntry({ authorization: bearer(), hash: HASH, body }, deps);
      expect([body, answer.response.statusCode]).toEqual([body, 400]);
      expect(answer.response.body).toMatch(/"reason":"body: expected/);
      expect(answer.response.body).not.toContain(LEAK_MARKER);
    }
    const large = await putCacheEntry({ authorization: bearer(), hash: HASH, body: ' '.repeat(1_025) }, deps);
    expect(large.response.statusCode).toBe(413);
    expect(presigner.calls).toEqual([]);
  });

  it('scopes the object key to the organisation and refuses a bad hash', async () => {
    const { deps, presigner } = core();
    await putCacheEntry({ authorization: bearer('other'), hash: HASH }, deps);
    expect(presigner.calls[0]?.[3]).toBe(`other/${HASH}`);
    expect(
      (await putCacheEntry({ authorization: bearer(), hash: HASH.toUpperCase() }, deps)).response.statusCode,
    ).toBe(400);
  });
});

/** An S3 `ObjectCreated:Put` record as the bucket notification delivers it. */
const s3Record = (key: string, overrides: Record<string, unknown> = {}) => ({
  eventVersion: '2.1',
  eventSource: 'aws:s3',
  awsRegion: EU,
  eventTime: '2023-11-14T22:13:20.000Z',
  eventName: 'ObjectCreated:Put',
  s3: { bucket: { name: 'cache-eu' }, object: { key, size: 16, eTag: 'x' } },
  ...overrides,
});

describe('S3 event records', () => {
  it('records this region for an upload, expiring a day before the lifecycle removes it', async () => {
    const { deps, index } = core();
    const report = await recordUploads([s3Record(`acme/${HASH}`)], deps);
    expect(report).toEqual({ recorded: 1, refused: [], failed: [] });
    expect(await index.get(`acme/${HASH}`)).toEqual({
      regions: [EU],
      bytes: 16,
      expiresAtSec: NOW + 29 * DAY,
      regionExpiresAtSec: new Map([[EU, NOW + 29 * DAY]]),
    });
    // and a GET then answers it from here
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).outcome).toBe('hit-local');
  });

  it('is idempotent, and adds regions to the set', async () => {
    const { deps, index } = core();
    await recordUploads([s3Record(`acme/${HASH}`), s3Record(`acme/${HASH}`)], deps);
    await recordUploads([s3Record(`acme/${HASH}`)], deps);
    await recordUploads(
      [
        s3Record(`acme/${HASH}`, {
          awsRegion: US,
          s3: { bucket: { name: 'cache-us' }, object: { key: `acme/${HASH}`, size: 16 } },
        }),
      ],
      { ...deps, region: US },
    );
    expect((await index.get(`acme/${HASH}`))?.regions).toEqual([EU, US]);
  });

  it('decodes URL-encoded keys as S3 sends them', async () => {
    const { deps, index } = core();
    const report = await recordUploads([s3Record(`%61cme%2D1/${HASH}`)], deps);
    expect(report.recorded).toBe(1);
    expect(index.items.has(`acme-1/${HASH}`)).toBe(true);
  });

  it('refuses records that are not uploads of this cache with a bounded reason, never throwing', async () => {
    const { deps, index } = core();
    const bad: [unknown, RegExp][] = [
      [s3Record(`acme/${HASH.toUpperCase()}`), /^s3\.object\.key: expected <organisation>\/<sha256>/],
      [s3Record(`acme/${HASH}/x`), /^s3\.object\.key/],
      [s3Record(`a/b/${HASH}`), /^s3\.object\.key/],
      [s3Record(`my+org/${HASH}`), /^s3\.object\.key/], // `+` is a space
      [s3Record(`${LEAK_MARKER}%E0%A4%A/${HASH}`), /^s3\.object\.key: expected a URL-encoded key/],
      [s3Record(HASH), /^s3\.object\.key/],
      [s3Record(''), /^s3\.object\.key: expected a key of 1 to/],
      [s3Record('x'.repeat(4_000)), /^s3\.object\.key: expected a key of 1 to/],
      [s3Record(`acme/${HASH}`, { eventName: 'ObjectRemoved:Delete' }), /^eventName/],
      [s3Record(`acme/${HASH}`, { eventSource: 'aws:sqs' }), /^eventSource/],
      [s3Record(`acme/${HASH}`, { awsRegion: US }), /^awsRegion/],
      [
        s3Record(`acme/${HASH}`, {
          s3: { bucket: { name: 'cache-us' }, object: { key: `acme/${HASH}`, size: 1 } },
        }),
        /^s3\.bucket\.name/,
      ],
      [
        s3Record(`acme/${HASH}`, { s3: { bucket: { name: 'cache-eu' }, object: { key: `acme/${HASH}` } } }),
        /^s3\.object\.size/,
      ],
      [
        s3Record(`acme/${HASH}`, {
          s3: { bucket: { name: 'cache-eu' }, object: { key: `acme/${HASH}`, size: -1 } },
        }),
        /^s3\.object\.size/,
      ],
      [
        JSON.parse(
          `{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","awsRegion":"${EU}","s3":{"__proto__":{"bucket":{"name":"cache-eu"}}}}`,
        ),
        /^s3\.bucket\.name/,
      ],
      [null, /^eventSource/],
      ['a string', /^eventSource/],
      [42, /^eventSource/],
      [[], /^eventSource/],
    ];
    const report = await recordUploads([...bad.map(([record]) => record), s3Record(`acme/${HASH}`)], deps);
    expect(report.recorded).toBe(1);
    expect(report.failed).toEqual([]);
    expect(report.refused.map((r) => r.record)).toEqual(bad.map((_, i) => i));
    report.refused.forEach((r, i) => expect(r.reason).toMatch((bad[i] as [unknown, RegExp])[1]));
    expect(JSON.stringify(report)).not.toContain(LEAK_MARKER);
    expect([...index.items.keys()]).toEqual([`acme/${HASH}`]);
  });

  it('reports an index failure by its error name and goes on with the other records', async () => {
    const { deps, index } = core();
    const other = createHash('sha256').update('other').digest('hex');
    index.failOn = `acme/${HASH}`;
    const report = await recordUploads([s3Record(`acme/${HASH}`), s3Record(`acme/${other}`)], deps);
    expect(report).toEqual({
      recorded: 1,
      refused: [],
      failed: [{ record: 0, reason: 'index update failed: ThrottlingException' }],
    });
  });
});

describe('S3Presigner (the real presigner, static fake credentials, no network)', () => {
  const presigner = new S3Presigner(
    (region) =>
      new S3Client({
        region,
        credentials: { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'fake-secret' },
      }),
  );

  it('signs the SHA-256 checksum as a header of the PUT, not a query parameter', async () => {
    const url = new URL(await presigner.putUrl(EU, 'cache-eu', `acme/${HASH}`, HASH, 300));
    const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
    expect(signed).toContain('x-amz-checksum-sha256');
    expect(signed).toContain('host');
    expect([...url.searchParams.keys()].map((k) => k.toLowerCase())).not.toContain('x-amz-checksum-sha256');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(url.searchParams.get('X-Amz-Credential')).toContain(`/${EU}/s3/aws4_request`);
    expect(url.hostname).toContain(EU);
    expect(url.pathname).toContain(`acme/${HASH}`);
  });

  it('signs the declared size as content-length', async () => {
    const url = new URL(await presigner.putUrl(US, 'cache-us', `acme/${HASH}`, HASH, 60, 16));
    const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
    expect(signed).toEqual(expect.arrayContaining(['content-length', 'host', 'x-amz-checksum-sha256']));
    expect(url.hostname).toContain(US);
  });

  it('presigns a GET in the region of the bucket', async () => {
    const url = new URL(await presigner.getUrl(AP, 'cache-ap', `acme/${HASH}`, 120));
    expect(url.hostname).toContain(AP);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(url.searchParams.get('x-id')).toBe('GetObject');
  });
});

describe('DynamoDbCacheIndex', () => {
  function fakeDynamo(item?: Record<string, unknown>) {
    const sent: { name: string; input: Record<string, unknown> }[] = [];
    const client = {
      send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
        sent.push({ name: command.constructor.name, input: command.input });
        return item === undefined ? {} : { Item: item };
      },
    };
    return { sent, client: client as unknown as ConstructorParameters<typeof DynamoDbCacheIndex>[0] };
  }

  it('adds the region to the string set with its own expiry and the item TTL', async () => {
    const { sent, client } = fakeDynamo();
    await new DynamoDbCacheIndex(client, 'cache-index', () => 1_700_000_000_123).recordUpload(
      `acme/${HASH}`,
      EU,
      16,
      NOW,
    );
    expect(sent).toEqual([
      {
        name: 'UpdateItemCommand',
        input: {
          TableName: 'cache-index',
          Key: { cacheKey: { S: `acme/${HASH}` } },
          UpdateExpression:
            'ADD #regions :region SET #bytes = :bytes, #updatedAt = :updatedAt, #expiresAt = :expiresAt, #regionExpiresAt = :expiresAt',
          ExpressionAttributeNames: {
            '#regions': 'regions',
            '#bytes': 'bytes',
            '#updatedAt': 'updatedAt',
            '#expiresAt': 'expiresAt',
            '#regionExpiresAt': `expiresAt:${EU}`,
          },
          ExpressionAttributeValues: {
            ':region': { SS: [EU] },
            ':bytes': { N: '16' },
            ':updatedAt': { N: '1700000000123' },
            ':expiresAt': { N: String(NOW) },
          },
        },
      },
    ]);
  });

  it('reads the regions, the size and the expiries, skipping what is not a region', async () => {
    const { client } = fakeDynamo({
      cacheKey: { S: `acme/${HASH}` },
      regions: { SS: [EU, US, 'not a region'] },
      bytes: { N: '16' },
      expiresAt: { N: String(NOW + DAY) },
      [regionExpiryAttribute(EU)]: { N: String(NOW) },
      [regionExpiryAttribute(US)]: { N: 'NaN' },
    });
    expect(await new DynamoDbCacheIndex(client, 't').get(`acme/${HASH}`)).toEqual({
      regions: [EU, US],
      bytes: 16,
      expiresAtSec: NOW + DAY,
      regionExpiresAtSec: new Map([[EU, NOW]]),
    });
    expect(await new DynamoDbCacheIndex(fakeDynamo().client, 't').get('x')).toBeUndefined();
  });
});

const ENV = {
  AWS_REGION: EU,
  RUNNERS_CONFIG: JSON.stringify(runners),
  CACHE_INDEX_TABLE: 'artifact-cache-index',
  CACHE_BUCKETS: JSON.stringify(Object.fromEntries(BUCKETS)),
  CACHE_TOKEN_SECRET_ID: 'runner-cache-token',
};

describe('loadCacheSettings', () => {
  it('reads every setting, with defaults', () => {
    const settings = loadCacheSettings(ENV);
    expect(settings).toMatchObject({
      region: EU,
      table: 'artifact-cache-index',
      tokenSecretId: 'runner-cache-token',
      urlTtlSec: 300,
      expireDays: 30,
    });
    expect(settings.buckets).toEqual(BUCKETS);
    expect(settings.config.cacheDistance[EU]).toEqual([AP, US]);
    expect(loadCacheSettings({ ...ENV, CACHE_URL_TTL_SEC: '60', CACHE_EXPIRE_DAYS: '7' })).toMatchObject({
      urlTtlSec: 60,
      expireDays: 7,
    });
  });

  const problemsOf = (env: Record<string, string>): string[] => {
    try {
      loadCacheSettings(env);
    } catch (error) {
      expect(error).toBeInstanceOf(HandlerConfigError);
      return [...(error as HandlerConfigError).problems];
    }
    return [];
  };

  it('names every missing setting at once', () => {
    const problems = problemsOf({});
    for (const name of [
      'AWS_REGION',
      'RUNNERS_CONFIG',
      'CACHE_INDEX_TABLE',
      'CACHE_BUCKETS',
      'CACHE_TOKEN_SECRET_ID',
    ])
      expect(problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
  });

  it('requires the bucket of every configured region and no other, never quoting a value', () => {
    const withoutAp = Object.fromEntries([...BUCKETS].filter(([region]) => region !== AP));
    const problems = problemsOf({
      ...ENV,
      CACHE_BUCKETS: JSON.stringify({ ...withoutAp, [US]: `${LEAK_MARKER}_Bad`, 'sa-east-1': 'cache-sa' }),
      CACHE_URL_TTL_SEC: '5',
      CACHE_EXPIRE_DAYS: '1',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        `CACHE_BUCKETS.${US}: expected an S3 bucket name`,
        `CACHE_BUCKETS.${AP}: expected the cache bucket of every configured region`,
        'CACHE_BUCKETS: expected keys among the configured regions',
      ]),
    );
    expect(problems.some((p) => p.startsWith('CACHE_URL_TTL_SEC:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('CACHE_EXPIRE_DAYS:'))).toBe(true);
    expect(problems.join('\n')).not.toContain(LEAK_MARKER);
    expect(problemsOf({ ...ENV, CACHE_BUCKETS: `${LEAK_MARKER}` })).toEqual([
      'CACHE_BUCKETS: expected a JSON object of region -> bucket name',
    ]);
    expect(problemsOf({ ...ENV, CACHE_BUCKETS: '["cache-eu"]' })).toEqual([
      'CACHE_BUCKETS: expected a JSON object of region -> bucket name',
    ]);
  });

  it('refuses a region outside the configuration and a bad runner configuration', () => {
    expect(problemsOf({ ...ENV, AWS_REGION: 'sa-east-1' })).toEqual([
      'AWS_REGION: expected one of the configured regions',
    ]);
    expect(problemsOf({ ...ENV, RUNNERS_CONFIG: `{${LEAK_MARKER}` })).toEqual([
      'RUNNERS_CONFIG: expected the runner configuration as JSON',
    ]);
  });
});

describe('the cache handler', () => {
  function handlerWith(overrides: Partial<CacheHandlerDeps> = {}) {
    const { deps, index, presigner } = core();
    const logs: string[] = [];
    const metrics: [string, number][] = [];
    let published = 0;
    const log = (level: string) => (message: string, extra: Record<string, unknown>) =>
      void logs.push(JSON.stringify({ level, message, ...extra }));
    const handler = createCacheHandler({
      settings: loadCacheSettings(ENV),
      index,
      presigner,
      tokens: deps.tokens,
      nowMs: () => NOW * 1000,
      logger: { info: log('info'), warn: log('warn'), error: log('error') },
      metrics: {
        addMetric: (name, _unit, value) => void metrics.push([name, value]),
        publishStoredMetrics: () => void (published += 1),
      },
      ...overrides,
    });
    return { handler, index, presigner, logs, metrics, published: () => published };
  }

  const http = (routeKey: string, extra: Record<string, unknown> = {}) => ({
    version: '2.0',
    routeKey,
    rawPath: `/cache/${HASH}`,
    headers: { authorization: bearer(), 'content-type': 'application/json' },
    pathParameters: { hash: HASH },
    requestContext: { http: { method: routeKey.split(' ')[0] } },
    isBase64Encoded: false,
    ...extra,
  });

  it('routes GET and PUT by routeKey, counts outcomes and logs the job, never the token', async () => {
    const { handler, index, logs, metrics, published } = handlerWith();
    const token = bearer();
    expect(await handler(http('GET /cache/{hash}', { headers: { authorization: token } }))).toMatchObject({
      statusCode: 404,
    });
    index.hold(`acme/${HASH}`, [EU]);
    expect(await handler(http('GET /cache/{hash}'))).toMatchObject({ statusCode: 200 });
    const put = await handler(
      http('PUT /cache/{hash}', {
        body: Buffer.from('{"bytes":16}').toString('base64'),
        isBase64Encoded: true,
      }),
    );
    expect(put).toMatchObject({ statusCode: 200 });
    expect(JSON.parse((put as { body: string }).body).headers['content-length']).toBe('16');
    expect(metrics).toEqual([
      ['CacheMiss', 1],
      ['CacheHitLocal', 1],
      ['CacheUploadUrl', 1],
    ]);
    expect(published()).toBe(3);
    expect(logs[0]).toContain('"organization":"acme","repository":"acme/app","jobId":7');
    expect(logs.join('\n')).not.toContain(token.slice(7));
  });

  it('answers 404 for another route, and 503 without details when a dependency fails', async () => {
    const { handler, logs } = handlerWith({
      index: {
        get: async () => {
          throw new Error(`arn:aws:dynamodb:${EU}:123456789012:table/${LEAK_MARKER}`);
        },
        recordUpload: async () => undefined,
      },
    });
    expect(await handler(http('POST /cache/{hash}'))).toMatchObject({ statusCode: 404 });
    const failed = await handler(http('GET /cache/{hash}'));
    expect(failed).toMatchObject({ statusCode: 503, body: '{"error":"unavailable"}' });
    expect(logs.join('\n')).not.toContain(LEAK_MARKER);
    expect(logs.join('\n')).not.toContain('123456789012');
  });

  it('records S3 event records and refuses bad ones without failing the invocation', async () => {
    const { handler, index, metrics, logs } = handlerWith();
    const report = await handler({ Records: [s3Record(`acme/${HASH}`), s3Record(`${LEAK_MARKER}/x`)] });
    expect(report).toMatchObject({ recorded: 1, refused: [{ record: 1 }] });
    expect(index.items.has(`acme/${HASH}`)).toBe(true);
    expect(metrics).toEqual([
      ['CacheUploadRecorded', 1],
      ['CacheRecordRefused', 1],
    ]);
    expect(logs.join('\n')).not.toContain(LEAK_MARKER);
  });

  it('fails the invocation when the index did not take an upload, so that S3 retries it', async () => {
    const { handler, index, logs } = handlerWith();
    index.failOn = `acme/${HASH}`;
    const error = (await Promise.resolve(handler({ Records: [s3Record(`acme/${HASH}`)] })).catch(
      (e: Error) => e,
    )) as Error;
    expect(error.message).toBe('cache index update failed for 1 of 1 records');
    expect(logs.join('\n')).toContain('ThrottlingException');
    expect(logs.join('\n')).not.toContain(HASH.toUpperCase());
  });

  it('ignores an event it does not know, without throwing', async () => {
    const { handler, logs } = handlerWith();
    for (const event of [undefined, null, 'x', {}, { source: 'aws.events' }])
      expect(await handler(event)).toBeUndefined();
    expect(logs.every((l) => l.includes('event ignored'))).toBe(true);
  });
});
