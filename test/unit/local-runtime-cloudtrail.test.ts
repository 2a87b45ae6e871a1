import {
  cloudTrailEvent,
  isReadOnlyCall,
  type RecordedCall,
} from '../../scripts/lib/local-runtime/cloudtrail';
import { Readable } from 'node:stream';
import { MAX_REQUEST_BYTES } from '../../scripts/lib/local-runtime/http-api';
import { readBody } from '../../scripts/lib/local-runtime/loopback';
import { credentialScope, startSecretsProxy } from '../../scripts/lib/local-runtime/secrets-events';
import { parseTrigger } from '../../runtime/secrets/events';
import { secretsManagerCall } from '../support/cloudtrail-events';

const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf';
const user = {
  arn: 'arn:aws:sts::123456789012:user/moto',
  account: '123456789012',
  userId: 'AIDAEXAMPLE',
  accessKeyId: 'test',
};
const call = (eventName: string, request: unknown, response: unknown, caller = user): RecordedCall => ({
  eventName,
  region: 'eu-west-1',
  request,
  response,
  caller,
  sourceIp: '127.0.0.1',
  userAgent: 'aws-sdk-js/3',
  requestId: 'req-1',
  at: new Date('2024-05-01T10:00:00.123Z'),
});
const self = {
  region: 'eu-west-1',
  account: '123456789012',
  roleArn: 'arn:aws:iam::123456789012:role/replicator',
};

describe('the CloudTrail event of a Secrets Manager call', () => {
  it("has the envelope and detail fields of the replicator's test events", () => {
    const event = cloudTrailEvent(
      call(
        'PutSecretValue',
        { SecretId: ARN, SecretString: 'hunter2', ClientRequestToken: 'v2' },
        { ARN, Name: 'app/db', VersionId: 'v2', VersionStages: ['AWSCURRENT'] },
      ),
    );
    const reference = secretsManagerCall('PutSecretValue', { arn: ARN, name: 'app/db' }, { versionId: 'v2' });
    expect(Object.keys(event).sort()).toEqual(Object.keys(reference).sort());
    expect(Object.keys(event.detail as object).sort()).toEqual(Object.keys(reference.detail).sort());
    expect(event).toMatchObject({
      'detail-type': 'AWS API Call via CloudTrail',
      source: 'aws.secretsmanager',
      account: '123456789012',
      region: 'eu-west-1',
      time: '2024-05-01T10:00:00Z',
      detail: {
        eventSource: 'secretsmanager.amazonaws.com',
        eventName: 'PutSecretValue',
        awsRegion: 'eu-west-1',
        requestParameters: { secretId: ARN, clientRequestToken: 'v2' },
        responseElements: { arn: ARN, name: 'app/db', versionId: 'v2', versionStages: ['AWSCURRENT'] },
        readOnly: false,
        eventType: 'AwsApiCall',
        recipientAccountId: '123456789012',
        userIdentity: { type: 'IAMUser', arn: 'arn:aws:iam::123456789012:user/moto', accessKeyId: 'test' },
      },
    });
  });

  it("never records a secret's value, nor tag values", () => {
    const event = cloudTrailEvent(
      call(
        'CreateSecret',
        {
          Name: 'app/db',
          SecretString: 'hunter2',
          SecretBinary: 'AAAA',
          Tags: [{ Key: 'team', Value: 'payments' }],
        },
        { ARN, Name: 'app/db' },
      ),
    );
    const text = JSON.stringify(event);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('AAAA');
    expect(text).not.toContain('payments');
    expect((event.detail as { requestParameters: unknown }).requestParameters).toEqual({
      name: 'app/db',
      tags: [{ key: 'team', value: 'HIDDEN' }],
    });
  });

  it('records the ARN as aRN for the calls AWS records so, and TagResource with no response', () => {
    const deleted = cloudTrailEvent(
      call('DeleteSecret', { SecretId: 'app/db' }, { ARN, Name: 'app/db', DeletionDate: 1714557600 }),
    );
    expect((deleted.detail as { responseElements: unknown }).responseElements).toEqual({
      aRN: ARN,
      name: 'app/db',
      deletionDate: 'Wed, 01 May 2024 10:00:00 GMT',
    });
    const tagged = cloudTrailEvent(
      call('TagResource', { SecretId: 'app/db', Tags: [{ Key: 'k', Value: 'v' }] }, {}),
    );
    expect((tagged.detail as { responseElements: unknown }).responseElements).toBeNull();
  });

  it('is what the replicator parses as a change of that secret', () => {
    for (const [name, request, response] of [
      ['PutSecretValue', { SecretId: 'app/db', SecretString: 'x' }, { ARN, Name: 'app/db', VersionId: 'v' }],
      ['DeleteSecret', { SecretId: 'app/db' }, { ARN, Name: 'app/db', DeletionDate: 1714557600 }],
      ['TagResource', { SecretId: ARN, Tags: [] }, {}],
    ] as const) {
      const event = cloudTrailEvent(call(name, request, response));
      expect(parseTrigger(JSON.stringify(event), self)).toMatchObject({
        kind: 'change',
        secretId: ARN,
        call: name,
      });
    }
  });

  it("records an assumed role's session with its issuer, so the replicator knows its own calls", () => {
    const session = {
      arn: 'arn:aws:sts::123456789012:assumed-role/replicator/local-secrets-replicator',
      account: '123456789012',
      userId: 'AROAEXAMPLE:local-secrets-replicator',
      accessKeyId: 'ASIAEXAMPLE',
    };
    const event = cloudTrailEvent(call('PutSecretValue', { SecretId: ARN }, { ARN }, session));
    expect(event.detail).toMatchObject({
      userIdentity: {
        type: 'AssumedRole',
        sessionContext: { sessionIssuer: { arn: self.roleArn, type: 'Role' } },
      },
    });
    expect(parseTrigger(JSON.stringify(event), self)).toMatchObject({ kind: 'ignored' });
  });

  it('treats Get, List, Describe and BatchGet calls as read-only (EventBridge does not receive them)', () => {
    expect(
      ['GetSecretValue', 'ListSecrets', 'DescribeSecret', 'BatchGetSecretValue'].every(isReadOnlyCall),
    ).toBe(true);
    expect(['PutSecretValue', 'TagResource', 'ReplicateSecretToRegions'].some(isReadOnlyCall)).toBe(false);
  });

  it("reads a request's region and access key from its SigV4 credential scope", () => {
    expect(
      credentialScope(
        'AWS4-HMAC-SHA256 Credential=test/20240501/eu-west-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=ab',
      ),
    ).toEqual({ accessKeyId: 'test', region: 'eu-west-1' });
    expect(credentialScope(undefined)).toBeUndefined();
  });
});

describe('the Secrets Manager proxy and the bodies it takes', () => {
  it('reads a body up to its limit and refuses one byte more', async () => {
    const read = (size: number) => readBody(Readable.from([Buffer.alloc(size, 1)]), 300 * 1024);
    expect((await read(300 * 1024))?.length).toBe(300 * 1024);
    expect(await read(300 * 1024 + 1)).toBeUndefined();
  });

  it('answers 413 to a body over 6 MB without forwarding it or emitting an event', async () => {
    const emitted: unknown[] = [];
    const errors: Error[] = [];
    const proxy = await startSecretsProxy({
      // Nothing listens there: a forwarded request would fail with 502.
      endpoint: 'http://127.0.0.1:9',
      emit: async (event) => void emitted.push(event),
      callerOf: async () => {
        throw new Error('not asked for an oversized request');
      },
      defaultRegion: 'eu-central-1',
      onError: (error) => errors.push(error),
    });
    try {
      const response = await fetch(proxy.url, {
        method: 'POST',
        headers: { 'x-amz-target': 'secretsmanager.PutSecretValue' },
        body: Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x61),
      });
      expect(response.status).toBe(413);
      expect(emitted).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
