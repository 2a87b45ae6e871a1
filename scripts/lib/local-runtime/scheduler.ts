/**
 * Fires the schedule rules (EventBridge's `ScheduleExpression`, which the emulator never fires): each rule's
 * next fire time computed in a clock running `speed` times faster than the real one (60: `rate(5 minutes)`
 * every 5 s, `cron(* * * * ? *)` every second), its targets handed the scheduled event.
 */
import { randomUUID } from 'node:crypto';
import type { DiscoveredRule } from './discover';
import {
  nextFire,
  parseSchedule,
  toReal,
  toVirtual,
  type Schedule,
  type SpedUpClock,
} from './schedule-expression';

/** EventBridge's scheduled event, as a rule's targets receive it. */
export interface ScheduledEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': 'Scheduled Event';
  readonly source: 'aws.events';
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: Record<string, never>;
}

/** EventBridge's `time`: ISO 8601 to the second. */
export const eventTime = (at: number) => new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function scheduledEvent(
  rule: DiscoveredRule,
  account: string,
  at: number,
  id: string = randomUUID(),
): ScheduledEvent {
  return {
    version: '0',
    id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account,
    time: eventTime(at),
    region: rule.region,
    resources: [rule.arn],
    detail: {},
  };
}

export interface SchedulerOptions {
  readonly rules: readonly DiscoveredRule[];
  readonly account: string;
  /** How much faster than real time schedules run. Default 1. */
  readonly speed?: number;
  /** Hands a fired rule's event to its targets. */
  readonly fire: (rule: DiscoveredRule, event: ScheduledEvent) => Promise<void>;
  readonly onError?: (rule: DiscoveredRule, error: Error) => void;
  /** Default Date.now. */
  readonly now?: () => number;
}

/** The longest single timer (setTimeout's limit is ~24.8 days); longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Scheduler {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;
  private readonly clock: SpedUpClock;
  private readonly schedules: ReadonlyArray<{ rule: DiscoveredRule; schedule: Schedule }>;
  /** Fires per rule so far (by rule ARN). */
  readonly fired = new Map<string, number>();

  constructor(private readonly options: SchedulerOptions) {
    const speed = options.speed ?? 1;
    if (!Number.isFinite(speed) || speed <= 0)
      throw new Error(`speed: expected a positive number, got ${speed}`);
    this.clock = { start: (options.now ?? Date.now)(), speed };
    this.schedules = options.rules
      .filter((rule) => rule.enabled && rule.scheduleExpression)
      .map((rule) => ({ rule, schedule: parseSchedule(rule.scheduleExpression as string) }));
  }

  start(): void {
    for (const { rule, schedule } of this.schedules) this.arm(rule, schedule, this.clock.start);
  }

  /** The next real fire time of each rule (by ARN), for a status view. */
  nextFires(): Map<string, number | undefined> {
    const now = toVirtual(this.clock, (this.options.now ?? Date.now)());
    return new Map(
      this.schedules.map(({ rule, schedule }) => {
        const next = nextFire(schedule, now, this.clock.start);
        return [rule.arn, next === undefined ? undefined : toReal(this.clock, next)];
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.pending]);
  }

  private arm(rule: DiscoveredRule, schedule: Schedule, afterVirtual: number): void {
    if (this.stopped) return;
    const next = nextFire(schedule, afterVirtual, this.clock.start);
    if (next === undefined) return;
    const wait = () => {
      const remaining = toReal(this.clock, next) - (this.options.now ?? Date.now)();
      if (remaining > 0) {
        this.timers.set(rule.arn, setTimeout(wait, Math.min(remaining, MAX_TIMER_MS)));
        return;
      }
      this.fire(rule, toReal(this.clock, next));
      // Fires missed while the process was held up are not caught up (EventBridge does not either).
      this.arm(rule, schedule, Math.max(next, toVirtual(this.clock, (this.options.now ?? Date.now)())));
    };
    wait();
  }

  private fire(rule: DiscoveredRule, at: number): void {
    this.fired.set(rule.arn, (this.fired.get(rule.arn) ?? 0) + 1);
    // The event's time is the real moment of the fire: the handlers run on the real clock.
    const work = this.options
      .fire(rule, scheduledEvent(rule, this.options.account, at))
      .catch((error: Error) => this.options.onError?.(rule, error))
      .finally(() => this.pending.delete(work));
    this.pending.add(work);
  }
}
