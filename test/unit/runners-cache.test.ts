import { createHash } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { HandlerConfigError } from '../../runtime/lib/config';
import { LEAK_MARKER } from '../../runtime/lib/leak-check';
import {
  BatchGetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  checksumSha256Base64,
  getCacheEntry,
  MIN_TOKEN_REMAINING_SEC,
  putCacheEntry,
  recordUploads,
  type CacheCopy,
  type CacheCoreDeps,
  type CacheIndex,
  type Presigner,
} from '../../runtime/runners/cache';
import {
  CacheIndexUnreadError,
  createCacheHandler,
  DynamoDbCacheIndex,
  loadCacheSettings,
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

const bearer = (organization = 'acme', expiresAt = NOW + 3_600, name = 'app') =>
  `Bearer ${issueCacheToken(KEY, { organization, repository: `${organization}/${name}`, jobId: 7 }, expiresAt)}`;
/** The entry of HASH for the default token's repository. */
const ENTRY = `acme/app/${HASH}`;

/** The index as its items, one per (entry, region), keyed `<entry>#<region>` as the table is. */
class MemoryIndex implements CacheIndex {
  readonly items = new Map<string, CacheCopy>();
  readonly reads: { entry: string; regions: readonly string[] }[] = [];
  failOn: string | undefined;

  async copies(entry: string, regions: readonly string[]): Promise<readonly CacheCopy[]> {
    this.reads.push({ entry, regions: [...regions] });
    return regions.flatMap((region) => {
      const copy = this.items.get(`${entry}#${region}`);
      return copy ? [copy] : [];
    });
  }

  async recordUpload(entry: string, region: string, bytes: number, expiresAtSec: number): Promise<void> {
    if (this.failOn === entry)
      throw Object.assign(new Error(`throttled ${entry}`), { name: 'ThrottlingException' });
    this.items.set(`${entry}#${region}`, { region, bytes, expiresAtSec });
  }

  /** An entry as other regions' functions would have recorded it. */
  hold(entry: string, regions: readonly string[], expiresAtSec = NOW + 29 * DAY): void {
    for (const region of regions) void this.recordUpload(entry, region, 16, expiresAtSec);
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
    index.hold(ENTRY, [US, EU]);
    const answer = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect(answer.outcome).toBe('hit-local');
    expect(answer.response.statusCode).toBe(200);
    expect(bodyOf(answer)).toEqual({
      url: `https://cache-eu.s3.${EU}.example/acme/app/${HASH}?get`,
      region: EU,
      expiresInSec: 300,
    });
    expect(presigner.calls).toEqual([['get', EU, 'cache-eu', `acme/app/${HASH}`, 300]]);
    // One read of every configured region's item, this region first.
    expect(index.reads).toEqual([{ entry: ENTRY, regions: [EU, AP, US] }]);
  });

  it('answers from the nearest region holding it, in the configured distance order', async () => {
    const { deps, index } = core();
    index.hold(ENTRY, [US, AP]);
    const nearest = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([nearest.outcome, nearest.region]).toEqual(['hit-remote', AP]);
    expect(bodyOf(nearest)).toMatchObject({ region: AP, url: expect.stringContaining('cache-ap') });

    // ap-southeast-2 does not hold the next one: skipped for us-east-1
    const other = createHash('sha256').update('other').digest('hex');
    index.hold(`acme/app/${other}`, [US]);
    const next = await getCacheEntry({ authorization: bearer(), hash: other }, deps);
    expect([next.outcome, next.region]).toEqual(['hit-remote', US]);

    // from us-east-1 the order is eu-central-1 first
    const fromUs = core(US);
    fromUs.index.hold(ENTRY, [AP, EU]);
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
    index.hold(ENTRY, ['sa-east-1']);
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).response.statusCode).toBe(
      404,
    );
    expect(presigner.calls).toEqual([]);
  });

  it("ignores a region's copy past its own expiry, whatever other regions hold", async () => {
    const { deps, index } = core();
    index.hold(ENTRY, [EU], NOW); // expired at NOW (DynamoDB deletes it later)
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).outcome).toBe('miss');
    index.hold(ENTRY, [US], NOW + DAY); // us-east-1's copy lives on, eu-central-1's does not
    const answer = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect([answer.outcome, answer.region]).toEqual(['hit-remote', US]);
  });

  it('scopes entries to the repository of the token: another repository of the same organisation gets 404', async () => {
    const { deps, index, presigner } = core();
    index.hold(ENTRY, [EU]);
    // A fork's CI in the same organisation, knowing the hash.
    const fork = await getCacheEntry(
      { authorization: bearer('acme', NOW + 3_600, 'app-fork'), hash: HASH },
      deps,
    );
    expect([fork.response.statusCode, fork.outcome]).toEqual([404, 'miss']);
    expect(
      (await getCacheEntry({ authorization: bearer('other'), hash: HASH }, deps)).response.statusCode,
    ).toBe(404);
    expect(presigner.calls).toEqual([]);
    const own = await getCacheEntry({ authorization: bearer(), hash: HASH }, deps);
    expect(own.response.statusCode).toBe(200);
    expect(presigner.calls).toEqual([['get', EU, 'cache-eu', `acme/app/${HASH}`, 300]]);
  });

  it('never presigns a URL that outlives the token: its lifetime is what is left of it when shorter', async () => {
    const { deps, index, presigner } = core();
    index.hold(ENTRY, [EU]);
    const get = await getCacheEntry({ authorization: bearer('acme', NOW + 120), hash: HASH }, deps);
    expect(bodyOf(get).expiresInSec).toBe(120);
    const put = await putCacheEntry({ authorization: bearer('acme', NOW + 42), hash: HASH }, deps);
    expect(bodyOf(put).expiresInSec).toBe(42);
    const long = await getCacheEntry({ authorization: bearer('acme', NOW + 301), hash: HASH }, deps);
    expect(bodyOf(long).expiresInSec).toBe(300);
    expect(presigner.calls.map((call) => call.at(call[0] === 'get' ? 4 : 5))).toEqual([120, 42, 300]);
  });

  it(`refuses a token with less than ${MIN_TOKEN_REMAINING_SEC} s left as expired, and takes one with exactly that`, async () => {
    const { deps, index, presigner } = core();
    index.hold(ENTRY, [EU]);
    for (const left of [1, MIN_TOKEN_REMAINING_SEC - 1]) {
      const get = await getCacheEntry({ authorization: bearer('acme', NOW + left), hash: HASH }, deps);
      expect([get.response.statusCode, get.refusal]).toEqual([401, 'expired']);
      const put = await putCacheEntry({ authorization: bearer('acme', NOW + left), hash: HASH }, deps);
      expect([put.response.statusCode, put.refusal]).toEqual([401, 'expired']);
    }
    expect(presigner.calls).toEqual([]);
    const edge = await getCacheEntry(
      { authorization: bearer('acme', NOW + MIN_TOKEN_REMAINING_SEC), hash: HASH },
      deps,
    );
    expect([edge.response.statusCode, bodyOf(edge).expiresInSec]).toEqual([200, MIN_TOKEN_REMAINING_SEC]);
  });

  it('answers 400 for a hash that is not 64 lowercase hex', async () => {
    const { deps, index } = core();
    index.hold(`acme/app/${HASH.toUpperCase()}`, [EU]);
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
    index.hold(ENTRY, [EU]);
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
      url: `https://cache-us.s3.${US}.example/acme/app/${HASH}?put`,
      expiresInSec: 300,
      headers: { 'x-amz-checksum-sha256': createHash('sha256').update(CONTENT).digest('base64') },
    });
    expect(presigner.calls).toEqual([['put', US, 'cache-us', `acme/app/${HASH}`, HASH, 300, undefined]]);
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

  it('scopes the object key to the repository and refuses a bad hash', async () => {
    const { deps, presigner } = core();
    await putCacheEntry({ authorization: bearer('other'), hash: HASH }, deps);
    await putCacheEntry({ authorization: bearer('other', NOW + 3_600, 'tools.js'), hash: HASH }, deps);
    expect(presigner.calls.map((call) => call[3])).toEqual([`other/app/${HASH}`, `other/tools.js/${HASH}`]);
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
    const report = await recordUploads([s3Record(`acme/app/${HASH}`)], deps);
    expect(report).toEqual({ recorded: 1, refused: [], failed: [] });
    expect([...index.items]).toEqual([
      [`${ENTRY}#${EU}`, { region: EU, bytes: 16, expiresAtSec: NOW + 29 * DAY }],
    ]);
    // and a GET then answers it from here
    expect((await getCacheEntry({ authorization: bearer(), hash: HASH }, deps)).outcome).toBe('hit-local');
  });

  it("is idempotent, and records each region's copy in its own item", async () => {
    const { deps, index } = core();
    await recordUploads([s3Record(`acme/app/${HASH}`), s3Record(`acme/app/${HASH}`)], deps);
    await recordUploads([s3Record(`acme/app/${HASH}`)], deps);
    await recordUploads(
      [
        s3Record(`acme/app/${HASH}`, {
          awsRegion: US,
          s3: { bucket: { name: 'cache-us' }, object: { key: `acme/app/${HASH}`, size: 16 } },
        }),
      ],
      { ...deps, region: US, nowSec: () => NOW + DAY },
    );
    expect([...index.items.keys()]).toEqual([`${ENTRY}#${EU}`, `${ENTRY}#${US}`]);
    // A later upload elsewhere does not extend this region's copy.
    expect((await index.copies(ENTRY, [EU, US])).map((c) => [c.region, c.expiresAtSec])).toEqual([
      [EU, NOW + 29 * DAY],
      [US, NOW + 30 * DAY],
    ]);
  });

  it('decodes URL-encoded keys as S3 sends them', async () => {
    const { deps, index } = core();
    const report = await recordUploads([s3Record(`%61cme%2D1/my%2Eapp/${HASH}`)], deps);
    expect(report.recorded).toBe(1);
    expect(index.items.has(`acme-1/my.app/${HASH}#${EU}`)).toBe(true);
  });

  it('refuses records that are not uploads of this cache with a bounded reason, never throwing', async () => {
    const { deps, index } = core();
    const key = /^s3\.object\.key: expected <owner>\/<name>\/<sha256>/;
    const bad: [unknown, RegExp][] = [
      [s3Record(`acme/app/${HASH.toUpperCase()}`), key],
      [s3Record(`acme/${HASH}`), key], // the organisation-wide layout of before
      [s3Record(`acme/app/${HASH}/x`), key],
      [s3Record(`a/b/c/${HASH}`), key],
      [s3Record(`acme//${HASH}`), key],
      [s3Record(`-acme/app/${HASH}`), key],
      [s3Record(`acme/App/${HASH}`), key],
      [s3Record(`my+org/app/${HASH}`), key], // `+` is a space
      [s3Record(`acme/my+app/${HASH}`), key],
      [s3Record(`${LEAK_MARKER}%E0%A4%A/app/${HASH}`), /^s3\.object\.key: expected a URL-encoded key/],
      [s3Record(HASH), /^s3\.object\.key/],
      [s3Record(''), /^s3\.object\.key: expected a key of 1 to/],
      [s3Record('x'.repeat(4_000)), /^s3\.object\.key: expected a key of 1 to/],
      [s3Record(`acme/app/${HASH}`, { eventName: 'ObjectRemoved:Delete' }), /^eventName/],
      [s3Record(`acme/app/${HASH}`, { eventSource: 'aws:sqs' }), /^eventSource/],
      [s3Record(`acme/app/${HASH}`, { awsRegion: US }), /^awsRegion/],
      [
        s3Record(`acme/app/${HASH}`, {
          s3: { bucket: { name: 'cache-us' }, object: { key: `acme/app/${HASH}`, size: 1 } },
        }),
        /^s3\.bucket\.name/,
      ],
      [
        s3Record(`acme/app/${HASH}`, {
          s3: { bucket: { name: 'cache-eu' }, object: { key: `acme/app/${HASH}` } },
        }),
        /^s3\.object\.size/,
      ],
      [
        s3Record(`acme/app/${HASH}`, {
          s3: { bucket: { name: 'cache-eu' }, object: { key: `acme/app/${HASH}`, size: -1 } },
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
    const report = await recordUploads(
      [...bad.map(([record]) => record), s3Record(`acme/app/${HASH}`)],
      deps,
    );
    expect(report.recorded).toBe(1);
    expect(report.failed).toEqual([]);
    expect(report.refused.map((r) => r.record)).toEqual(bad.map((_, i) => i));
    report.refused.forEach((r, i) => expect(r.reason).toMatch((bad[i] as [unknown, RegExp])[1]));
    expect(JSON.stringify(report)).not.toContain(LEAK_MARKER);
    expect([...index.items.keys()]).toEqual([`${ENTRY}#${EU}`]);
  });

  it('reports an index failure by its error name and goes on with the other records', async () => {
    const { deps, index } = core();
    const other = createHash('sha256').update('other').digest('hex');
    index.failOn = ENTRY;
    const report = await recordUploads([s3Record(`acme/app/${HASH}`), s3Record(`acme/app/${other}`)], deps);
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
    const url = new URL(await presigner.putUrl(EU, 'cache-eu', ENTRY, HASH, 300));
    const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
    expect(signed).toContain('x-amz-checksum-sha256');
    expect(signed).toContain('host');
    expect([...url.searchParams.keys()].map((k) => k.toLowerCase())).not.toContain('x-amz-checksum-sha256');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(url.searchParams.get('X-Amz-Credential')).toContain(`/${EU}/s3/aws4_request`);
    expect(url.hostname).toContain(EU);
    expect(url.pathname).toContain(ENTRY);
  });

  it('signs the declared size as content-length', async () => {
    const url = new URL(await presigner.putUrl(US, 'cache-us', ENTRY, HASH, 60, 16));
    const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
    expect(signed).toEqual(expect.arrayContaining(['content-length', 'host', 'x-amz-checksum-sha256']));
    expect(url.hostname).toContain(US);
  });

  it('presigns a GET in the region of the bucket', async () => {
    const url = new URL(await presigner.getUrl(AP, 'cache-ap', ENTRY, 120));
    expect(url.hostname).toContain(AP);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(url.searchParams.get('x-id')).toBe('GetObject');
  });
});

/**
 * The artifact-cache-index global table with two replicas: each applies its own writes at once (UpdateItem
 * with SET and ADD, BatchGetItem), and `replicate()` copies items across as a global table does, last
 * writer wins per item (the whole item: a global table does not merge attributes).
 */
class FakeGlobalTable {
  private clock = 0;
  readonly replicas = new Map<string, Map<string, { item: Record<string, AttributeValue>; at: number }>>([
    [EU, new Map()],
    [US, new Map()],
  ]);
  readonly sent: { region: string; name: string; input: unknown }[] = [];
  /** Keys the next BatchGetItem answers leave unprocessed, for that many rounds. */
  unprocessed: { keys: string[]; rounds: number } = { keys: [], rounds: 0 };

  client(region: string): DynamoDBClient {
    const replica = this.replicas.get(region) as Map<
      string,
      { item: Record<string, AttributeValue>; at: number }
    >;
    return {
      send: async (command: unknown) => {
        await Promise.resolve();
        if (command instanceof UpdateItemCommand) {
          this.sent.push({ region, name: 'UpdateItem', input: command.input });
          const key = command.input.Key?.cacheKey?.S ?? '';
          const names = command.input.ExpressionAttributeNames ?? {};
          const values = command.input.ExpressionAttributeValues ?? {};
          const item = { ...(replica.get(key)?.item ?? { cacheKey: { S: key } }) };
          const expression = command.input.UpdateExpression ?? '';
          const add = /^ADD (#\w+) (:\w+) /.exec(expression);
          if (add) {
            const name = names[add[1] ?? ''] ?? '';
            item[name] = {
              SS: [...new Set([...(item[name]?.SS ?? []), ...(values[add[2] ?? '']?.SS ?? [])])],
            };
          }
          for (const [, token, value] of expression.matchAll(/(#\w+) = (:\w+)/g))
            item[names[token ?? ''] ?? ''] = values[value ?? ''] as AttributeValue;
          replica.set(key, { item, at: ++this.clock });
          return {};
        }
        if (command instanceof BatchGetItemCommand) {
          this.sent.push({ region, name: 'BatchGetItem', input: command.input });
          const [table, request] = Object.entries(command.input.RequestItems ?? {})[0] ?? [];
          const keys = (request?.Keys ?? []).map((k) => k.cacheKey?.S ?? '');
          const held =
            this.unprocessed.rounds > 0 ? keys.filter((k) => this.unprocessed.keys.includes(k)) : [];
          if (this.unprocessed.rounds > 0) this.unprocessed.rounds -= 1;
          return {
            Responses: {
              [table ?? '']: keys
                .filter((k) => !held.includes(k))
                .flatMap((k) => {
                  const stored = replica.get(k);
                  return stored ? [structuredClone(stored.item)] : [];
                }),
            },
            ...(held.length
              ? { UnprocessedKeys: { [table ?? '']: { Keys: held.map((k) => ({ cacheKey: { S: k } })) } } }
              : {}),
          };
        }
        throw new Error('fake: unexpected command');
      },
    } as unknown as DynamoDBClient;
  }

  /** Replication caught up: every item is the last one written in either replica. */
  replicate(): void {
    const all = new Map<string, { item: Record<string, AttributeValue>; at: number }>();
    for (const replica of this.replicas.values())
      for (const [key, stored] of replica) if ((all.get(key)?.at ?? -1) < stored.at) all.set(key, stored);
    for (const replica of this.replicas.values()) for (const [key, stored] of all) replica.set(key, stored);
  }
}

describe('DynamoDbCacheIndex', () => {
  const sleeps: number[] = [];
  const index = (table: FakeGlobalTable, region: string) =>
    new DynamoDbCacheIndex(table.client(region), 'cache-index', () => 1_700_000_000_123, {
      attempts: 4,
      baseMs: 100,
      capMs: 300,
      random: () => 0.5,
      sleep: async (ms) => void sleeps.push(ms),
    });
  beforeEach(() => (sleeps.length = 0));

  it("writes this region's own item of the entry, with its expiry as the item's TTL", async () => {
    const table = new FakeGlobalTable();
    await index(table, EU).recordUpload(ENTRY, EU, 16, NOW);
    expect(table.sent).toEqual([
      {
        region: EU,
        name: 'UpdateItem',
        input: {
          TableName: 'cache-index',
          Key: { cacheKey: { S: `${ENTRY}#${EU}` } },
          UpdateExpression:
            'SET #region = :region, #bytes = :bytes, #updatedAt = :updatedAt, #expiresAt = :expiresAt',
          ExpressionAttributeNames: {
            '#region': 'region',
            '#bytes': 'bytes',
            '#updatedAt': 'updatedAt',
            '#expiresAt': 'expiresAt',
          },
          ExpressionAttributeValues: {
            ':region': { S: EU },
            ':bytes': { N: '16' },
            ':updatedAt': { N: '1700000000123' },
            ':expiresAt': { N: String(NOW) },
          },
        },
      },
    ]);
  });

  it('keeps both regions when two record the same object within the replication lag (last writer wins per item)', async () => {
    const table = new FakeGlobalTable();
    // Both uploads land before either replica has seen the other's write.
    await index(table, EU).recordUpload(ENTRY, EU, 16, NOW + 29 * DAY);
    await index(table, US).recordUpload(ENTRY, US, 16, NOW + 29 * DAY + 60);
    table.replicate();
    for (const region of [EU, US])
      expect(await index(table, region).copies(ENTRY, [EU, US])).toEqual([
        { region: EU, bytes: 16, expiresAtSec: NOW + 29 * DAY },
        { region: US, bytes: 16, expiresAtSec: NOW + 29 * DAY + 60 },
      ]);
  });

  it('reads every region in one BatchGetItem, skipping items without a readable expiry and other keys', async () => {
    const table = new FakeGlobalTable();
    const replica = table.replicas.get(EU);
    const put = (key: string, item: Record<string, AttributeValue>) =>
      replica?.set(key, { item: { cacheKey: { S: key }, ...item }, at: 0 });
    put(`${ENTRY}#${EU}`, { region: { S: EU }, bytes: { N: '16' }, expiresAt: { N: String(NOW) } });
    put(`${ENTRY}#${US}`, { region: { S: US }, bytes: { N: '16' }, expiresAt: { N: 'NaN' } });
    put(`${ENTRY}#${AP}`, { region: { S: AP }, bytes: { N: '7' }, expiresAt: { N: String(NOW + DAY) } });
    const copies = await index(table, EU).copies(ENTRY, [EU, US, AP, 'not a region']);
    expect(copies).toEqual([
      { region: EU, bytes: 16, expiresAtSec: NOW },
      { region: AP, bytes: 7, expiresAtSec: NOW + DAY },
    ]);
    expect(table.sent).toEqual([
      {
        region: EU,
        name: 'BatchGetItem',
        input: {
          RequestItems: {
            'cache-index': {
              Keys: [EU, US, AP].map((region) => ({ cacheKey: { S: `${ENTRY}#${region}` } })),
            },
          },
        },
      },
    ]);
    expect(await index(new FakeGlobalTable(), EU).copies(ENTRY, [])).toEqual([]);
  });

  it('asks again for unprocessed keys after a jittered exponential backoff, then gives up retryable', async () => {
    const table = new FakeGlobalTable();
    await index(table, EU).recordUpload(ENTRY, EU, 16, NOW);
    table.unprocessed = { keys: [`${ENTRY}#${EU}`], rounds: 2 };
    expect((await index(table, EU).copies(ENTRY, [EU, US])).map((c) => c.region)).toEqual([EU]);
    expect(sleeps).toEqual([50, 100]);
    expect(table.sent.filter((s) => s.name === 'BatchGetItem')).toHaveLength(3);
    sleeps.length = 0;
    table.unprocessed = { keys: [`${ENTRY}#${EU}`], rounds: 10 };
    await expect(index(table, EU).copies(ENTRY, [EU, US])).rejects.toBeInstanceOf(CacheIndexUnreadError);
    expect(sleeps).toEqual([50, 100, 150]);
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
      'AWS_REGION: expected one of the regions of RUNNERS_CONFIG',
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
    index.hold(ENTRY, [EU]);
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
        copies: async () => {
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
    const report = await handler({ Records: [s3Record(`acme/app/${HASH}`), s3Record(`${LEAK_MARKER}/x`)] });
    expect(report).toMatchObject({ recorded: 1, refused: [{ record: 1 }] });
    expect(index.items.has(`${ENTRY}#${EU}`)).toBe(true);
    expect(metrics).toEqual([
      ['CacheUploadRecorded', 1],
      ['CacheRecordRefused', 1],
    ]);
    expect(logs.join('\n')).not.toContain(LEAK_MARKER);
  });

  it('fails the invocation when the index did not take an upload, so that S3 retries it', async () => {
    const { handler, index, logs } = handlerWith();
    index.failOn = ENTRY;
    const error = (await Promise.resolve(handler({ Records: [s3Record(`acme/app/${HASH}`)] })).catch(
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
