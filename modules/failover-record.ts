import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { Route53HealthCheck } from '@cdktf/provider-aws/lib/route53-health-check';
import { Route53Record } from '@cdktf/provider-aws/lib/route53-record';
import { Construct } from 'constructs';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

/** What the region's latency record answers with. */
export type RecordTarget =
  | { readonly kind: 'alias'; readonly dnsName: string; readonly zoneId: string }
  | { readonly kind: 'cname'; readonly host: string };

export interface RegionalFailoverRecordProps {
  /** Hosted zone of the record. */
  readonly zoneId: string;
  /** Fully qualified, latency-routed name, the same in every region. */
  readonly recordName: string;
  /** This region: the latency record's region and set identifier. */
  readonly region: string;
  readonly target: RecordTarget;
  /** Host the health check probes over HTTPS: the region's own endpoint, never the shared name. */
  readonly healthCheckHost: string;
  /** Path of the health endpoint. Default: `/health`. */
  readonly healthPath?: string;
  /** Seconds between checks: 10 (fast) or 30. Default: 10. */
  readonly requestIntervalSec?: 10 | 30;
  /** Consecutive failures before the region counts as unhealthy. Default: 3. */
  readonly failureThreshold?: number;
  /** TTL of a CNAME target in seconds (alias records take the target's). Default: 60. */
  readonly ttlSec?: number;
  /** Provider in us-east-1, where Route 53 publishes health-check metrics, for the alarm. */
  readonly metricsProvider: AwsProvider;
  /** Topic in us-east-1 notified when the region's health check fails or recovers. */
  readonly alarmTopicArn: string;
}

/**
 * One region's entry in the latency-routed name: a Route 53 health check on the region's `/health` (HTTPS,
 * latency measured), the latency record tied to it, so an unhealthy region drops out of DNS, and an alarm
 * on the check. Expected failover: detection (interval x threshold, 30 s by default) plus the record's TTL.
 */
export class RegionalFailoverRecord extends Construct {
  readonly healthCheck: Route53HealthCheck;
  readonly record: Route53Record;
  readonly alarm: CloudwatchMetricAlarm;

  /** Name of the alarm on a region's health check (it lives in us-east-1, beside Route 53's metrics). */
  static alarmNameOf(recordName: string, region: string): string {
    return `${recordName}-${region}-unhealthy`;
  }

  constructor(scope: Construct, id: string, props: RegionalFailoverRecordProps) {
    super(scope, id);
    const path = requireMatch(
      'RegionalFailoverRecord',
      'healthPath',
      props.healthPath ?? '/health',
      /^\/\S*$/,
      'a path starting with /',
    );
    const interval = props.requestIntervalSec ?? 10;
    if (interval !== 10 && interval !== 30)
      fail('RegionalFailoverRecord', 'requestIntervalSec', interval, '10 or 30');
    const threshold = requireIntInRange(
      'RegionalFailoverRecord',
      'failureThreshold',
      props.failureThreshold ?? 3,
      1,
      10,
    );
    const ttl = requireIntInRange('RegionalFailoverRecord', 'ttlSec', props.ttlSec ?? 60, 0, 86400);

    this.healthCheck = new Route53HealthCheck(this, 'HealthCheck', {
      type: 'HTTPS',
      fqdn: props.healthCheckHost,
      port: 443,
      resourcePath: path,
      requestInterval: interval,
      failureThreshold: threshold,
      measureLatency: true,
      enableSni: true,
      tags: { Name: `${props.recordName} ${props.region}` },
    });

    const routing = {
      zoneId: props.zoneId,
      name: props.recordName,
      setIdentifier: props.region,
      latencyRoutingPolicy: { region: props.region },
      healthCheckId: this.healthCheck.id,
    };
    this.record =
      props.target.kind === 'alias'
        ? new Route53Record(this, 'Record', {
            ...routing,
            type: 'A',
            alias: { name: props.target.dnsName, zoneId: props.target.zoneId, evaluateTargetHealth: true },
          })
        : new Route53Record(this, 'Record', { ...routing, type: 'CNAME', ttl, records: [props.target.host] });

    this.alarm = new CloudwatchMetricAlarm(this, 'Alarm', {
      provider: props.metricsProvider,
      alarmName: RegionalFailoverRecord.alarmNameOf(props.recordName, props.region),
      alarmDescription: `Route 53 health check of ${props.region} for ${props.recordName} is failing`,
      namespace: 'AWS/Route53',
      metricName: 'HealthCheckStatus',
      dimensions: { HealthCheckId: this.healthCheck.id },
      statistic: 'Minimum',
      period: 60,
      evaluationPeriods: 1,
      threshold: 1,
      comparisonOperator: 'LessThanThreshold',
      treatMissingData: 'breaching',
      alarmActions: [props.alarmTopicArn],
      okActions: [props.alarmTopicArn],
    });
  }
}
