import fc from 'fast-check';
import {
  cronMatches,
  nextCronFire,
  nextFire,
  parseSchedule,
  toReal,
  toVirtual,
  type CronFields,
} from '../../scripts/lib/local-runtime/schedule-expression';
import { scheduledEvent, Scheduler } from '../../scripts/lib/local-runtime/scheduler';
import type { DiscoveredRule } from '../../scripts/lib/local-runtime/discover';

const MINUTE = 60_000;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const cron = (expression: string): CronFields => {
  const schedule = parseSchedule(expression);
  if (schedule.kind !== 'cron') throw new Error('not cron');
  return schedule.fields;
};
/** The fire times after `from`, `count` of them. */
const fires = (expression: string, from: string, count: number): Array<string | undefined> => {
  const out: Array<string | undefined> = [];
  let after = at(from);
  const schedule = parseSchedule(expression);
  for (let i = 0; i < count; i++) {
    const next = nextFire(schedule, after, at(from));
    out.push(iso(next));
    if (next === undefined) break;
    after = next;
  }
  return out;
};

describe('parseSchedule', () => {
  it('reads rate expressions in minutes, hours and days', () => {
    expect(parseSchedule('rate(1 minute)')).toMatchObject({ kind: 'rate', periodMs: MINUTE });
    expect(parseSchedule('rate(5 minutes)')).toMatchObject({ kind: 'rate', periodMs: 5 * MINUTE });
    expect(parseSchedule('rate(2 hours)')).toMatchObject({ kind: 'rate', periodMs: 120 * MINUTE });
    expect(parseSchedule('rate(1 day)')).toMatchObject({ kind: 'rate', periodMs: 1440 * MINUTE });
  });

  it.each([
    ['rate(0 minutes)', /at least 1/],
    ['rate(1 minutes)', /singular unit for 1/],
    ['rate(5 minute)', /plural unit/],
    ['rate(5 seconds)', /minute\(s\), hour\(s\) or day\(s\)/],
    ['cron(* * * * *)', /expected 6 fields/],
    ['cron(* * * * * *)', /exactly one of day-of-month and day-of-week must be \?/],
    ['cron(* * ? * ? *)', /exactly one of day-of-month and day-of-week must be \?/],
    ['cron(60 * * * ? *)', /minutes: expected 0-59/],
    ['cron(0 24 * * ? *)', /hours: expected 0-23/],
    ['cron(0 0 ? FOO MON *)', /month: expected 1-12 or JAN-DEC/],
    ['cron(0 0 ? * 8 *)', /day-of-week: expected 1-7 or SUN-SAT/],
    ['cron(0 0 * * ? 2200)', /year: expected 1970-2199/],
    ['cron(5-1 * * * ? *)', /must not run backwards/],
    ['cron(*/0 * * * ? *)', /positive increment/],
    ['every 5 minutes', /expected rate\(value unit\) or cron/],
  ])('refuses %s, saying why', (expression, message) => {
    expect(() => parseSchedule(expression)).toThrow(message);
  });
});

describe('next fire times', () => {
  it('fires a rate every period from its anchor', () => {
    expect(fires('rate(5 minutes)', '2024-01-01T00:00:30Z', 3)).toEqual([
      '2024-01-01T00:05:30.000Z',
      '2024-01-01T00:10:30.000Z',
      '2024-01-01T00:15:30.000Z',
    ]);
  });

  it('fires cron(* * * * ? *) at every minute boundary', () => {
    expect(fires('cron(* * * * ? *)', '2024-01-01T00:00:30Z', 2)).toEqual([
      '2024-01-01T00:01:00.000Z',
      '2024-01-01T00:02:00.000Z',
    ]);
  });

  it('reads ranges, lists, increments and names (every 15 minutes, 8-10 UTC, weekdays)', () => {
    // 2024-01-05 is a Friday.
    expect(fires('cron(0/15 8-10 ? * MON-FRI *)', '2024-01-05T10:40:00Z', 3)).toEqual([
      '2024-01-05T10:45:00.000Z',
      '2024-01-08T08:00:00.000Z',
      '2024-01-08T08:15:00.000Z',
    ]);
    expect(fires('cron(0 12 1,15 JAN,JUL ? *)', '2024-01-10T00:00:00Z', 3)).toEqual([
      '2024-01-15T12:00:00.000Z',
      '2024-07-01T12:00:00.000Z',
      '2024-07-15T12:00:00.000Z',
    ]);
  });

  it('reads L (last day of the month, last weekday n of the month) and # (n-th weekday)', () => {
    expect(fires('cron(0 0 L * ? *)', '2024-01-31T00:00:00Z', 2)).toEqual([
      '2024-02-29T00:00:00.000Z',
      '2024-03-31T00:00:00.000Z',
    ]);
    // The last Friday (6) of the month, the second Tuesday (3#2).
    expect(fires('cron(0 9 ? * 6L *)', '2024-01-01T00:00:00Z', 2)).toEqual([
      '2024-01-26T09:00:00.000Z',
      '2024-02-23T09:00:00.000Z',
    ]);
    expect(fires('cron(0 9 ? * 3#2 *)', '2024-01-01T00:00:00Z', 2)).toEqual([
      '2024-01-09T09:00:00.000Z',
      '2024-02-13T09:00:00.000Z',
    ]);
  });

  it('reads W (the weekday nearest a day, never leaving the month)', () => {
    // 2024-06-01 is a Saturday: 1W is Monday the 3rd. 2024-03-31 is a Sunday: LW is Friday the 29th.
    expect(fires('cron(0 0 1W * ? *)', '2024-05-31T00:00:00Z', 1)).toEqual(['2024-06-03T00:00:00.000Z']);
    expect(fires('cron(0 0 LW * ? *)', '2024-03-01T00:00:00Z', 1)).toEqual(['2024-03-29T00:00:00.000Z']);
  });

  it('stops after the last year an expression allows', () => {
    expect(fires('cron(0 0 1 1 ? 2024)', '2023-12-01T00:00:00Z', 3)).toEqual([
      '2024-01-01T00:00:00.000Z',
      undefined,
    ]);
    expect(nextCronFire(cron('cron(0 0 29 2 ? 2199)'), at('2199-03-01T00:00:00Z'))).toBeUndefined();
  });
});

/** A random cron expression built from the documented field syntax. */
const field = (min: number, max: number) =>
  fc.oneof(
    fc.constant('*'),
    fc.integer({ min, max }).map(String),
    fc
      .tuple(fc.integer({ min, max }), fc.integer({ min, max }))
      .map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
    fc
      .tuple(fc.integer({ min, max }), fc.integer({ min: 1, max: max - min + 1 }))
      .map(([a, n]) => `${a}/${n}`),
    fc
      .uniqueArray(fc.integer({ min, max }), { minLength: 2, maxLength: 4 })
      .map((values) => values.join(',')),
  );
const cronExpression = fc
  .record({
    minutes: field(0, 59),
    hours: field(0, 23),
    dayRule: fc.oneof(
      field(1, 31).map((dom) => [dom, '?'] as const),
      field(1, 7).map((dow) => ['?', dow] as const),
      fc.constantFrom(
        ['L', '?'] as const,
        ['?', '6L'] as const,
        ['?', '2#1'] as const,
        ['15W', '?'] as const,
      ),
    ),
    months: field(1, 12),
  })
  .map(
    ({ minutes, hours, dayRule, months }) =>
      `cron(${minutes} ${hours} ${dayRule[0]} ${months} ${dayRule[1]} *)`,
  );
const start = fc.integer({ min: at('2020-01-01T00:00:00Z'), max: at('2030-01-01T00:00:00Z') });

describe('next fire times (properties)', () => {
  it('cron fire times are whole minutes, increasing, and each matches the expression', () => {
    fc.assert(
      fc.property(cronExpression, start, (expression, from) => {
        const fields = cron(expression);
        let after = from;
        for (let i = 0; i < 5; i++) {
          const next = nextCronFire(fields, after);
          if (next === undefined) return;
          expect(next % MINUTE).toBe(0);
          expect(next).toBeGreaterThan(after);
          expect(cronMatches(fields, next)).toBe(true);
          after = next;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('no matching minute lies between a moment and the next fire time', () => {
    // Dense expressions (every minute of some hours), so that brute force over the gap stays cheap.
    const dense = fc
      .record({ hours: field(0, 23), dow: field(1, 7) })
      .map(({ hours, dow }) => `cron(* ${hours} ? * ${dow} *)`);
    fc.assert(
      fc.property(dense, start, (expression, from) => {
        const fields = cron(expression);
        const next = nextCronFire(fields, from) as number;
        let skipped: number | undefined;
        for (
          let minute = Math.floor(from / MINUTE) * MINUTE + MINUTE;
          minute < next && !skipped;
          minute += MINUTE
        )
          if (cronMatches(fields, minute)) skipped = minute;
        expect(iso(skipped)).toBeUndefined();
      }),
      { numRuns: 100 },
    );
  });

  it('rate fire times are the anchor plus whole periods, each the first after the moment asked', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1440 }),
        start,
        fc.integer({ min: 0, max: 10 * 86_400_000 }),
        (minutes, anchor, offset) => {
          const schedule = parseSchedule(`rate(${minutes} ${minutes === 1 ? 'minute' : 'minutes'})`);
          const after = anchor + offset;
          const next = nextFire(schedule, after, anchor) as number;
          const period = minutes * MINUTE;
          expect((next - anchor) % period).toBe(0);
          expect(next).toBeGreaterThan(after);
          expect(next - period).toBeLessThanOrEqual(Math.max(after, anchor));
        },
      ),
    );
  });

  it('a sped-up clock maps virtual fire times back to real ones (speed 60: a 5-minute rate every 5 s)', () => {
    const clock = { start: at('2024-01-01T00:00:00Z'), speed: 60 };
    const schedule = parseSchedule('rate(5 minutes)');
    const first = nextFire(schedule, clock.start, clock.start) as number;
    expect(toReal(clock, first) - clock.start).toBe(5_000);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 9 }), (offset) => {
        expect(toReal(clock, toVirtual(clock, clock.start + offset))).toBeCloseTo(clock.start + offset, 3);
      }),
    );
  });
});

const rule = (expression: string, name = 'tick'): DiscoveredRule => ({
  address: `aws_cloudwatch_event_rule.${name}`,
  region: 'eu-west-1',
  name,
  arn: `arn:aws:events:eu-west-1:123456789012:rule/${name}`,
  eventBusName: 'default',
  enabled: true,
  scheduleExpression: expression,
  targets: [],
});

describe('Scheduler', () => {
  it("hands targets EventBridge's scheduled event: its rule ARN as the resource, the fire time to the second", () => {
    expect(
      scheduledEvent(rule('rate(1 minute)'), '123456789012', at('2024-01-01T00:01:00.250Z'), 'id-1'),
    ).toEqual({
      version: '0',
      id: 'id-1',
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '123456789012',
      time: '2024-01-01T00:01:00Z',
      region: 'eu-west-1',
      resources: ['arn:aws:events:eu-west-1:123456789012:rule/tick'],
      detail: {},
    });
  });

  it('fires sped-up schedules on time and skips disabled rules', async () => {
    jest.useFakeTimers({ now: at('2024-01-01T00:00:00Z') });
    try {
      const fired: Array<{ name: string; time: string }> = [];
      const scheduler = new Scheduler({
        rules: [
          rule('rate(5 minutes)', 'five'),
          rule('cron(* * * * ? *)', 'minutely'),
          { ...rule('rate(1 minute)', 'off'), enabled: false },
        ],
        account: '123456789012',
        speed: 60,
        now: () => Date.now(),
        fire: async (r, event) => void fired.push({ name: r.name, time: event.time }),
      });
      scheduler.start();
      await jest.advanceTimersByTimeAsync(10_000);
      await scheduler.stop();
      expect(fired.filter((f) => f.name === 'five').map((f) => f.time)).toEqual([
        '2024-01-01T00:00:05Z',
        '2024-01-01T00:00:10Z',
      ]);
      expect(fired.filter((f) => f.name === 'minutely')).toHaveLength(10);
      expect(fired.some((f) => f.name === 'off')).toBe(false);
    } finally {
      jest.useRealTimers();
    }
  });

  it('refuses a speed that is not a positive number', () => {
    expect(() => new Scheduler({ rules: [], account: '1', speed: 0, fire: async () => undefined })).toThrow(
      /speed: expected a positive number/,
    );
  });
});
