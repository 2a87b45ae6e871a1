import { CloudwatchDashboard } from '@cdktf/provider-aws/lib/cloudwatch-dashboard';
import type { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import { AWS_REGIONS, type AwsRegion, type EnvironmentConfig } from '../environments';
import { allocationConfigOf } from '../environments/quota';
import { runnerConfigOf } from '../environments/runners';
import { runnerDeadLetterQueueName, runnerQueueName } from '../runtime/runners/tables';
import type { Outcome } from '../runtime/secrets/outcomes';
import {
  alarmTopicName,
  apiRecordName,
  dashboardName,
  globalStackName,
  healthFunctionName,
  quotaName,
  regionalStackName,
  ROUTE53_METRICS_REGION,
  runnersName,
  secretsReplicatorName,
  syncName,
} from '../stacks/names';
import { BundledFunction } from './bundled-function';
import { RegionalFailoverRecord } from './failover-record';
import { fail, requireMatch } from './lib/validate';
import { QuotaService } from './quota-service';
import { RunnerControlPlane } from './runner-control-plane';
import { SecretsReplicator } from './secrets-replicator';
import { SyncBus } from './sync-bus';
import { SyncService } from './sync-service';

// ------------------------------------------------------------------------------------------------------
// The dashboard body, as CloudWatch takes it (Dashboard Body Structure and Syntax)

/** Options of one line of a metric widget (the last element of its array), or a search expression. */
export interface MetricLineOptions {
  readonly stat?: string;
  readonly label?: string;
  readonly yAxis?: 'left' | 'right';
  readonly id?: string;
  readonly expression?: string;
}

/** `[namespace, metric name, dimension name, value, ..., options]`, or `[{ expression, label, id }]`. */
export type MetricLine = readonly (string | MetricLineOptions)[];

interface Placed {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface MetricWidget extends Placed {
  readonly type: 'metric';
  readonly properties: {
    readonly title: string;
    /** Region the metrics (or the alarm) are read in. */
    readonly region: string;
    readonly view: 'timeSeries';
    readonly stacked: false;
    readonly period: number;
    readonly metrics?: readonly MetricLine[];
    /** One alarm, graphed with its threshold (then no `metrics`). */
    readonly annotations?: { readonly alarms: readonly string[] };
    readonly yAxis?: { readonly left: { readonly min: number } };
  };
}

export interface AlarmStatusWidget extends Placed {
  readonly type: 'alarm';
  readonly properties: {
    readonly title: string;
    /** 1-100 alarm ARNs (each names its region). */
    readonly alarms: readonly string[];
    readonly sortBy: 'stateUpdatedTimestamp';
  };
}

export interface TextWidget extends Placed {
  readonly type: 'text';
  readonly properties: { readonly markdown: string };
}

export type DashboardWidget = MetricWidget | AlarmStatusWidget | TextWidget;

export interface DashboardBody {
  readonly start: string;
  readonly periodOverride: 'inherit';
  readonly widgets: readonly DashboardWidget[];
}

/** CloudWatch's limits on a dashboard (the body size is kept under 1 MB). */
export const DASHBOARD_LIMITS = {
  widgets: 500,
  metricsPerWidget: 500,
  metricsPerDashboard: 2500,
  alarmsPerAlarmWidget: 100,
  bodyBytes: 1_000_000,
} as const;

const GRID_WIDTH = 24;
const GRAPH = { width: 6, height: 6 } as const;
const PERIOD_SEC = 300;
const KNOWN_REGIONS: ReadonlySet<string> = new Set(AWS_REGIONS);
const ALARM_ARN = /^arn:aws:cloudwatch:([a-z0-9-]+):\d{12}:alarm:[^\s]{1,255}$/;

/**
 * Checks a body against CloudWatch's structure and limits before anything is deployed: every widget placed
 * on the 24-column grid with its properties; a metric widget with a region and 1-500 metric lines (or one
 * alarm); an alarm status widget with 1-100 alarm ARNs; at most 500 widgets, 2,500 metric lines, 1 MB. The
 * body must not hold `${` either: Terraform would read it as an interpolation. Returns the body's JSON.
 */
export function validateDashboardBody(body: DashboardBody): string {
  const construct = 'EstateDashboard';
  if (body.widgets.length > DASHBOARD_LIMITS.widgets)
    fail(
      construct,
      'widgets',
      `${body.widgets.length} widgets`,
      `at most ${DASHBOARD_LIMITS.widgets} (CloudWatch's limit per dashboard): split the dashboard`,
    );
  let metricLines = 0;
  body.widgets.forEach((widget, index) => {
    const at = `widgets[${index}] (${widget.type === 'text' ? 'text' : widget.properties.title})`;
    const { x, y, width, height } = widget;
    if (![x, y, width, height].every(Number.isInteger) || x < 0 || y < 0 || width < 1 || height < 1)
      fail(
        construct,
        `${at} placement`,
        { x, y, width, height },
        'whole grid units, x and y >= 0, width and height >= 1',
      );
    if (x + width > GRID_WIDTH || height > 1000)
      fail(
        construct,
        `${at} placement`,
        { x, width, height },
        `x + width <= ${GRID_WIDTH} and height <= 1000`,
      );
    if (widget.type === 'text') {
      if (widget.properties.markdown.length === 0) fail(construct, `${at}.markdown`, '', 'some text');
      return;
    }
    if (widget.type === 'alarm') {
      const { alarms } = widget.properties;
      if (alarms.length < 1 || alarms.length > DASHBOARD_LIMITS.alarmsPerAlarmWidget)
        fail(
          construct,
          `${at}.alarms`,
          `${alarms.length} alarms`,
          `1-${DASHBOARD_LIMITS.alarmsPerAlarmWidget} alarm ARNs (CloudWatch's limit per alarm status widget)`,
        );
      for (const arn of alarms) {
        const region = ALARM_ARN.exec(arn)?.[1];
        if (!region || !KNOWN_REGIONS.has(region))
          fail(construct, `${at}.alarms`, arn, 'arn:aws:cloudwatch:<region>:<account>:alarm:<name>');
      }
      return;
    }
    const { region, metrics = [], annotations } = widget.properties;
    if (!KNOWN_REGIONS.has(region)) fail(construct, `${at}.region`, region, 'an AWS region code');
    const alarms = annotations?.alarms ?? [];
    if (metrics.length === 0 ? alarms.length !== 1 : alarms.length !== 0)
      fail(
        construct,
        `${at}.metrics`,
        `${metrics.length} metric lines, ${alarms.length} alarms`,
        'metric lines, or no metric line and exactly one alarm',
      );
    if (metrics.length > DASHBOARD_LIMITS.metricsPerWidget)
      fail(
        construct,
        `${at}.metrics`,
        `${metrics.length} metric lines`,
        `at most ${DASHBOARD_LIMITS.metricsPerWidget} (CloudWatch's limit per widget)`,
      );
    for (const line of metrics) {
      const [first, second] = line;
      const options = line.at(-1);
      const isSearch = typeof first === 'object' && typeof first.expression === 'string' && line.length === 1;
      const isMetric =
        typeof first === 'string' &&
        typeof second === 'string' &&
        typeof options === 'object' &&
        line.slice(2, -1).every((part) => typeof part === 'string') &&
        (line.length - 3) % 2 === 0;
      if (!isSearch && !isMetric)
        fail(
          construct,
          `${at}.metrics`,
          line,
          '[namespace, metric name, dimension name, value, ..., options] or [{ expression, id }]',
        );
    }
    metricLines += metrics.length + alarms.length;
  });
  if (metricLines > DASHBOARD_LIMITS.metricsPerDashboard)
    fail(
      construct,
      'widgets',
      `${metricLines} metric lines`,
      `at most ${DASHBOARD_LIMITS.metricsPerDashboard} (CloudWatch's limit per dashboard): split the dashboard`,
    );
  const json = JSON.stringify(body);
  const template = /[$%]\{/.exec(json);
  if (template)
    fail(
      construct,
      'body',
      json.slice(template.index, template.index + 40),
      'no `${` or `%{` (Terraform reads them as an interpolation or a template directive)',
    );
  const bytes = Buffer.byteLength(json);
  if (bytes > DASHBOARD_LIMITS.bodyBytes)
    fail(
      construct,
      'body',
      `${bytes} bytes`,
      `at most ${DASHBOARD_LIMITS.bodyBytes} bytes: split the dashboard`,
    );
  return json;
}

// ------------------------------------------------------------------------------------------------------
// What the dashboard shows: per region, per capability

/** An alarm, by the name its construct gives it and the region it lives in. */
export interface AlarmRef {
  readonly name: string;
  readonly region: string;
}

/** A metric graphed as it is emitted: namespace, name and every dimension. */
export interface GraphMetric {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
  readonly stat: string;
  readonly label?: string;
  readonly yAxis?: 'left' | 'right';
}

/** A search expression (metrics whose dimension values are not known in advance, e.g. outcomes). */
export interface GraphSearch {
  readonly search: string;
  readonly label: string;
}

/** One graph of a capability: metrics, or one alarm graphed with its threshold. */
export interface Graph {
  readonly title: string;
  /** Region the metrics are read in. Default: the capability's region. */
  readonly region?: string;
  readonly metrics?: readonly (GraphMetric | GraphSearch)[];
  readonly alarm?: AlarmRef;
}

/** What the dashboard shows of one capability in one region. */
export interface CapabilityPanel {
  readonly capability: 'health' | 'sync' | 'quota' | 'secrets' | 'runners';
  /** Its Lambda functions: errors, throttles and p99 duration are graphed. */
  readonly functions: readonly string[];
  /** Its SQS queues (inboxes and dead-letter queues): messages visible and age of the oldest are graphed. */
  readonly queues: readonly string[];
  /** Its own metrics. */
  readonly graphs: readonly Graph[];
  /** Every alarm it has, its functions' included. */
  readonly alarms: readonly AlarmRef[];
}

/** What the dashboard shows of one region. */
export interface RegionPanel {
  readonly region: string;
  readonly heading: string;
  readonly capabilities: readonly CapabilityPanel[];
}

const metric = (
  namespace: string,
  metricName: string,
  dimensions: Readonly<Record<string, string>>,
  stat: string,
  extra: Pick<GraphMetric, 'label' | 'yAxis'> = {},
): GraphMetric => ({ namespace, metricName, dimensions, stat, ...extra });

/** The estate's capabilities in one region of `env`, named as the regional stack's constructs name them. */
export function regionPanel(env: EnvironmentConfig, region: AwsRegion): RegionPanel {
  const peers = env.regions.filter((r) => r !== region);
  const primary = region === env.regions[0];
  const own = (name: string): AlarmRef => ({ name, region });
  const functionAlarms = (functions: readonly string[]) =>
    functions.flatMap((fn) => BundledFunction.alarmNamesOf(fn).map(own));
  const deadLetterQueues = (functions: readonly string[]) =>
    functions.map((fn) => BundledFunction.deadLetterQueueNameOf(fn));
  const capabilities: CapabilityPanel[] = [];

  // health: the function behind GET /health, and the Route 53 health check (its alarm lives in us-east-1)
  const health = healthFunctionName(env);
  const healthCheckAlarm: AlarmRef = {
    name: RegionalFailoverRecord.alarmNameOf(apiRecordName(env), region),
    region: ROUTE53_METRICS_REGION,
  };
  capabilities.push({
    capability: 'health',
    functions: [health],
    queues: deadLetterQueues([health]),
    graphs: [
      {
        title: `Route 53 health check (its alarm, in ${ROUTE53_METRICS_REGION})`,
        region: ROUTE53_METRICS_REGION,
        alarm: healthCheckAlarm,
      },
    ],
    alarms: [...functionAlarms([health]), healthCheckAlarm],
  });

  // sync
  const sync = syncName(env);
  const syncFunctions = SyncService.functionNames(sync);
  const syncDims = { service: 'sync', region };
  const syncMetric = (name: string, extra: Pick<GraphMetric, 'label' | 'yAxis'> = {}) =>
    metric('Estate/Sync', name, syncDims, 'Sum', extra);
  capabilities.push({
    capability: 'sync',
    functions: [syncFunctions.inbox, syncFunctions.antiEntropy],
    queues: [
      SyncBus.inboxName(sync),
      SyncBus.deadLetterQueueName(sync),
      SyncBus.undeliveredQueueName(sync),
      ...deadLetterQueues([syncFunctions.inbox, syncFunctions.antiEntropy]),
    ],
    graphs: [
      {
        title: 'merges and failures (Estate/Sync)',
        metrics: [
          syncMetric('Merges', { yAxis: 'right' }),
          ...[
            'PublishFailures',
            'Contention',
            'DeadLettered',
            'Redelivered',
            'AntiEntropyFailures',
            'Divergence',
            'FieldsRefused',
            'TypeClashes',
            'LineFailures',
          ].map((name) => syncMetric(name)),
          metric('AWS/SNS', 'NumberOfNotificationsFailed', { TopicName: sync }, 'Sum', {
            label: `${sync} notifications failed`,
          }),
        ],
      },
      {
        title: 'replication lag p99 (ms) and divergence per peer',
        metrics: peers.flatMap((peer) => [
          metric('Estate/Sync', 'ReplicationLagMs', { ...syncDims, peer }, 'p99', {
            label: `lag from ${peer}`,
          }),
          metric('Estate/Sync', 'Divergence', { ...syncDims, peer }, 'Sum', {
            label: `divergence with ${peer}`,
            yAxis: 'right',
          }),
        ]),
      },
    ],
    alarms: [
      ...SyncService.alarmNames(sync, peers).map(own),
      ...functionAlarms([syncFunctions.inbox, syncFunctions.antiEntropy]),
    ],
  });

  // quota
  const quota = quotaName(env);
  const quotaFunction = QuotaService.functionName(quota);
  const allocation = allocationConfigOf(env);
  const quotaDims = { service: 'quota-sync', region };
  const allocationRegions = allocation.regions.map((r) => r.region);
  capabilities.push({
    capability: 'quota',
    functions: [quotaFunction],
    queues: deadLetterQueues([quotaFunction]),
    graphs: [
      {
        title: 'passes and peers unknown (Estate/Quota)',
        metrics: [
          ...[
            'PassCompleted',
            'PassFailures',
            'SnapshotDecodeFailures',
            'OverrideWriteFailures',
            'UnreadableItems',
          ].map((name) => metric('Estate/Quota', name, quotaDims, 'Sum')),
          ...allocationRegions.map((peer) =>
            metric('Estate/Quota', 'PeerUnknown', { ...quotaDims, peer }, 'Maximum', {
              label: `${peer} unknown`,
            }),
          ),
          metric('Estate/Quota', 'PassDurationMs', quotaDims, 'Maximum', { yAxis: 'right' }),
        ],
      },
      {
        title: 'allocated shares (milli-units/s) and operator excess',
        metrics: [
          ...allocation.resources.map((resource) =>
            metric('Estate/Quota', 'AllocatedShare', { ...quotaDims, resource: resource.name }, 'Average', {
              label: `share of ${resource.name}`,
            }),
          ),
          metric('Estate/Quota', 'OperatorExcess', quotaDims, 'Maximum', { yAxis: 'right' }),
          metric('Estate/Quota', 'OverAdmissionEstimate', quotaDims, 'Maximum', { yAxis: 'right' }),
        ],
      },
    ],
    alarms: [
      ...QuotaService.alarmNames(quota, allocationRegions).map(own),
      ...functionAlarms([quotaFunction]),
    ],
  });

  // secrets: only where the environment configures a replicator for the region
  if (env.secrets.replication[region]) {
    const secrets = secretsReplicatorName(env);
    const replicator = SecretsReplicator.functionName(secrets);
    const secretsDims = { service: 'secrets-replicator', region };
    const outcomes: readonly Outcome[] = ['failed', 'not-a-replica', 'newer-at-destination'];
    capabilities.push({
      capability: 'secrets',
      functions: [replicator],
      queues: [
        SecretsReplicator.queueName(secrets),
        SecretsReplicator.deadLetterQueueName(secrets),
        ...deadLetterQueues([replicator]),
      ],
      graphs: [
        {
          title: 'replication (Estate/Secrets)',
          metrics: [
            ...[
              'DestinationsWritten',
              'DestinationFailures',
              'ConfigRefused',
              'DeadLettered',
              'Redelivered',
            ].map((name) => metric('Estate/Secrets', name, secretsDims, 'Sum')),
            ...outcomes.map((outcome) => metric('Estate/Secrets', `Outcome.${outcome}`, secretsDims, 'Sum')),
            metric('Estate/Secrets', 'ResyncSecrets', secretsDims, 'Sum', { yAxis: 'right' }),
          ],
        },
      ],
      alarms: [...SecretsReplicator.alarmNames(secrets).map(own), ...functionAlarms([replicator])],
    });
  }

  // runners: the redelivery sweep runs in the primary region only
  const runners = runnersName(env);
  const names = RunnerControlPlane.functionNames(runners);
  const runnerFunctions = [
    names.router,
    names.dispatcher,
    names.admin,
    names.cache,
    names.reaper,
    ...(primary ? [names.redelivery] : []),
  ];
  const runnerMetric = (service: string, name: string, extra: Pick<GraphMetric, 'label' | 'yAxis'> = {}) =>
    metric('Estate/Runners', name, { service, region }, 'Sum', extra);
  const routerSearch = (name: string, dimension: string): GraphSearch => ({
    search: `SEARCH('{Estate/Runners,${dimension},region,service} MetricName="${name}" region="${region}" service="runner-router"', 'Sum', ${PERIOD_SEC})`,
    label: `${name} by ${dimension}`,
  });
  capabilities.push({
    capability: 'runners',
    functions: runnerFunctions,
    queues: [
      ...runnerConfigOf(env).runnerTypes.map((type) => runnerQueueName(runners, type.name)),
      runnerDeadLetterQueueName(runners),
      ...deadLetterQueues(runnerFunctions),
    ],
    graphs: [
      {
        title: 'webhooks (Estate/Runners, runner-router)',
        metrics: [routerSearch('Deliveries', 'outcome'), routerSearch('Decisions', 'reason')],
      },
      {
        title: 'dispatch (Estate/Runners, runner-dispatcher)',
        metrics: [
          runnerMetric('runner-dispatcher', 'Dispatched', { yAxis: 'right' }),
          ...[
            'DispatchFailed',
            'TenantFailures',
            'LeaseContention',
            'RateLimited',
            'Waits',
            'Rerouted',
            'DeadLettered',
            'Redelivered',
          ].map((name) => runnerMetric('runner-dispatcher', name)),
        ],
      },
      {
        title: 'cache, reaper and redelivery (Estate/Runners)',
        metrics: [
          ...['CacheHitLocal', 'CacheHitRemote', 'CacheMiss'].map((name) =>
            runnerMetric('runner-cache', name, { yAxis: 'right' }),
          ),
          ...['CacheError', 'CacheRecordFailed'].map((name) => runnerMetric('runner-cache', name)),
          ...['RunnersReaped', 'ReaperErrors', 'StuckPending'].map((name) =>
            runnerMetric('runner-reaper', name),
          ),
          ...(primary
            ? ['Redelivered', 'RedeliveryFailed', 'RedeliveryErrors'].map((name) =>
                runnerMetric('runner-redelivery', name, { label: `redelivery ${name}` }),
              )
            : []),
        ],
      },
    ],
    alarms: [...RunnerControlPlane.alarmNames(runners).map(own), ...functionAlarms(runnerFunctions)],
  });

  return {
    region,
    heading: `## ${region}${primary ? ' (primary)' : ''}\nStack \`${regionalStackName(env, region)}\`: its capabilities' functions, queues, metrics and alarms. Alarms notify \`${alarmTopicName(env)}\`.`,
    capabilities,
  };
}

// ------------------------------------------------------------------------------------------------------
// Layout: a heading per region, then per capability a row of graphs and its alarm status

/** Title of a capability's widgets in a region, e.g. `eu-central-1 · sync · alarms`. */
export const widgetTitle = (region: string, capability: string, what: string): string =>
  `${region} · ${capability} · ${what}`;

export function dashboardBodyOf(
  intro: string,
  regions: readonly RegionPanel[],
  accountId: string,
): DashboardBody {
  const widgets: DashboardWidget[] = [];
  let y = 0;
  const text = (markdown: string, height: number) => {
    widgets.push({ type: 'text', x: 0, y, width: GRID_WIDTH, height, properties: { markdown } });
    y += height;
  };
  const alarmArn = (alarm: AlarmRef) => `arn:aws:cloudwatch:${alarm.region}:${accountId}:alarm:${alarm.name}`;
  const line = (m: GraphMetric | GraphSearch, index: number): MetricLine => {
    if ('search' in m) return [{ expression: m.search, label: m.label, id: `s${index}` }];
    const dimensions = Object.entries(m.dimensions)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flat();
    const options: MetricLineOptions = {
      stat: m.stat,
      ...(m.label ? { label: m.label } : {}),
      ...(m.yAxis === 'right' ? { yAxis: 'right' } : {}),
    };
    return [m.namespace, m.metricName, ...dimensions, options];
  };

  text(intro, 2);
  for (const panel of regions) {
    text(panel.heading, 2);
    for (const capability of panel.capabilities) {
      const title = (what: string) => widgetTitle(panel.region, capability.capability, what);
      const graphs: Graph[] = [
        {
          title: 'Lambda errors and throttles',
          metrics: capability.functions.flatMap((fn) => [
            metric('AWS/Lambda', 'Errors', { FunctionName: fn }, 'Sum', { label: `${fn} errors` }),
            metric('AWS/Lambda', 'Throttles', { FunctionName: fn }, 'Sum', { label: `${fn} throttles` }),
          ]),
        },
        {
          title: 'Lambda duration p99 (ms)',
          metrics: capability.functions.map((fn) =>
            metric('AWS/Lambda', 'Duration', { FunctionName: fn }, 'p99', { label: fn }),
          ),
        },
        ...(capability.queues.length > 0
          ? [
              {
                title: 'queues: messages visible, age of oldest (s, right)',
                metrics: capability.queues.flatMap((queue) => [
                  metric('AWS/SQS', 'ApproximateNumberOfMessagesVisible', { QueueName: queue }, 'Maximum', {
                    label: `${queue} visible`,
                  }),
                  metric('AWS/SQS', 'ApproximateAgeOfOldestMessage', { QueueName: queue }, 'Maximum', {
                    label: `${queue} oldest`,
                    yAxis: 'right',
                  }),
                ]),
              },
            ]
          : []),
        ...capability.graphs,
      ];
      graphs.forEach((graph, index) => {
        const column = index % (GRID_WIDTH / GRAPH.width);
        if (index > 0 && column === 0) y += GRAPH.height;
        widgets.push({
          type: 'metric',
          x: column * GRAPH.width,
          y,
          ...GRAPH,
          properties: {
            title: title(graph.title),
            region: graph.region ?? panel.region,
            view: 'timeSeries',
            stacked: false,
            period: PERIOD_SEC,
            ...(graph.alarm
              ? { annotations: { alarms: [alarmArn(graph.alarm)] } }
              : { metrics: (graph.metrics ?? []).map(line), yAxis: { left: { min: 0 } } }),
          },
        });
      });
      y += GRAPH.height;
      const height = 2 + Math.ceil(capability.alarms.length / 4);
      widgets.push({
        type: 'alarm',
        x: 0,
        y,
        width: GRID_WIDTH,
        height,
        properties: {
          title: title('alarms'),
          alarms: capability.alarms.map(alarmArn),
          sortBy: 'stateUpdatedTimestamp',
        },
      });
      y += height;
    }
  }
  return { start: '-PT12H', periodOverride: 'inherit', widgets };
}

// ------------------------------------------------------------------------------------------------------

export interface EstateDashboardProps {
  /** The environment whose regions the dashboard shows (every region, every capability the regional stack adds). */
  readonly environment: EnvironmentConfig;
  /** Provider the dashboard is created through (dashboards are global). Default: the stack's default provider. */
  readonly provider?: TerraformProvider;
}

/**
 * The environment's CloudWatch dashboard, `<env>-estate`, in its global stack: for every region, each
 * capability (health and failover, sync, quota, secrets replicator, runner control plane) with its functions'
 * errors, throttles and p99 duration, its queues' depth and age of oldest message, the metrics its handlers
 * emit, and the status of every alarm it has (all on the environment's alarm topic). The regional stacks
 * deploy after this one: everything is named, never referenced, from the helpers their constructs name
 * things with. The body is validated against CloudWatch's structure and limits at synth.
 */
export class EstateDashboard extends Construct {
  readonly dashboard: CloudwatchDashboard;
  readonly body: DashboardBody;
  readonly regions: readonly RegionPanel[];

  constructor(scope: Construct, id: string, props: EstateDashboardProps) {
    super(scope, id);
    const env = props.environment;
    const name = requireMatch(
      'EstateDashboard',
      'name',
      dashboardName(env),
      /^[A-Za-z0-9_-]{1,255}$/,
      '1-255 letters, digits, - or _',
    );
    this.regions = env.regions.map((region) => regionPanel(env, region));
    this.body = dashboardBodyOf(
      `# ${env.name} estate\nEvery region of \`${env.name}\`, capability by capability. Managed by cdktf in \`${globalStackName(env)}\` (\`modules/estate-dashboard.ts\`): changes made in the console are overwritten by the next rollout.`,
      this.regions,
      env.accountId,
    );
    this.dashboard = new CloudwatchDashboard(this, 'Dashboard', {
      dashboardName: name,
      dashboardBody: validateDashboardBody(this.body),
      provider: props.provider,
    });
  }
}
