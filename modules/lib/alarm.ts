import {
  CloudwatchMetricAlarm,
  type CloudwatchMetricAlarmConfig,
} from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { Construct } from 'constructs';

export interface NotifyingAlarmProps extends Partial<CloudwatchMetricAlarmConfig> {
  /** Prefix of the alarm's name: `<prefix>-<id in kebab case>` unless `alarmName` is given. */
  readonly prefix: string;
  /** The topic told when the alarm fires and when it clears. */
  readonly topicArn: string;
  readonly alarmDescription: string;
}

/** An alarm's name: `<prefix>-<id in kebab case>` (`dev-sync` + `InboxDeadLetters`: `dev-sync-inbox-dead-letters`). */
export const alarmNameOf = (prefix: string, id: string): string =>
  `${prefix}-${id.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase()}`;

/**
 * An alarm that notifies its topic both ways, with the estate's defaults (one occurrence, Sum >= 1, in one
 * 5-minute period; missing data not breaching). Each field of `props` overrides its default.
 */
export function notifyingAlarm(
  scope: Construct,
  id: string,
  props: NotifyingAlarmProps,
): CloudwatchMetricAlarm {
  const { prefix, topicArn, ...settings } = props;
  return new CloudwatchMetricAlarm(scope, id, {
    alarmName: alarmNameOf(prefix, id),
    statistic: 'Sum',
    period: 300,
    evaluationPeriods: 1,
    threshold: 1,
    comparisonOperator: 'GreaterThanOrEqualToThreshold',
    treatMissingData: 'notBreaching',
    alarmActions: [topicArn],
    okActions: [topicArn],
    ...settings,
  });
}
