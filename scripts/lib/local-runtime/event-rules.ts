/**
 * EventBridge's default buses, locally: events put on a region's bus go to every enabled rule of that region
 * and bus whose pattern matches, and from each rule to its targets, as the text EventBridge would send
 * (the event, a constant `input`, the part an `input_path` selects, or an `input_transformer`'s template).
 */
import { randomUUID } from 'node:crypto';
import type { DiscoveredRule, DiscoveredTarget, InputTransformer } from './discover';
import { matchesPattern, validatePattern } from './event-pattern';
import type { Json, JsonObject } from './terraform-refs';

/** An event on a bus (the envelope every target receives). */
export interface BusEvent<D = unknown> {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': string;
  readonly source: string;
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: D;
}

/** Hands a target the text EventBridge would send it. */
export type TargetDelivery = (
  target: DiscoveredTarget,
  payload: string,
  rule: DiscoveredRule,
) => Promise<void>;

export interface DeliveryReport {
  readonly rule: string;
  readonly target: string;
  readonly ok: boolean;
  readonly error?: string;
}

/** `$`, `$.a.b`, `$.a[0]`, `$['a-b']`: the JSONPath subset EventBridge's input paths use. */
export function selectPath(value: unknown, path: string): unknown {
  if (!path.startsWith('$'))
    throw new Error(`input path ${JSON.stringify(path.slice(0, 60))}: expected a JSONPath starting with $`);
  const steps = path.slice(1).match(/\.[^.[\]]+|\[\d+\]|\['[^']*'\]|\["[^"]*"\]/g) ?? [];
  if (steps.join('') !== path.slice(1))
    throw new Error(
      `input path ${JSON.stringify(path.slice(0, 60))}: expected dotted names and [index] steps`,
    );
  let current: unknown = value;
  for (const step of steps) {
    if (current === null || typeof current !== 'object') return undefined;
    const key = step.startsWith('.')
      ? step.slice(1)
      : step.startsWith('[') && /^\[\d+\]$/.test(step)
        ? Number(step.slice(1, -1))
        : step.slice(2, -2);
    if (typeof key === 'number') current = Array.isArray(current) ? current[key] : undefined;
    else
      current = Object.prototype.hasOwnProperty.call(current, key)
        ? (current as Record<string, unknown>)[key]
        : undefined;
  }
  return current;
}

/** An input transformer's output: `<name>` placeholders filled from its paths and EventBridge's own variables. */
export function transformInput(transformer: InputTransformer, event: BusEvent, rule: DiscoveredRule): string {
  const variables = new Map<string, unknown>([
    ['aws.events.rule-arn', rule.arn],
    ['aws.events.rule-name', rule.name],
    ['aws.events.event.ingestion-time', event.time],
    ['aws.events.event', event],
    ['aws.events.event.json', event],
  ]);
  for (const [name, path] of Object.entries(transformer.inputPaths))
    variables.set(name, selectPath(event, path));
  const template = transformer.inputTemplate;
  const json = /^\s*[[{]/.test(template);
  return template.replace(
    /(")?<([A-Za-z0-9_.-]+)>(")?/g,
    (whole, open: string | undefined, name: string, close: string | undefined) => {
      if (!variables.has(name)) return whole;
      const value = variables.get(name);
      const quoted = open !== undefined && close !== undefined;
      if (typeof value === 'string') {
        // In a JSON template a string goes in escaped, inside the quotes the template gives it.
        const text = json ? JSON.stringify(value).slice(1, -1) : value;
        return `${open ?? ''}${text}${close ?? ''}`;
      }
      const text = value === undefined ? (quoted ? '' : 'null') : JSON.stringify(value);
      return `${open ?? ''}${text}${close ?? ''}`;
    },
  );
}

/** The text a target receives for an event. */
export function targetPayload(target: DiscoveredTarget, event: BusEvent, rule: DiscoveredRule): string {
  if (target.input !== undefined) return target.input;
  if (target.inputPath !== undefined) return JSON.stringify(selectPath(event, target.inputPath) ?? null);
  if (target.inputTransformer) return transformInput(target.inputTransformer, event, rule);
  return JSON.stringify(event);
}

export interface PutEventInput {
  readonly source: string;
  readonly detailType: string;
  readonly detail: unknown;
  readonly region: string;
  readonly account: string;
  readonly resources?: readonly string[];
  /** Default: now. */
  readonly time?: string;
}

/** An event as EventBridge would put it on a bus (a fresh id). */
export function busEvent(input: PutEventInput): BusEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': input.detailType,
    source: input.source,
    account: input.account,
    time: input.time ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: input.region,
    resources: [...(input.resources ?? [])],
    detail: input.detail,
  };
}

export class EventRules {
  private readonly rules: readonly DiscoveredRule[];
  /** Events matched per rule so far (by rule ARN). */
  readonly matched = new Map<string, number>();

  constructor(
    rules: readonly DiscoveredRule[],
    private readonly deliver: TargetDelivery,
  ) {
    const patterned = rules.filter((rule) => rule.eventPattern !== undefined);
    for (const rule of patterned) validatePattern(rule.eventPattern, '');
    this.rules = patterned;
  }

  /** The rules an event on `bus` of its region matches. */
  matching(event: BusEvent, bus = 'default'): DiscoveredRule[] {
    return this.rules.filter(
      (rule) =>
        rule.enabled &&
        rule.region === event.region &&
        rule.eventBusName === bus &&
        matchesPattern(rule.eventPattern as JsonObject, event as unknown as Json),
    );
  }

  /** Puts an event on a bus and delivers it to every matching rule's targets; answers each delivery. */
  async put(event: BusEvent, bus = 'default'): Promise<DeliveryReport[]> {
    const rules = this.matching(event, bus);
    const reports = await Promise.all(
      rules.flatMap((rule) => {
        this.matched.set(rule.arn, (this.matched.get(rule.arn) ?? 0) + 1);
        return rule.targets.map((target) => deliverOne(this.deliver, target, event, rule));
      }),
    );
    return reports;
  }
}

/** One target's delivery, failures reported rather than thrown. */
export async function deliverOne(
  deliver: TargetDelivery,
  target: DiscoveredTarget,
  event: BusEvent,
  rule: DiscoveredRule,
): Promise<DeliveryReport> {
  try {
    await deliver(target, targetPayload(target, event, rule), rule);
    return { rule: rule.name, target: target.address, ok: true };
  } catch (error) {
    return { rule: rule.name, target: target.address, ok: false, error: (error as Error).message };
  }
}
