import { CloudwatchDashboard } from '@cdktf/provider-aws/lib/cloudwatch-dashboard';
import { Testing } from 'cdktf';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments, validateEnvironment, type EnvironmentConfig } from '../../environments';
import { prod } from '../../environments/prod';
import { REPO_ROOT } from '../../modules/bundled-function';
import {
  DASHBOARD_LIMITS,
  EstateDashboard,
  validateDashboardBody,
  type AlarmStatusWidget,
  type DashboardBody,
  type DashboardWidget,
  type MetricLineOptions,
  type MetricWidget,
} from '../../modules/estate-dashboard';
import { synthesize } from '../../scripts/lib/synth';
import { globalStackName, regionalStackName, ROUTE53_METRICS_REGION } from '../../stacks/names';
import { only, resources, type TerraformJson } from '../support/synthesized';

const loaded = loadEnvironments({ ESTATE_EMULATOR_ENDPOINT: 'http://127.0.0.1:5999' });
const threeRegionProd = validateEnvironment('prod', {
  ...prod,
  regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'],
});
const workloads = Object.values(loaded).filter((env) => env.workloads);

/** Each environment's stacks, synthesized as the app does (the 3-region prod apart: it shares prod's name). */
const synthesized = new Map<string, Map<string, TerraformJson>>();
for (const [label, environments] of [
  ['estate', workloads],
  ['prod-3-regions', [threeRegionProd]],
] as const) {
  const outdir = mkdtempSync(join(tmpdir(), `estate-dashboard-${label}-`));
  for (const stack of synthesize(environments, outdir)) {
    const env = environments.find((e) => stack.name.startsWith(`${e.name}-`));
    if (!env) continue;
    const key = label === 'estate' ? env.name : label;
    const stacks = synthesized.get(key) ?? new Map<string, TerraformJson>();
    stacks.set(stack.name, JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as TerraformJson);
    synthesized.set(key, stacks);
  }
}

const cases: ReadonlyArray<readonly [string, EnvironmentConfig]> = [
  ...workloads.map((env) => [env.name, env] as const),
  ['prod-3-regions', threeRegionProd],
];
const stacksOf = (key: string) => synthesized.get(key) as Map<string, TerraformJson>;
const globalOf = (key: string, env: EnvironmentConfig) =>
  stacksOf(key).get(globalStackName(env)) as TerraformJson;
const regionalOf = (key: string, env: EnvironmentConfig, region: string) =>
  stacksOf(key).get(regionalStackName(env, region as EnvironmentConfig['regions'][number])) as TerraformJson;
const bodyOf = (key: string, env: EnvironmentConfig): DashboardBody =>
  JSON.parse(only(globalOf(key, env), 'aws_cloudwatch_dashboard').dashboard_body as string) as DashboardBody;

const metricWidgets = (body: DashboardBody) =>
  body.widgets.filter((w): w is MetricWidget => w.type === 'metric');
const alarmWidgets = (body: DashboardBody) =>
  body.widgets.filter((w): w is AlarmStatusWidget => w.type === 'alarm');
const titleOf = (widget: DashboardWidget) => (widget.type === 'text' ? '' : widget.properties.title);
/** The `[namespace, name, dimension, value, ...]` lines of a widget, as `{ namespace, metricName, dimensions }`. */
const linesOf = (widget: MetricWidget) =>
  (widget.properties.metrics ?? [])
    .filter((line) => typeof line[0] === 'string')
    .map((line) => {
      const parts = line.slice(0, -1) as string[];
      const [namespace = '', metricName = '', ...pairs] = parts;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i < pairs.length; i += 2) dimensions[pairs[i] as string] = pairs[i + 1] as string;
      return { namespace, metricName, dimensions, options: line.at(-1) as MetricLineOptions };
    });
const searchesOf = (widget: MetricWidget) =>
  (widget.properties.metrics ?? []).flatMap((line) => {
    const [first] = line;
    return typeof first === 'object' && first.expression ? [first.expression] : [];
  });

/** What the capabilities of a region are, as its stack shows them (the replicator only where configured). */
const capabilitiesOf = (env: EnvironmentConfig, region: string) => [
  'health',
  'sync',
  'quota',
  ...(env.secrets.replication[region as EnvironmentConfig['regions'][number]] ? ['secrets'] : []),
  'runners',
];

describe('EstateDashboard', () => {
  it('synthesizes one aws_cloudwatch_dashboard named after the environment', () => {
    const env = loaded.dev as EnvironmentConfig;
    const scope = Testing.synthScope((s) => void new EstateDashboard(s, 'Dashboard', { environment: env }));
    expect(scope).toHaveResourceWithProperties(CloudwatchDashboard, { dashboard_name: 'dev-estate' });
  });

  describe.each(cases)('%s', (key, env) => {
    const body = bodyOf(key, env);

    it('has one dashboard, <env>-estate, in the global stack and none in a regional stack', () => {
      expect(resources(globalOf(key, env), 'aws_cloudwatch_dashboard').map((d) => d.dashboard_name)).toEqual([
        `${env.name}-estate`,
      ]);
      for (const region of env.regions)
        expect(resources(regionalOf(key, env, region), 'aws_cloudwatch_dashboard')).toHaveLength(0);
    });

    it('shows, for every region, each capability: Lambda errors and throttles, p99 duration, queues, its own metrics and an alarm status', () => {
      for (const region of env.regions) {
        const secretsFunction = resources(regionalOf(key, env, region), 'aws_lambda_function').some(
          (f) => f.function_name === `${env.name}-secrets-replicator`,
        );
        expect(capabilitiesOf(env, region).includes('secrets')).toBe(secretsFunction);
        for (const capability of capabilitiesOf(env, region)) {
          const prefix = `${region} · ${capability} · `;
          const titles = body.widgets.map(titleOf).filter((title) => title.startsWith(prefix));
          expect(titles).toEqual(
            expect.arrayContaining([
              `${prefix}Lambda errors and throttles`,
              `${prefix}Lambda duration p99 (ms)`,
              `${prefix}queues: messages visible, age of oldest (s, right)`,
              `${prefix}alarms`,
            ]),
          );
          // Beyond the Lambda and queue graphs and the alarm status: the capability's own metrics.
          expect(titles.length).toBeGreaterThanOrEqual(5);
        }
        const shown = new Set(
          body.widgets
            .map(titleOf)
            .filter((title) => title.startsWith(`${region} · `))
            .map((title) => title.split(' · ')[1]),
        );
        expect([...shown]).toEqual(capabilitiesOf(env, region));
      }
    });

    it('lists every alarm of every regional stack in its capability’s alarm status, once, by the ARN of its region', () => {
      const synthesizedAlarms = env.regions.flatMap((region) =>
        resources(regionalOf(key, env, region), 'aws_cloudwatch_metric_alarm').map((alarm) => {
          const alarmRegion = alarm.provider === 'aws.route53-metrics' ? ROUTE53_METRICS_REGION : region;
          return {
            stackRegion: region,
            arn: `arn:aws:cloudwatch:${alarmRegion}:${env.accountId}:alarm:${String(alarm.alarm_name)}`,
          };
        }),
      );
      expect(synthesizedAlarms.length).toBeGreaterThan(0);
      const listed = alarmWidgets(body).flatMap((widget) =>
        widget.properties.alarms.map((arn) => ({
          stackRegion: widget.properties.title.split(' · ')[0],
          arn,
        })),
      );
      expect(new Set(listed.map((a) => a.arn)).size).toBe(listed.length);
      expect(listed.map((a) => `${a.stackRegion} ${a.arn}`).sort()).toEqual(
        synthesizedAlarms.map((a) => `${a.stackRegion} ${a.arn}`).sort(),
      );
    });

    it('graphs only functions, queues and topics that exist in the region’s stack, and every function and queue there', () => {
      for (const region of env.regions) {
        const stack = regionalOf(key, env, region);
        const functions = resources(stack, 'aws_lambda_function').map((f) => f.function_name);
        const queues = resources(stack, 'aws_sqs_queue').map((q) => q.name);
        const topics = resources(stack, 'aws_sns_topic').map((t) => t.name);
        const lines = metricWidgets(body)
          .filter((w) => w.properties.region === region && w.properties.title.startsWith(`${region} · `))
          .flatMap(linesOf);
        const graphed = (dimension: string) =>
          new Set(lines.flatMap((l) => (l.dimensions[dimension] ? [l.dimensions[dimension]] : [])));
        expect([...graphed('FunctionName')].sort()).toEqual([...functions].sort());
        expect([...graphed('QueueName')].sort()).toEqual([...queues].sort());
        for (const topic of graphed('TopicName')) expect(topics).toContain(topic);
        // Every metric line is read in the region of the capability it belongs to.
        for (const line of lines.filter((l) => l.dimensions.region))
          expect(line.dimensions.region).toBe(region);
      }
    });

    it('graphs each region’s Route 53 health check through its alarm, in us-east-1', () => {
      for (const region of env.regions) {
        const [widget] = metricWidgets(body).filter(
          (w) => w.properties.title.startsWith(`${region} · health · `) && w.properties.annotations,
        );
        expect(widget?.properties.region).toBe(ROUTE53_METRICS_REGION);
        const [alarm] = resources(regionalOf(key, env, region), 'aws_cloudwatch_metric_alarm').filter(
          (a) => a.namespace === 'AWS/Route53',
        );
        expect(widget?.properties.annotations?.alarms).toEqual([
          `arn:aws:cloudwatch:${ROUTE53_METRICS_REGION}:${env.accountId}:alarm:${String(alarm?.alarm_name)}`,
        ]);
      }
    });

    it('passes the body checks and stays well within CloudWatch’s limits', () => {
      expect(() => validateDashboardBody(body)).not.toThrow();
      expect(body.widgets.length).toBeLessThanOrEqual(DASHBOARD_LIMITS.widgets);
      expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(DASHBOARD_LIMITS.bodyBytes / 10);
      for (const widget of body.widgets) {
        expect(widget.x + widget.width).toBeLessThanOrEqual(24);
        if (widget.type === 'metric')
          expect(env.regions.concat(ROUTE53_METRICS_REGION)).toContain(widget.properties.region);
      }
    });
  });

  describe('custom metrics', () => {
    /** The runtime's sources of a namespace's capability, tests aside. */
    const sourcesOf = (namespace: string): string => {
      const dir = {
        'Estate/Sync': 'sync',
        'Estate/Quota': 'quota',
        'Estate/Secrets': 'secrets',
        'Estate/Runners': 'runners',
      }[namespace];
      if (!dir) throw new Error(`no runtime directory for ${namespace}`);
      const root = join(REPO_ROOT, 'runtime', dir);
      return readdirSync(root, { recursive: true, encoding: 'utf8' })
        .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
        .map((file) => readFileSync(join(root, file), 'utf8'))
        .join('\n');
    };
    const body = bodyOf('prod', loaded.prod as EnvironmentConfig);
    const custom = metricWidgets(body)
      .flatMap(linesOf)
      .filter((line) => line.namespace.startsWith('Estate/'));

    it('are graphed by names, services and dimensions their handlers emit', () => {
      expect(custom.length).toBeGreaterThan(30);
      for (const { namespace, metricName, dimensions } of custom) {
        const sources = sourcesOf(namespace);
        expect(sources).toContain(`'${namespace}'`);
        const [prefix, suffix] = metricName.split('.');
        if (suffix) {
          expect(sources).toContain(`\`${prefix}.\${`);
          expect(sources).toContain(`'${suffix}'`);
        } else expect(sources).toContain(`'${metricName}'`);
        expect(sources).toContain(`serviceName: '${dimensions.service}'`);
        for (const dimension of Object.keys(dimensions).filter((d) => d !== 'service' && d !== 'region'))
          expect(sources).toMatch(new RegExp(`addDimension\\((?:'${dimension}'|dimension)`));
      }
    });

    it('searches the router’s per-outcome and per-reason counts by its real service and dimensions', () => {
      const searches = metricWidgets(body).flatMap(searchesOf);
      expect(searches.length).toBeGreaterThan(0);
      const sources = sourcesOf('Estate/Runners');
      for (const search of searches) {
        const [, schema, name, service] =
          /^SEARCH\('\{([^}]+)\} MetricName="(\w+)" region="[a-z0-9-]+" service="([\w-]+)"', 'Sum', 300\)$/.exec(
            search,
          ) ?? [];
        expect(schema?.split(',')[0]).toBe('Estate/Runners');
        expect(sources).toContain(`serviceName: '${service}'`);
        expect(sources).toMatch(new RegExp(`count\\('${name}', '(${schema?.split(',')[1]})'`));
      }
    });
  });

  describe('validateDashboardBody', () => {
    const text = (y: number): DashboardWidget => ({
      type: 'text',
      x: 0,
      y,
      width: 24,
      height: 1,
      properties: { markdown: 'x' },
    });
    const graph = (properties: Partial<MetricWidget['properties']>): DashboardBody => ({
      start: '-PT1H',
      periodOverride: 'inherit',
      widgets: [
        {
          type: 'metric',
          x: 0,
          y: 0,
          width: 6,
          height: 6,
          properties: {
            title: 't',
            region: 'eu-central-1',
            view: 'timeSeries',
            stacked: false,
            period: 300,
            metrics: [['AWS/Lambda', 'Errors', 'FunctionName', 'f', { stat: 'Sum' }]],
            ...properties,
          },
        },
      ],
    });

    it('refuses more widgets than CloudWatch takes, saying how many', () => {
      const widgets = Array.from({ length: 501 }, (_, i) => text(i));
      expect(() => validateDashboardBody({ start: '-PT1H', periodOverride: 'inherit', widgets })).toThrow(
        /invalid widgets: received "501 widgets"; expected at most 500/,
      );
    });

    it('refuses an alarm status widget of more than 100 alarms', () => {
      const alarms = Array.from(
        { length: 101 },
        (_, i) => `arn:aws:cloudwatch:us-east-1:111111111111:alarm:a${i}`,
      );
      expect(() =>
        validateDashboardBody({
          start: '-PT1H',
          periodOverride: 'inherit',
          widgets: [
            {
              type: 'alarm',
              x: 0,
              y: 0,
              width: 24,
              height: 3,
              properties: { title: 'a', alarms, sortBy: 'stateUpdatedTimestamp' },
            },
          ],
        }),
      ).toThrow(/received "101 alarms"; expected 1-100 alarm ARNs/);
    });

    it('refuses a body past 1 MB', () => {
      const lines = Array.from({ length: 400 }, (_, i) => [
        'AWS/Lambda',
        'Errors',
        'FunctionName',
        `${'f'.repeat(3000)}${i}`,
        { stat: 'Sum' },
      ]);
      expect(() => validateDashboardBody(graph({ metrics: lines }))).toThrow(
        /invalid body: received "\d+ bytes"/,
      );
    });

    it('refuses a graph without a region, a malformed metric line, misplaced widgets and Terraform interpolation', () => {
      expect(() => validateDashboardBody(graph({ region: 'mars-1' }))).toThrow(/region: received "mars-1"/);
      expect(() =>
        validateDashboardBody(graph({ metrics: [['AWS/Lambda', 'Errors', 'FunctionName']] })),
      ).toThrow(/expected \[namespace, metric name, dimension name, value, \.\.\., options\]/);
      expect(() => validateDashboardBody(graph({ metrics: [] }))).toThrow(/exactly one alarm/);
      expect(() =>
        validateDashboardBody({ start: '-PT1H', periodOverride: 'inherit', widgets: [{ ...text(0), x: 1 }] }),
      ).toThrow(/x \+ width <= 24/);
      expect(() => validateDashboardBody(graph({ title: 'lag ${MAX}' }))).toThrow(/as an interpolation/);
      expect(() => validateDashboardBody(graph({ title: 'lag %{if x}' }))).toThrow(/template directive/);
    });
  });
});
