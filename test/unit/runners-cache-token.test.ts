import { createHmac } from 'node:crypto';
import type { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import {
  CacheTokenKeys,
  checkCacheToken,
  issueCacheToken,
  MAX_CACHE_TOKEN_CHARS,
  MAX_CACHE_TOKEN_TTL_SEC,
  SecretsManagerCacheTokenIssuer,
  secretsManagerStageReader,
  verifyCacheToken,
  type SecretStage,
} from '../../runtime/runners/cache-token';
import { LEAK_MARKER } from '../../runtime/lib/leak-check';

const KEY = 'k'.repeat(32) + '-current';
const PREVIOUS = 'p'.repeat(32) + '-previous';
const OTHER = 'o'.repeat(32) + '-other';
const NOW = 1_700_000_000;
const SCOPE = { organization: 'acme', repository: 'acme/app', jobId: 42 };

/** Signs arbitrary payload text as the documented wire format does (to forge payloads a key holder could). */
function signRaw(key: string, payloadText: string): string {
  const encoded = Buffer.from(payloadText, 'utf8').toString('base64url');
  const mac = createHmac('sha256', key).update('estate-runner-cache-token\n').update(encoded).digest();
  return `${encoded}.${mac.toString('base64url')}`;
}

/** Replaces the character at `at` with another base64url character. */
const flip = (text: string, at: number): string =>
  text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);

describe('issueCacheToken and verifyCacheToken', () => {
  const token = issueCacheToken(KEY, SCOPE, NOW + 3_600);

  it('round-trips the scope and expiry', () => {
    expect(verifyCacheToken([KEY], token, NOW)).toEqual({ ...SCOPE, expiresAtSec: NOW + 3_600 });
    expect(verifyCacheToken([KEY], issueCacheToken(Buffer.from(KEY), SCOPE, NOW + 60), NOW)).toEqual({
      ...SCOPE,
      expiresAtSec: NOW + 60,
    });
  });

  it('has the documented form: base64url canonical JSON, a dot, a 32-byte base64url MAC', () => {
    const [payload, mac] = token.split('.') as [string, string];
    expect(Buffer.from(payload, 'base64url').toString('utf8')).toBe(
      `{"v":1,"o":"acme","r":"acme/app","j":42,"e":${NOW + 3_600}}`,
    );
    expect(Buffer.from(mac, 'base64url')).toHaveLength(32);
    expect(token).toBe(signRaw(KEY, Buffer.from(payload, 'base64url').toString('utf8')));
  });

  it('refuses a token with a character of its payload changed, whichever', () => {
    const dot = token.indexOf('.');
    for (let at = 0; at < dot; at++) expect(verifyCacheToken([KEY], flip(token, at), NOW)).toBeUndefined();
  });

  it('refuses a token with a character of its MAC changed, whichever', () => {
    for (let at = token.indexOf('.') + 1; at < token.length; at++)
      expect(verifyCacheToken([KEY], flip(token, at), NOW)).toBeUndefined();
  });

  it('refuses another payload under a valid MAC, and a truncated, extended or re-split token', () => {
    const [, mac] = token.split('.') as [string, string];
    const other = issueCacheToken(KEY, { ...SCOPE, organization: 'evil', repository: 'evil/app' }, NOW + 60);
    const [otherPayload] = other.split('.') as [string];
    for (const forged of [
      `${otherPayload}.${mac}`,
      token.slice(0, -1),
      `${token}A`,
      `${token}.`,
      `.${token}`,
      token.replace('.', ''),
      token.replace('.', '..'),
      `${token.split('.')[0]}.`,
    ])
      expect(checkCacheToken([KEY], forged, NOW).ok).toBe(false);
    expect(checkCacheToken([KEY], `${otherPayload}.${mac}`, NOW)).toEqual({
      ok: false,
      refusal: 'signature',
    });
  });

  it('refuses a MAC that decodes to the same bytes from a non-canonical encoding', () => {
    const [payload, mac] = token.split('.') as [string, string];
    // the last base64url character of a 32-byte value carries 2 unused bits: set one
    const last = mac.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[alphabet.indexOf(last) ^ 1] as string;
    const malleable = `${payload}.${mac.slice(0, -1)}${sibling}`;
    expect(Buffer.from(malleable.split('.')[1] as string, 'base64url')).toEqual(
      Buffer.from(mac, 'base64url'),
    );
    expect(checkCacheToken([KEY], malleable, NOW)).toEqual({ ok: false, refusal: 'format' });
  });

  it('accepts a token until the second before its expiry, not at it', () => {
    const short = issueCacheToken(KEY, SCOPE, NOW + 60);
    expect(verifyCacheToken([KEY], short, NOW + 59)).toBeDefined();
    expect(checkCacheToken([KEY], short, NOW + 60)).toEqual({ ok: false, refusal: 'expired' });
    expect(checkCacheToken([KEY], short, NOW + 61)).toEqual({ ok: false, refusal: 'expired' });
  });

  it('refuses a token that claims to live longer than a job can run', () => {
    const long = issueCacheToken(KEY, SCOPE, NOW + MAX_CACHE_TOKEN_TTL_SEC + 1);
    expect(checkCacheToken([KEY], long, NOW)).toEqual({ ok: false, refusal: 'too-long-lived' });
    expect(verifyCacheToken([KEY], long, NOW + 1)).toBeDefined();
  });

  it('refuses a token signed with another key, and verifies one signed with the previous key', () => {
    expect(verifyCacheToken([OTHER], token, NOW)).toBeUndefined();
    expect(verifyCacheToken([], token, NOW)).toBeUndefined();
    const old = issueCacheToken(PREVIOUS, SCOPE, NOW + 60);
    expect(verifyCacheToken([KEY, PREVIOUS], old, NOW)).toEqual({ ...SCOPE, expiresAtSec: NOW + 60 });
    expect(verifyCacheToken([KEY], old, NOW)).toBeUndefined();
  });

  it('never verifies with a key shorter than 32 bytes', () => {
    const weak = 'short';
    expect(
      verifyCacheToken([weak], signRaw(weak, `{"v":1,"o":"acme","r":"acme/app","j":1,"e":${NOW + 60}}`), NOW),
    ).toBeUndefined();
  });

  it('refuses a token over 2 KiB before computing a MAC', () => {
    const payload = `{"v":1,"o":"acme","r":"acme/${'a'.repeat(100)}","j":1,"e":${NOW + 60}}`;
    const padded = signRaw(KEY, payload + ' '.repeat(MAX_CACHE_TOKEN_CHARS));
    expect(padded.length).toBeGreaterThan(MAX_CACHE_TOKEN_CHARS);
    const crypto = jest.requireActual<typeof import('node:crypto')>('node:crypto');
    const hmac = jest.spyOn(crypto, 'createHmac');
    try {
      expect(checkCacheToken([KEY], padded, NOW)).toEqual({ ok: false, refusal: 'format' });
      expect(checkCacheToken([KEY], 'A'.repeat(10_000_000), NOW)).toEqual({ ok: false, refusal: 'format' });
      expect(hmac).not.toHaveBeenCalled();
      // the spy does see the MACs of a token of an acceptable length
      checkCacheToken([KEY], signRaw(KEY, payload), NOW);
      expect(hmac).toHaveBeenCalled();
    } finally {
      hmac.mockRestore();
    }
  });

  it('refuses garbage without throwing', () => {
    const garbage: unknown[] = [
      '',
      '.',
      '..',
      'a.b',
      'not a token',
      `${LEAK_MARKER}.${LEAK_MARKER}`,
      '\u0000.\u0000',
      'é.é',
      '💥.💥',
      'eyJ2IjoxfQ.',
      null,
      undefined,
      42,
      {},
    ];
    for (const item of garbage) expect(verifyCacheToken([KEY], item as string, NOW)).toBeUndefined();
    expect(verifyCacheToken([KEY], token, Number.NaN)).toBeUndefined();
  });

  it('refuses signed payloads that are not the canonical, strict form', () => {
    const e = NOW + 60;
    const payloads = [
      `{"v":1,"o":"acme","r":"acme/app","j":1,"e":${e},"__proto__":{"admin":true}}`,
      `{"__proto__":{"v":1,"o":"acme","r":"acme/app","j":1,"e":${e}}}`,
      `{"v":1,"o":"acme","r":"acme/app","j":1,"e":${e},"constructor":1}`,
      `{"o":"acme","v":1,"r":"acme/app","j":1,"e":${e}}`, // keys out of order
      `{"v":1, "o":"acme","r":"acme/app","j":1,"e":${e}}`, // a space
      `{"v":2,"o":"acme","r":"acme/app","j":1,"e":${e}}`,
      `{"v":1,"o":"ACME","r":"acme/app","j":1,"e":${e}}`,
      `{"v":1,"o":"acme","r":"other/app","j":1,"e":${e}}`, // repository of another organisation
      `{"v":1,"o":"acme","r":"acme/app","j":0,"e":${e}}`,
      `{"v":1,"o":"acme","r":"acme/app","j":1.5,"e":${e}}`,
      `{"v":1,"o":"acme","r":"acme/app","j":9007199254740993,"e":${e}}`,
      `{"v":1,"o":"acme","r":"acme/app","j":"1","e":${e}}`,
      `{"v":1,"o":"acme","r":"acme/app","j":1}`,
      `[1,"acme","acme/app",1,${e}]`,
      'null',
      '{',
    ];
    for (const payload of payloads)
      expect([payload, checkCacheToken([KEY], signRaw(KEY, payload), NOW)]).toEqual([
        payload,
        { ok: false, refusal: 'payload' },
      ]);
    const invalidUtf8 = Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url');
    const mac = createHmac('sha256', KEY).update('estate-runner-cache-token\n').update(invalidUtf8).digest();
    expect(checkCacheToken([KEY], `${invalidUtf8}.${mac.toString('base64url')}`, NOW)).toEqual({
      ok: false,
      refusal: 'payload',
    });
    // the same fields, canonical: accepted (the refusals above are for the form, not the content)
    expect(
      checkCacheToken([KEY], signRaw(KEY, `{"v":1,"o":"acme","r":"acme/app","j":1,"e":${e}}`), NOW).ok,
    ).toBe(true);
  });

  it('refuses to issue for a bad scope or key, naming the field and never the value', () => {
    const bad: [Parameters<typeof issueCacheToken>, string][] = [
      [['short', SCOPE, NOW], 'key'],
      [[KEY, { ...SCOPE, organization: `${LEAK_MARKER}!` }, NOW], 'organization'],
      [[KEY, { ...SCOPE, repository: `acme/${LEAK_MARKER} x` }, NOW], 'repository'],
      [[KEY, { ...SCOPE, repository: 'other/app' }, NOW], 'repository'],
      [[KEY, { ...SCOPE, jobId: -1 }, NOW], 'jobId'],
      [[KEY, SCOPE, 1.5], 'expiresAtSec'],
    ];
    for (const [args, field] of bad) {
      let message = '';
      try {
        issueCacheToken(...args);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(new RegExp(`^cache-token: ${field}: expected`));
      expect(message).not.toContain(LEAK_MARKER);
      expect(message).not.toContain(KEY);
    }
  });
});

/** An in-memory secret with stages, counting reads. */
function secret(initial: { current?: string; previous?: string }) {
  const state = { ...initial, reads: 0, fail: false };
  const read = async (stage: SecretStage) => {
    state.reads += 1;
    if (state.fail)
      throw Object.assign(new Error(`denied ${state.current}`), { name: 'AccessDeniedException' });
    return stage === 'AWSCURRENT' ? state.current : state.previous;
  };
  return { state, read };
}

describe('CacheTokenKeys', () => {
  it('signs with AWSCURRENT and verifies with AWSCURRENT and AWSPREVIOUS', async () => {
    const { read } = secret({ current: KEY, previous: PREVIOUS });
    const keys = new CacheTokenKeys(read, { nowMs: () => NOW * 1000 });
    expect(await keys.signingKey()).toBe(KEY);
    expect(await keys.verifyingKeys()).toEqual([KEY, PREVIOUS]);
    expect((await keys.check(issueCacheToken(PREVIOUS, SCOPE, NOW + 60), NOW)).ok).toBe(true);
    expect((await keys.check(issueCacheToken(KEY, SCOPE, NOW + 60), NOW)).ok).toBe(true);
    expect((await keys.check(issueCacheToken(OTHER, SCOPE, NOW + 60), NOW)).ok).toBe(false);
  });

  it('works without a previous version, and ignores a previous key too short to be one', async () => {
    const keys = new CacheTokenKeys(secret({ current: KEY, previous: 'short' }).read);
    expect(await keys.verifyingKeys()).toEqual([KEY]);
    expect(await new CacheTokenKeys(secret({ current: KEY }).read).verifyingKeys()).toEqual([KEY]);
  });

  it('refuses a current key shorter than 32 bytes without saying it', async () => {
    const keys = new CacheTokenKeys(secret({ current: `${LEAK_MARKER}` }).read);
    const error = (await keys.signingKey().catch((e: Error) => e)) as Error;
    expect(error.message).toMatch(/AWSCURRENT: expected a key of at least 32 bytes/);
    expect(error.message).not.toContain(LEAK_MARKER);
  });

  it('reads the secret once per TTL', async () => {
    let now = 0;
    const { state, read } = secret({ current: KEY });
    const keys = new CacheTokenKeys(read, { ttlMs: 1_000, nowMs: () => now });
    await Promise.all([keys.signingKey(), keys.signingKey(), keys.verifyingKeys()]);
    expect(state.reads).toBe(2); // AWSCURRENT and AWSPREVIOUS, once for all three calls
    now = 999;
    await keys.signingKey();
    expect(state.reads).toBe(2);
    now = 1_000;
    await keys.signingKey();
    expect(state.reads).toBe(4);
  });

  it('verifies a token signed with a key rotated in since the last read, rereading at most every minRefreshMs', async () => {
    let now = 0;
    const { state, read } = secret({ current: KEY });
    const keys = new CacheTokenKeys(read, { ttlMs: 300_000, minRefreshMs: 30_000, nowMs: () => now });
    await keys.signingKey();
    // rotation: the new key becomes AWSCURRENT, the old one AWSPREVIOUS
    state.current = OTHER;
    state.previous = KEY;
    const fresh = issueCacheToken(OTHER, SCOPE, NOW + 60);
    now = 10_000;
    expect((await keys.check(fresh, NOW)).ok).toBe(false); // read 10 s ago: not again yet
    expect(state.reads).toBe(2);
    now = 30_000;
    expect((await keys.check(fresh, NOW)).ok).toBe(true);
    expect(state.reads).toBe(4);
    expect((await keys.check(issueCacheToken(KEY, SCOPE, NOW + 60), NOW)).ok).toBe(true);
    // forged tokens do not make it read more than once per minRefreshMs
    for (let i = 0; i < 50; i++) await keys.check(issueCacheToken(PREVIOUS, SCOPE, NOW + 60), NOW);
    expect(state.reads).toBe(4);
    // an expired token is not a reason to read again
    now = 100_000;
    expect(await keys.check(issueCacheToken(OTHER, SCOPE, NOW - 1), NOW)).toEqual({
      ok: false,
      refusal: 'expired',
    });
    expect(state.reads).toBe(4);
  });

  it('keeps the keys it has when a read fails, up to maxStaleMs, saying only the error name', async () => {
    let now = 0;
    const stale: string[] = [];
    const { state, read } = secret({ current: KEY });
    const keys = new CacheTokenKeys(read, {
      ttlMs: 1_000,
      maxStaleMs: 10_000,
      nowMs: () => now,
      onStale: (error) => stale.push(error),
    });
    await keys.signingKey();
    state.fail = true;
    now = 5_000;
    expect(await keys.signingKey()).toBe(KEY);
    expect(stale).toEqual(['AccessDeniedException']);
    now = 10_001;
    await expect(keys.signingKey()).rejects.toThrow();
    const fresh = new CacheTokenKeys(read);
    await expect(fresh.signingKey()).rejects.toThrow();
  });
});

/** A Secrets Manager client answering GetSecretValue by stage. */
function fakeSecretsManager(stages: Partial<Record<SecretStage, string>>) {
  const calls: { SecretId?: string; VersionStage?: string }[] = [];
  return {
    calls,
    send: async (command: GetSecretValueCommand) => {
      calls.push(command.input);
      const value = stages[command.input.VersionStage as SecretStage];
      if (value === undefined)
        throw Object.assign(new Error('not found'), { name: 'ResourceNotFoundException' });
      return { SecretString: value, $metadata: {} };
    },
  };
}

describe('secretsManagerStageReader', () => {
  it('reads a stage by its name, and a missing previous version as none', async () => {
    const client = fakeSecretsManager({ AWSCURRENT: KEY });
    const read = secretsManagerStageReader(client, 'runner-cache-token');
    expect(await read('AWSCURRENT')).toBe(KEY);
    expect(await read('AWSPREVIOUS')).toBeUndefined();
    expect(client.calls).toEqual([
      { SecretId: 'runner-cache-token', VersionStage: 'AWSCURRENT' },
      { SecretId: 'runner-cache-token', VersionStage: 'AWSPREVIOUS' },
    ]);
    await expect(secretsManagerStageReader(fakeSecretsManager({}), 'x')('AWSCURRENT')).rejects.toThrow();
  });

  it('refuses a binary secret', async () => {
    const client = { send: async () => ({ SecretBinary: new Uint8Array(32), $metadata: {} }) };
    await expect(secretsManagerStageReader(client, 'x')('AWSCURRENT')).rejects.toThrow(
      /AWSCURRENT: expected the key as a SecretString/,
    );
  });
});

describe('SecretsManagerCacheTokenIssuer', () => {
  it('issues a token for the job with the current key, valid ttlSec from now', async () => {
    const client = fakeSecretsManager({ AWSCURRENT: KEY, AWSPREVIOUS: PREVIOUS });
    const issuer = new SecretsManagerCacheTokenIssuer({
      secretId: 'runner-cache-token',
      client,
      nowMs: () => NOW * 1000 + 999,
    });
    const token = await issuer.issue(SCOPE, 3_600);
    expect(verifyCacheToken([KEY], token, NOW)).toEqual({ ...SCOPE, expiresAtSec: NOW + 3_600 });
    expect(verifyCacheToken([PREVIOUS], token, NOW)).toBeUndefined();
  });

  it('accepts injected keys and refuses a TTL outside 1 s to 6 days', async () => {
    const keys = new CacheTokenKeys(secret({ current: KEY }).read);
    const issuer = new SecretsManagerCacheTokenIssuer({ keys, nowMs: () => NOW * 1000 });
    expect(verifyCacheToken([KEY], await issuer.issue(SCOPE, 1), NOW)).toBeDefined();
    for (const ttl of [0, -1, 1.5, MAX_CACHE_TOKEN_TTL_SEC + 1, Number.NaN])
      await expect(issuer.issue(SCOPE, ttl)).rejects.toThrow(/ttlSec: expected a whole number of seconds/);
  });
});
