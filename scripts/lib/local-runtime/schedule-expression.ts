/**
 * EventBridge schedule expressions (`rate(5 minutes)`, `cron(0/15 8-17 ? * MON-FRI *)`) and their fire times,
 * in UTC at minute granularity. Pure: no clock; times are epoch milliseconds passed in.
 */

export type Schedule =
  | { readonly kind: 'rate'; readonly periodMs: number; readonly expression: string }
  | { readonly kind: 'cron'; readonly fields: CronFields; readonly expression: string };

/** A parsed cron expression: the allowed values of each field, plus day rules that depend on the month. */
export interface CronFields {
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  /** Day-of-month: values 1-31, or rules (`L`, `15W`, `LW`); undefined when `?`. */
  readonly daysOfMonth?: DayOfMonthSpec;
  readonly months: ReadonlySet<number>;
  /** Day-of-week: values 1-7 (SUN=1), or rules (`6L`, `3#2`); undefined when `?`. */
  readonly daysOfWeek?: DayOfWeekSpec;
  readonly years: ReadonlySet<number>;
}

export interface DayOfMonthSpec {
  readonly days: ReadonlySet<number>;
  readonly last: boolean;
  /** `nW`: the weekday nearest day n; `LW`: the month's last weekday. */
  readonly nearestWeekday: readonly number[];
  readonly lastWeekday: boolean;
}

export interface DayOfWeekSpec {
  readonly days: ReadonlySet<number>;
  /** `nL`: the month's last day-of-week n. */
  readonly lastOf: readonly number[];
  /** `n#k`: the k-th day-of-week n of the month. */
  readonly nth: ReadonlyArray<{ readonly day: number; readonly nth: number }>;
}

export class ScheduleExpressionError extends Error {
  constructor(expression: string, problem: string) {
    super(`schedule expression ${JSON.stringify(expression.slice(0, 80))}: ${problem}`);
    this.name = 'ScheduleExpressionError';
  }
}

const MINUTE = 60_000;
const UNITS: Readonly<Record<string, number>> = { minute: MINUTE, hour: 60 * MINUTE, day: 1440 * MINUTE };
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
/** The last year EventBridge accepts. */
export const LAST_YEAR = 2199;
const FIRST_YEAR = 1970;

/** Parses `rate(value unit)` or `cron(6 fields)` as EventBridge documents them. */
export function parseSchedule(expression: string): Schedule {
  const rate = /^rate\((.*)\)$/.exec(expression.trim());
  if (rate) return parseRate(expression, (rate[1] as string).trim());
  const cron = /^cron\((.*)\)$/.exec(expression.trim());
  if (cron) return { kind: 'cron', fields: parseCron(expression, (cron[1] as string).trim()), expression };
  throw new ScheduleExpressionError(
    expression,
    'expected rate(value unit) or cron(minutes hours day-of-month month day-of-week year)',
  );
}

function parseRate(expression: string, body: string): Schedule {
  const match = /^(\d+) (minute|minutes|hour|hours|day|days)$/.exec(body);
  if (!match)
    throw new ScheduleExpressionError(
      expression,
      'rate: expected a positive integer and minute(s), hour(s) or day(s)',
    );
  const value = Number(match[1]);
  const unit = match[2] as string;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new ScheduleExpressionError(expression, 'rate: expected a value of at least 1');
  // EventBridge wants the singular for 1 and the plural otherwise.
  if ((value === 1) !== !unit.endsWith('s'))
    throw new ScheduleExpressionError(
      expression,
      `rate: expected ${value === 1 ? 'the singular unit for 1' : 'a plural unit for values above 1'}`,
    );
  const periodMs = value * (UNITS[unit.replace(/s$/, '')] as number);
  if (!Number.isSafeInteger(periodMs))
    throw new ScheduleExpressionError(expression, 'rate: the period is too long');
  return { kind: 'rate', periodMs, expression };
}

interface FieldRange {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
  /** Offset of names[0]: JAN is 1, SUN is 1. */
  readonly nameBase?: number;
}

const FIELDS = {
  minutes: { name: 'minutes', min: 0, max: 59 },
  hours: { name: 'hours', min: 0, max: 23 },
  daysOfMonth: { name: 'day-of-month', min: 1, max: 31 },
  months: { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  daysOfWeek: { name: 'day-of-week', min: 1, max: 7, names: WEEKDAYS, nameBase: 1 },
  years: { name: 'year', min: FIRST_YEAR, max: LAST_YEAR },
} as const satisfies Record<string, FieldRange>;

function valueOf(expression: string, field: FieldRange, token: string): number {
  const upper = token.toUpperCase();
  const named = field.names?.indexOf(upper) ?? -1;
  const value = named >= 0 ? named + (field.nameBase ?? 0) : /^\d+$/.test(token) ? Number(token) : NaN;
  if (!Number.isSafeInteger(value) || value < field.min || value > field.max)
    throw new ScheduleExpressionError(
      expression,
      `${field.name}: expected ${field.min}-${field.max}${field.names ? ` or ${field.names[0]}-${field.names[field.names.length - 1]}` : ''}, got ${JSON.stringify(token.slice(0, 10))}`,
    );
  return value;
}

/** `*`, `a`, `a-b`, `a/n`, `*\/n`, `a-b/n`, and comma-separated lists of them. */
function parseValues(expression: string, field: FieldRange, text: string): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText, extra] = part.split('/');
    if (range === undefined || range === '' || extra !== undefined)
      throw new ScheduleExpressionError(expression, `${field.name}: expected a value, range or increment`);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isSafeInteger(step) || step < 1 || (stepText !== undefined && !/^\d+$/.test(stepText)))
      throw new ScheduleExpressionError(expression, `${field.name}: expected a positive increment after /`);
    let from: number;
    let to: number;
    if (range === '*') {
      from = field.min;
      to = field.max;
    } else if (range.includes('-')) {
      const [a, b, more] = range.split('-');
      if (a === undefined || b === undefined || more !== undefined)
        throw new ScheduleExpressionError(expression, `${field.name}: expected a range a-b`);
      from = valueOf(expression, field, a);
      to = valueOf(expression, field, b);
      if (to < from)
        throw new ScheduleExpressionError(expression, `${field.name}: a range must not run backwards`);
    } else {
      from = valueOf(expression, field, range);
      // `a/n` runs from a to the field's end.
      to = stepText === undefined ? from : field.max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function parseDaysOfMonth(expression: string, text: string): DayOfMonthSpec {
  const days = new Set<number>();
  const nearestWeekday: number[] = [];
  let last = false;
  let lastWeekday = false;
  for (const part of text.split(',')) {
    const upper = part.toUpperCase();
    if (upper === 'L') last = true;
    else if (upper === 'LW') lastWeekday = true;
    else if (/^\d+W$/.test(upper))
      nearestWeekday.push(valueOf(expression, FIELDS.daysOfMonth, upper.slice(0, -1)));
    else for (const day of parseValues(expression, FIELDS.daysOfMonth, part)) days.add(day);
  }
  return { days, last, nearestWeekday, lastWeekday };
}

function parseDaysOfWeek(expression: string, text: string): DayOfWeekSpec {
  const days = new Set<number>();
  const lastOf: number[] = [];
  const nth: Array<{ day: number; nth: number }> = [];
  for (const part of text.split(',')) {
    const upper = part.toUpperCase();
    const hash = /^(\w+)#(\d)$/.exec(upper);
    if (upper === 'L') days.add(7);
    else if (/^\w+L$/.test(upper) && upper !== 'L')
      lastOf.push(valueOf(expression, FIELDS.daysOfWeek, upper.slice(0, -1)));
    else if (hash) {
      const n = Number(hash[2]);
      if (n < 1 || n > 5) throw new ScheduleExpressionError(expression, 'day-of-week: expected #1-#5');
      nth.push({ day: valueOf(expression, FIELDS.daysOfWeek, hash[1] as string), nth: n });
    } else for (const day of parseValues(expression, FIELDS.daysOfWeek, part)) days.add(day);
  }
  return { days, lastOf, nth };
}

function parseCron(expression: string, body: string): CronFields {
  const parts = body.split(/\s+/);
  if (parts.length !== 6)
    throw new ScheduleExpressionError(
      expression,
      `cron: expected 6 fields (minutes hours day-of-month month day-of-week year), got ${parts.length}`,
    );
  const [minutes, hours, dom, months, dow, years] = parts as [string, string, string, string, string, string];
  if ((dom === '?') === (dow === '?'))
    throw new ScheduleExpressionError(
      expression,
      'cron: exactly one of day-of-month and day-of-week must be ?',
    );
  return {
    minutes: parseValues(expression, FIELDS.minutes, minutes),
    hours: parseValues(expression, FIELDS.hours, hours),
    ...(dom === '?' ? {} : { daysOfMonth: parseDaysOfMonth(expression, dom) }),
    months: parseValues(expression, FIELDS.months, months),
    ...(dow === '?' ? {} : { daysOfWeek: parseDaysOfWeek(expression, dow) }),
    years: parseValues(expression, FIELDS.years, years),
  };
}

const daysInMonth = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
/** 1 (SUN) - 7 (SAT), EventBridge's numbering. */
const weekdayOf = (year: number, month: number, day: number) =>
  new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 1;

/** The weekday (MON-FRI) nearest `day` within its month, as the `W` rule picks it. */
function nearestWeekdayTo(year: number, month: number, day: number): number {
  const length = daysInMonth(year, month);
  if (day > length) return -1;
  const weekday = weekdayOf(year, month, day);
  if (weekday === 7) return day === 1 ? 3 : day - 1; // Saturday: Friday, or Monday the 3rd
  if (weekday === 1) return day === length ? day - 2 : day + 1; // Sunday: Monday, or Friday before
  return day;
}

/** Whether a day of a month matches the day-of-month and day-of-week fields. */
export function dayMatches(fields: CronFields, year: number, month: number, day: number): boolean {
  const length = daysInMonth(year, month);
  if (day > length) return false;
  const dom = fields.daysOfMonth;
  if (dom) {
    if (dom.days.has(day)) return true;
    if (dom.last && day === length) return true;
    if (dom.nearestWeekday.some((n) => nearestWeekdayTo(year, month, n) === day)) return true;
    if (dom.lastWeekday) {
      const lastWeekday = weekdayOf(year, month, length);
      const target = lastWeekday === 7 ? length - 1 : lastWeekday === 1 ? length - 2 : length;
      if (day === target) return true;
    }
    return false;
  }
  const dow = fields.daysOfWeek;
  if (!dow) return true;
  const weekday = weekdayOf(year, month, day);
  if (dow.days.has(weekday)) return true;
  if (dow.lastOf.includes(weekday) && day + 7 > length) return true;
  return dow.nth.some((rule) => rule.day === weekday && Math.ceil(day / 7) === rule.nth);
}

/** Whether a minute (epoch ms, any second within it) matches a cron expression. */
export function cronMatches(fields: CronFields, at: number): boolean {
  const date = new Date(at);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth() + 1;
  return (
    fields.years.has(year) &&
    fields.months.has(month) &&
    dayMatches(fields, year, month, date.getUTCDate()) &&
    fields.hours.has(date.getUTCHours()) &&
    fields.minutes.has(date.getUTCMinutes())
  );
}

const sorted = (values: ReadonlySet<number>) => [...values].sort((a, b) => a - b);

/**
 * The first minute strictly after `after` (epoch ms) that matches a cron expression, or undefined when none
 * does up to LAST_YEAR. Walks months and days, not minutes, so a sparse expression costs at most ~80,000 days.
 */
export function nextCronFire(fields: CronFields, after: number): number | undefined {
  const start = Math.floor(after / MINUTE) * MINUTE + MINUTE;
  const first = new Date(start);
  const hours = sorted(fields.hours);
  const minutes = sorted(fields.minutes);
  let year = first.getUTCFullYear();
  let month = first.getUTCMonth() + 1;
  let day = first.getUTCDate();
  let fromMinuteOfDay = first.getUTCHours() * 60 + first.getUTCMinutes();
  while (year <= LAST_YEAR) {
    if (!fields.years.has(year)) {
      [year, month, day, fromMinuteOfDay] = [year + 1, 1, 1, 0];
      continue;
    }
    if (!fields.months.has(month)) {
      [month, day, fromMinuteOfDay] = [month + 1, 1, 0];
      if (month > 12) [year, month] = [year + 1, 1];
      continue;
    }
    if (day <= daysInMonth(year, month) && dayMatches(fields, year, month, day)) {
      for (const hour of hours) {
        if (hour * 60 + 59 < fromMinuteOfDay) continue;
        for (const minute of minutes) {
          if (hour * 60 + minute >= fromMinuteOfDay) return Date.UTC(year, month - 1, day, hour, minute);
        }
      }
    }
    [day, fromMinuteOfDay] = [day + 1, 0];
    if (day > daysInMonth(year, month)) {
      [month, day] = [month + 1, 1];
      if (month > 12) [year, month] = [year + 1, 1];
    }
  }
  return undefined;
}

/**
 * The next fire time strictly after `after`: a rate fires at `anchor + k * period` (k >= 1; EventBridge
 * counts from the rule's creation, here the runtime's start), a cron expression at its next matching minute.
 */
export function nextFire(schedule: Schedule, after: number, anchor: number): number | undefined {
  if (schedule.kind === 'cron') return nextCronFire(schedule.fields, after);
  const periods = Math.max(1, Math.floor((after - anchor) / schedule.periodMs) + 1);
  return anchor + periods * schedule.periodMs;
}

/**
 * A clock running `speed` times faster than the real one from `start`: virtual time `start + (real - start) *
 * speed`. Fire times are computed in virtual time and waited for in real time.
 */
export interface SpedUpClock {
  readonly start: number;
  readonly speed: number;
}

export const toVirtual = (clock: SpedUpClock, real: number) =>
  clock.start + (real - clock.start) * clock.speed;
export const toReal = (clock: SpedUpClock, virtual: number) =>
  clock.start + (virtual - clock.start) / clock.speed;
