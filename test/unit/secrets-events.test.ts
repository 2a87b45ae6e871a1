import fc from 'fast-check';
import { PermanentError } from '../../runtime/lib/failures';
import { backoffMs, isTransientAwsError, withRetries } from '../../runtime/lib/retry';
import { parseTrigger, type Self } from '../../runtime/secrets/events';
import { originTag, isOriginIn } from '../../runtime/secrets/replica-tags';
import { replicaOriginMs, tokenTimeMs, versionToken } from '../../runtime/secrets/version-token';
import { awsError } from '../support/secrets-fixtures';

const SELF: Self = {
  region: 'us-west-2',
  account: '111111111111',
  roleArn: 'arn:aws:iam::111111111111:role/dev-secrets-replicator-us-west-2',
};
const ARN = 'arn:aws:secretsmanager:us-west-2:111111111111:secret:app/db-AbCdEf';

function cloudTrail(detail: Record<string, unknown>): string {
  return JSON.stringify({
    version: '0',
    id: 'e1',
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.secretsmanager',
    account: '111111111111',
    region: 'us-west-2',
    detail: {
      eventSource: 'secretsmanager.amazonaws.com',
      eventID: 'ev-1',
      userIdentity: {
        type: 'AssumedRole',
        arn: 'arn:aws:sts::111111111111:assumed-role/deployer/alice',
        sessionContext: { sessionIssuer: { arn: 'arn:aws:iam::111111111111:role/deployer' } },
      },
      ...detail,
    },
  });
}

describe('secrets replicator: the events it understands', () => {
  it.each([
    ['responseElements.arn', { eventName: 'PutSecretValue', responseElements: { arn: ARN } }],
    ['responseElements.aRN', { eventName: 'DeleteSecret', responseElements: { aRN: ARN } }],
    ['requestParameters.secretId', { eventName: 'TagResource', requestParameters: { secretId: 'app/db' } }],
    [
      'requestParameters.name',
      { eventName: 'CreateSecret', requestParameters: { name: 'app/db' }, responseElements: null },
    ],
  ])('reads the secret from %s', (_, detail) => {
    const trigger = parseTrigger(cloudTrail(detail), SELF);
    expect(trigger).toMatchObject({ kind: 'change', call: detail.eventName, eventId: 'ev-1' });
    expect(trigger.kind === 'change' && [ARN, 'app/db']).toContain(
      trigger.kind === 'change' && trigger.secretId,
    );
  });

  it('ignores its own calls, by the session issuer or by the session ARN', () => {
    const own = { eventName: 'TagResource', requestParameters: { secretId: 'app/db' } };
    expect(
      parseTrigger(
        cloudTrail({
          ...own,
          userIdentity: { sessionContext: { sessionIssuer: { arn: SELF.roleArn } } },
        }),
        SELF,
      ),
    ).toEqual({ kind: 'ignored', reason: "TagResource was the replicator's own call" });
    expect(
      parseTrigger(
        cloudTrail({
          ...own,
          userIdentity: { arn: 'arn:aws:sts::111111111111:assumed-role/dev-secrets-replicator-us-west-2/s1' },
        }),
        SELF,
      ).kind,
    ).toBe('ignored');
    // The same role name in another account is somebody else.
    expect(
      parseTrigger(
        cloudTrail({
          ...own,
          userIdentity: { arn: 'arn:aws:sts::222222222222:assumed-role/dev-secrets-replicator-us-west-2/s1' },
        }),
        SELF,
      ).kind,
    ).toBe('change');
  });

  it('ignores failed calls, calls that change nothing, and secrets of another region or account', () => {
    expect(
      parseTrigger(
        cloudTrail({
          eventName: 'PutSecretValue',
          errorCode: 'AccessDenied',
          requestParameters: { secretId: 'x' },
        }),
        SELF,
      ),
    ).toEqual({ kind: 'ignored', reason: 'PutSecretValue failed; it changed nothing' });
    expect(
      parseTrigger(cloudTrail({ eventName: 'GetSecretValue', requestParameters: { secretId: 'x' } }), SELF),
    ).toEqual({
      kind: 'ignored',
      reason: 'GetSecretValue changes no value, tag or existence',
    });
    expect(
      parseTrigger(
        cloudTrail({
          eventName: 'PutSecretValue',
          responseElements: { arn: ARN.replace('us-west-2', 'us-east-1') },
        }),
        SELF,
      ).kind,
    ).toBe('ignored');
  });

  it('turns the schedule and an operator request into a resync', () => {
    expect(
      parseTrigger(
        JSON.stringify({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} }),
        SELF,
      ),
    ).toEqual({
      kind: 'resync',
    });
    expect(
      parseTrigger(JSON.stringify({ source: 'estate.secrets-replicator', 'detail-type': 'Resync' }), SELF),
    ).toEqual({
      kind: 'resync',
    });
  });

  it.each([
    ['not JSON', '{', 'malformed-event: the message body is not JSON'],
    [
      'not an event',
      '[1,2]',
      'malformed-event: expected an EventBridge event: source, detail-type and detail',
    ],
    [
      'another source',
      JSON.stringify({ source: 'aws.s3', 'detail-type': 'Object Created', detail: {} }),
      'malformed-event: unexpected event: source aws.s3, detail-type Object Created',
    ],
    [
      'no eventName',
      cloudTrail({ eventName: 7 }),
      'malformed-event: detail: expected a CloudTrail record with eventName',
    ],
    [
      'no secret',
      cloudTrail({ eventName: 'PutSecretValue', responseElements: null }),
      'malformed-event: detail: no secret in responseElements.arn, responseElements.aRN or requestParameters',
    ],
  ])('refuses %s with its reason (dead-lettered at once)', (_, body, message) => {
    let thrown: unknown;
    try {
      parseTrigger(body, SELF);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(PermanentError);
    expect((thrown as Error).message).toBe(message);
  });
});

describe('secrets replicator: version tokens and origin tags', () => {
  it('a token is 32-64 characters, names its origin time, and verifies only its own content', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.string(), fc.string(), (ms, a, b) => {
        const token = versionToken(ms, { kind: 'string', text: a });
        expect(token.length).toBeGreaterThanOrEqual(32);
        expect(token.length).toBeLessThanOrEqual(64);
        expect(tokenTimeMs(token)).toBe(ms);
        expect(replicaOriginMs(token, { kind: 'string', text: a })).toBe(ms);
        if (a !== b) expect(replicaOriginMs(token, { kind: 'string', text: b })).toBeUndefined();
        expect(replicaOriginMs(token, { kind: 'binary', bytes: Buffer.from(a) })).toBeUndefined();
      }),
    );
    expect(
      replicaOriginMs('6f0e5c3c-8a7b-4c1e-9d2f-1a2b3c4d5e6f', { kind: 'string', text: 'x' }),
    ).toBeUndefined();
    expect(() => versionToken(Number.NaN, { kind: 'string', text: 'x' })).toThrow(RangeError);
  });

  it('an origin tag fits a tag value and still tells its region and account', () => {
    const long = `arn:aws:secretsmanager:us-west-2:111111111111:secret:${'n'.repeat(300)}-AbCdEf`;
    expect(originTag(ARN)).toBe(ARN);
    expect(originTag(long).length).toBeLessThanOrEqual(256);
    expect(originTag(long)).not.toBe(originTag(long.replace('nnn', 'nnm')));
    for (const tag of [originTag(ARN), originTag(long)]) {
      expect(isOriginIn(tag, 'us-west-2', '111111111111')).toBe(true);
      expect(isOriginIn(tag, 'us-east-1', '111111111111')).toBe(false);
      expect(isOriginIn(tag, 'us-west-2', '222222222222')).toBe(false);
    }
  });
});

describe('retries: throttling and 5xx only, capped exponential backoff with full jitter', () => {
  it('tells transient failures from the rest', () => {
    expect(isTransientAwsError(awsError('ThrottlingException', 400))).toBe(true);
    expect(isTransientAwsError(awsError('InternalServiceError', 500))).toBe(true);
    expect(isTransientAwsError(awsError('Whatever', 503))).toBe(true);
    expect(isTransientAwsError(awsError('AccessDeniedException', 400))).toBe(false);
    expect(isTransientAwsError(awsError('ResourceNotFoundException', 400))).toBe(false);
    expect(isTransientAwsError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransientAwsError(new Error('our own'))).toBe(false);
  });

  it('stays within [0, min(cap, base x 2^retry))', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (retry, r) => {
          const ms = backoffMs(retry, { attempts: 5, baseMs: 100, capMs: 5000, random: () => r });
          expect(ms).toBeGreaterThanOrEqual(0);
          expect(ms).toBeLessThan(Math.min(5000, 100 * 2 ** retry));
        },
      ),
    );
  });

  it('gives up after its attempts, and at once on what retrying cannot fix', async () => {
    let calls = 0;
    const policy = { attempts: 3, baseMs: 1, capMs: 1, sleep: async () => undefined };
    await expect(
      withRetries(async () => {
        calls++;
        throw awsError('ThrottlingException', 400);
      }, policy),
    ).rejects.toThrow('ThrottlingException from the service');
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetries(async () => {
        calls++;
        throw awsError('AccessDeniedException', 400);
      }, policy),
    ).rejects.toThrow();
    expect(calls).toBe(1);
  });
});
