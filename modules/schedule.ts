import { CloudwatchEventRule } from '@cdktf/provider-aws/lib/cloudwatch-event-rule';
import { CloudwatchEventTarget } from '@cdktf/provider-aws/lib/cloudwatch-event-target';
import { LambdaPermission } from '@cdktf/provider-aws/lib/lambda-permission';
import { Construct } from 'constructs';
import type { BundledFunction } from './bundled-function';
import { requireIntInRange, requireMatch } from './lib/validate';

export interface ScheduleProps {
  /** Rule name, unique in the region. */
  readonly ruleName: string;
  /** `rate(...)` or `cron(...)`. */
  readonly expression: string;
  /** Function invoked, through its `live` alias. */
  readonly target: BundledFunction;
  /** Retries of a failed delivery to the function. Default: 2 (the function's own async retries and DLQ follow). */
  readonly maxRetries?: number;
}

/** An EventBridge schedule invoking a function's `live` alias (asynchronously: failures end in its DLQ). */
export class Schedule extends Construct {
  readonly rule: CloudwatchEventRule;

  constructor(scope: Construct, id: string, props: ScheduleProps) {
    super(scope, id);
    requireMatch(
      'Schedule',
      'ruleName',
      props.ruleName,
      /^[a-zA-Z0-9._-]{1,64}$/,
      '1-64 letters, digits, ., - or _',
    );
    requireMatch(
      'Schedule',
      'expression',
      props.expression,
      /^(rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)|cron\(.+\))$/,
      'rate(1 minute), rate(<n> minutes) (n > 1; hours and days alike) or cron(...)',
    );
    const maxRetries = requireIntInRange('Schedule', 'maxRetries', props.maxRetries ?? 2, 0, 185);

    this.rule = new CloudwatchEventRule(this, 'Rule', {
      name: props.ruleName,
      scheduleExpression: props.expression,
    });
    new CloudwatchEventTarget(this, 'Target', {
      rule: this.rule.name,
      arn: props.target.alias.arn,
      retryPolicy: { maximumRetryAttempts: maxRetries, maximumEventAgeInSeconds: 3600 },
    });
    new LambdaPermission(this, 'Invoke', {
      statementId: 'EventBridgeSchedule',
      action: 'lambda:InvokeFunction',
      functionName: props.target.function.functionName,
      qualifier: props.target.alias.name,
      principal: 'events.amazonaws.com',
      sourceArn: this.rule.arn,
    });
  }
}
