import type { DiscoveredRule, DiscoveredTarget } from '../../scripts/lib/local-runtime/discover';
import { matchesPattern, validatePattern } from '../../scripts/lib/local-runtime/event-pattern';
import {
  EventRules,
  busEvent,
  selectPath,
  targetPayload,
  type BusEvent,
} from '../../scripts/lib/local-runtime/event-rules';
import type { JsonObject } from '../../scripts/lib/local-runtime/terraform-refs';
import { TRIGGERING_CALLS } from '../../runtime/secrets/events';
import { secretsManagerCall } from '../support/cloudtrail-events';

const matches = (pattern: unknown, event: unknown) => {
  validatePattern(pattern);
  return matchesPattern(pattern, event);
};

/** The examples of AWS's "Creating Amazon EventBridge event patterns" and "Content filtering" pages. */
describe('EventBridge event patterns', () => {
  const ec2 = {
    source: 'aws.ec2',
    'detail-type': 'EC2 Instance State-change Notification',
    region: 'us-west-1',
    resources: ['arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0'],
    detail: { state: 'running', 'instance-id': 'i-1234567890abcdef0', c: { count: 5 }, ip: '10.0.0.153' },
  };

  it('matches exact values; an event array matches when any element does', () => {
    expect(matches({ source: ['aws.ec2'], detail: { state: ['running', 'stopped'] } }, ec2)).toBe(true);
    expect(matches({ source: ['aws.s3'] }, ec2)).toBe(false);
    expect(
      matches({ resources: ['arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0'] }, ec2),
    ).toBe(true);
    expect(matches({ detail: { c: { count: [5] } } }, ec2)).toBe(true);
    expect(matches({ detail: { c: { count: ['5'] } } }, ec2)).toBe(false);
    expect(matches({ detail: { gone: [null] } }, { detail: { gone: null } })).toBe(true);
    expect(matches({ detail: { gone: [null] } }, { detail: {} })).toBe(false);
    expect(matches({ detail: { e: [''] } }, { detail: { e: '' } })).toBe(true);
  });

  it('needs every field of the pattern, and ignores fields the pattern does not name', () => {
    expect(matches({ source: ['aws.ec2'], 'detail-type': ['nope'] }, ec2)).toBe(false);
    expect(matches({ detail: { state: ['running'] } }, ec2)).toBe(true);
  });

  it('prefix, suffix and equals-ignore-case (also inside prefix and suffix)', () => {
    expect(matches({ region: [{ prefix: 'us-' }] }, ec2)).toBe(true);
    expect(matches({ region: [{ prefix: 'eu-' }] }, ec2)).toBe(false);
    expect(matches({ detail: { 'instance-id': [{ suffix: 'def0' }] } }, ec2)).toBe(true);
    expect(matches({ source: [{ 'equals-ignore-case': 'AWS.EC2' }] }, ec2)).toBe(true);
    expect(matches({ region: [{ prefix: { 'equals-ignore-case': 'US-' } }] }, ec2)).toBe(true);
    expect(matches({ detail: { 'instance-id': [{ suffix: { 'equals-ignore-case': 'DEF0' } }] } }, ec2)).toBe(
      true,
    );
  });

  it('anything-but: a value, a list, a prefix, a suffix; never an absent field', () => {
    expect(matches({ detail: { state: [{ 'anything-but': 'stopped' }] } }, ec2)).toBe(true);
    expect(matches({ detail: { state: [{ 'anything-but': ['running', 'stopped'] }] } }, ec2)).toBe(false);
    expect(matches({ detail: { c: { count: [{ 'anything-but': [4, 6] }] } } }, ec2)).toBe(true);
    expect(matches({ region: [{ 'anything-but': { prefix: 'us-' } }] }, ec2)).toBe(false);
    expect(matches({ region: [{ 'anything-but': { suffix: '-2' } }] }, ec2)).toBe(true);
    expect(matches({ region: [{ 'anything-but': { 'equals-ignore-case': ['US-WEST-1'] } }] }, ec2)).toBe(
      false,
    );
    expect(matches({ detail: { missing: [{ 'anything-but': 'x' }] } }, ec2)).toBe(false);
  });

  it('numeric ranges apply to numbers only', () => {
    expect(matches({ detail: { c: { count: [{ numeric: ['>', 0, '<=', 5] }] } } }, ec2)).toBe(true);
    expect(matches({ detail: { c: { count: [{ numeric: ['<', 5] }] } } }, ec2)).toBe(false);
    expect(matches({ detail: { c: { count: [{ numeric: ['=', 5] }] } } }, ec2)).toBe(true);
    expect(matches({ detail: { n: [{ numeric: ['>', 0] }] } }, { detail: { n: '7' } })).toBe(false);
  });

  it('exists: true on a present leaf, false on an absent field; never on an object', () => {
    expect(matches({ detail: { state: [{ exists: true }] } }, ec2)).toBe(true);
    expect(matches({ detail: { nothing: [{ exists: false }] } }, ec2)).toBe(true);
    expect(matches({ detail: { state: [{ exists: false }] } }, ec2)).toBe(false);
    expect(matches({ detail: { c: [{ exists: true }] } }, ec2)).toBe(false);
    expect(matches({ extra: { inner: [{ exists: false }] } }, ec2)).toBe(true);
  });

  it('wildcard, cidr and $or', () => {
    expect(matches({ detail: { 'instance-id': [{ wildcard: 'i-*def0' }] } }, ec2)).toBe(true);
    expect(matches({ detail: { 'instance-id': [{ wildcard: 'i-*x' }] } }, ec2)).toBe(false);
    expect(matches({ detail: { ip: [{ cidr: '10.0.0.0/24' }] } }, ec2)).toBe(true);
    expect(matches({ detail: { ip: [{ cidr: '10.0.1.0/24' }] } }, ec2)).toBe(false);
    expect(matches({ detail: { ip: [{ cidr: '2001:db8::/32' }] } }, { detail: { ip: '2001:db8::1' } })).toBe(
      true,
    );
    expect(matches({ $or: [{ source: ['aws.s3'] }, { detail: { state: ['running'] } }] }, ec2)).toBe(true);
    expect(matches({ $or: [{ source: ['aws.s3'] }, { region: ['eu-west-1'] }] }, ec2)).toBe(false);
  });

  it.each([
    [{ source: 'aws.ec2' }, /source: expected an array of matchers/],
    [{ source: [] }, /source: expected at least one matcher/],
    [{ source: [{ prefix: 1 }] }, /prefix: expected a string/],
    [{ n: [{ numeric: ['>'] }] }, /numeric: expected \[operator, number\]/],
    [{ n: [{ numeric: ['!', 1] }] }, /numeric: expected operators/],
    [{ n: [{ exists: 'yes' }] }, /exists: expected true or false/],
    [{ n: [{ regex: 'a' }] }, /unknown operator "regex"/],
    [{ n: [{ cidr: '10.0.0.0/33' }] }, /cidr: expected an IPv4 or IPv6 block/],
    [{ $or: [{ a: ['b'] }] }, /\$or: expected an array of at least two patterns/],
  ])('refuses the malformed pattern %j, naming where', (pattern, message) => {
    expect(() => validatePattern(pattern)).toThrow(message);
  });
});

/** The replicator's rule, as modules/secrets-replicator.ts synthesizes it. */
const SECRETS_PATTERN: JsonObject = {
  source: ['aws.secretsmanager'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['secretsmanager.amazonaws.com'],
    eventName: [...TRIGGERING_CALLS],
  },
};
const secret = { arn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf', name: 'app/db' };

const queueTarget = (name: string, extra: Partial<DiscoveredTarget> = {}): DiscoveredTarget => ({
  address: `aws_cloudwatch_event_target.${name}`,
  destination: {
    kind: 'queue',
    queue: {
      address: `aws_sqs_queue.${name}`,
      region: 'eu-west-1',
      name,
      arn: `arn:aws:sqs:eu-west-1:123456789012:${name}`,
      visibilityTimeoutSec: 30,
      fifo: false,
    },
  },
  ...extra,
});

const patternRule = (
  name: string,
  pattern: JsonObject,
  targets: DiscoveredTarget[],
  extra: Partial<DiscoveredRule> = {},
): DiscoveredRule => ({
  address: `aws_cloudwatch_event_rule.${name}`,
  region: 'eu-west-1',
  name,
  arn: `arn:aws:events:eu-west-1:123456789012:rule/${name}`,
  eventBusName: 'default',
  enabled: true,
  eventPattern: pattern,
  targets,
  ...extra,
});

describe('EventRules', () => {
  it("delivers the replicator's CloudTrail events, as the replicator's tests shape them, and no read-only call", async () => {
    const delivered: Array<{ target: string; payload: string }> = [];
    const rules = new EventRules(
      [
        patternRule('changes', SECRETS_PATTERN, [queueTarget('replication')]),
        patternRule('elsewhere', SECRETS_PATTERN, [queueTarget('other')], { region: 'us-east-1' }),
        patternRule('other-bus', SECRETS_PATTERN, [queueTarget('bus')], { eventBusName: 'custom' }),
        patternRule('off', SECRETS_PATTERN, [queueTarget('off')], { enabled: false }),
      ],
      async (target, payload) => void delivered.push({ target: target.address, payload }),
    );
    const put = secretsManagerCall('PutSecretValue', secret, { versionId: 'v2' });
    const reports = await rules.put(put as unknown as BusEvent);
    expect(reports).toEqual([
      { rule: 'changes', target: 'aws_cloudwatch_event_target.replication', ok: true },
    ]);
    expect(JSON.parse(delivered[0]?.payload ?? '')).toEqual(put);
    await rules.put(secretsManagerCall('GetSecretValue', secret) as unknown as BusEvent);
    await rules.put(secretsManagerCall('TagResource', secret) as unknown as BusEvent);
    expect(delivered).toHaveLength(2);
    expect(rules.matched.get('arn:aws:events:eu-west-1:123456789012:rule/changes')).toBe(2);
  });

  it('reports a failed delivery instead of throwing', async () => {
    const rules = new EventRules([patternRule('r', { source: ['shop'] }, [queueTarget('q')])], async () => {
      throw new Error('queue gone');
    });
    const event = busEvent({
      source: 'shop',
      detailType: 'Order',
      detail: {},
      region: 'eu-west-1',
      account: '123456789012',
    });
    expect(await rules.put(event)).toEqual([
      { rule: 'r', target: 'aws_cloudwatch_event_target.q', ok: false, error: 'queue gone' },
    ]);
  });

  it('refuses a rule whose pattern is malformed when it is loaded', () => {
    expect(
      () =>
        new EventRules(
          [patternRule('bad', { source: 'x' } as unknown as JsonObject, [])],
          async () => undefined,
        ),
    ).toThrow(/event pattern at source/);
  });
});

describe('what a target receives', () => {
  const event = busEvent({
    source: 'shop',
    detailType: 'Order Placed',
    detail: { id: 'o-1', total: 12.5, lines: [{ sku: 'a"b' }] },
    region: 'eu-west-1',
    account: '123456789012',
    time: '2024-01-01T00:00:00Z',
  });
  const rule = patternRule('orders', { source: ['shop'] }, []);

  it('the event itself by default, a constant input, or the part an input path selects', () => {
    expect(JSON.parse(targetPayload(queueTarget('q'), event, rule))).toEqual(event);
    expect(targetPayload(queueTarget('q', { input: '{"fixed":true}' }), event, rule)).toBe('{"fixed":true}');
    expect(
      JSON.parse(targetPayload(queueTarget('q', { inputPath: '$.detail.lines[0]' }), event, rule)),
    ).toEqual({
      sku: 'a"b',
    });
  });

  it("an input transformer's template, strings escaped inside JSON, with EventBridge's own variables", () => {
    const target = queueTarget('q', {
      inputTransformer: {
        inputPaths: { id: '$.detail.id', total: '$.detail.total', sku: '$.detail.lines[0].sku' },
        inputTemplate: '{"order":"<id>","total":<total>,"sku":"<sku>","rule":"<aws.events.rule-name>"}',
      },
    });
    expect(JSON.parse(targetPayload(target, event, rule))).toEqual({
      order: 'o-1',
      total: 12.5,
      sku: 'a"b',
      rule: 'orders',
    });
    const text = queueTarget('q', {
      inputTransformer: { inputPaths: { id: '$.detail.id' }, inputTemplate: 'order <id> placed' },
    });
    expect(targetPayload(text, event, rule)).toBe('order o-1 placed');
  });

  it('selects paths without reading through the prototype', () => {
    expect(selectPath({ a: { b: [1, 2] } }, '$.a.b[1]')).toBe(2);
    expect(selectPath({}, '$.constructor')).toBeUndefined();
    expect(() => selectPath({}, 'detail')).toThrow(/expected a JSONPath starting with \$/);
  });
});
