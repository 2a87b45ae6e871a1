import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments, validateEnvironment, type EnvironmentConfig } from '../../environments';
import { prod } from '../../environments/prod';
import { REPO_ROOT } from '../../modules/bundled-function';
import { synthesize } from '../../scripts/lib/synth';
import { resources, type Block, type TerraformJson } from '../support/synthesized';

const environments = loadEnvironments({ ESTATE_EMULATOR_ENDPOINT: 'http://127.0.0.1:5999' });
const outdir = mkdtempSync(join(tmpdir(), 'estate-synth-'));
const stacks = synthesize(Object.values(environments), outdir);
const stackJson = (name: string): TerraformJson => {
  const stack = stacks.find((s) => s.name === name);
  if (!stack) throw new Error(`no stack ${name}`);
  return JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as TerraformJson;
};
const providersOf = (name: string): Block[] => stackJson(name).provider?.aws ?? [];
const envOf = (name: string): EnvironmentConfig => {
  const env = Object.values(environments).find((e) => name.startsWith(`${e.name}-`));
  if (!env) throw new Error(`no environment for ${name}`);
  return env;
};

describe('the estate (main.ts composition)', () => {
  it('has shared-<region>, and <env>-global plus <env>-<region> for dev, prod and local', () => {
    expect(stacks.map((s) => s.name).sort()).toEqual(
      [
        'shared-eu-central-1',
        'shared-us-east-1',
        ...['dev', 'prod', 'local'].flatMap((env) => [
          `${env}-global`,
          `${env}-eu-central-1`,
          `${env}-us-east-1`,
        ]),
        'local-shared-eu-central-1',
        'local-shared-us-east-1',
      ].sort(),
    );
  });

  const deployed = stacks.map((s) => s.name).filter((name) => !name.startsWith('local-'));

  it.each(deployed)("%s: every provider uses the run's own credentials and pins the account", (name) => {
    // The role comes with the run (plan role on a pull request, deploy role in an environment's job): a
    // provider that assumed the deploy role itself would let a plan run hold a role that can apply.
    const env = envOf(name);
    const providers = providersOf(name);
    expect(providers.length).toBeGreaterThan(0);
    for (const provider of providers) {
      expect(provider.assume_role).toBeUndefined();
      expect(provider.allowed_account_ids).toEqual([env.accountId]);
      expect(provider.endpoints).toBeUndefined();
    }
  });

  it.each(deployed)('%s: keeps its state in its own Terraform Cloud workspace', (name) => {
    const env = envOf(name);
    expect(env.backend.type).toBe('terraform-cloud');
    expect(stackJson(name).terraform?.cloud).toEqual({
      hostname: 'app.terraform.io',
      organization: env.backend.type === 'terraform-cloud' ? env.backend.organization : '',
      workspaces: {
        name: `estate-${name}`,
        project: env.backend.type === 'terraform-cloud' ? env.backend.project : '',
      },
    });
  });

  it.each(stacks.map((s) => s.name))('%s: tags everything with env, region and stack', (name) => {
    for (const provider of providersOf(name)) {
      expect(provider.default_tags).toEqual([
        { tags: { env: envOf(name).name, region: provider.region, stack: name, 'managed-by': 'cdktf' } },
      ]);
    }
  });

  it.each(['local-global', 'local-eu-central-1', 'local-us-east-1', 'local-shared-eu-central-1'])(
    '%s: talks to the emulator with dummy credentials, local state, no role',
    (name) => {
      const [provider] = providersOf(name);
      expect(provider).toMatchObject({
        access_key: 'test',
        secret_key: 'test',
        skip_credentials_validation: true,
        s3_use_path_style: true,
      });
      expect(provider?.assume_role).toBeUndefined();
      expect(provider?.allowed_account_ids).toBeUndefined();
      expect((provider?.endpoints as Block[])[0]).toMatchObject({
        dynamodb: 'http://127.0.0.1:5999',
        lambda: 'http://127.0.0.1:5999',
      });
      expect(stackJson(name).terraform?.backend).toEqual({ local: { path: `terraform.${name}.tfstate` } });
    },
  );

  it.each([
    ['prod', 2],
    ['dev', 1],
  ])(
    '%s: provisions %i concurrent executions on the live aliases of the health function and the webhook router in every region',
    (env, count) => {
      for (const region of ['eu-central-1', 'us-east-1']) {
        const configs = resources(stackJson(`${env}-${region}`), 'aws_lambda_provisioned_concurrency_config');
        expect(configs.map((c) => c.provisioned_concurrent_executions)).toEqual([count, count]);
        expect(configs.map((c) => c.function_name).sort()).toEqual([
          expect.stringContaining('Health'),
          expect.stringContaining('Runners_Router'),
        ]);
      }
    },
  );

  it('local: provisions no concurrency (the emulator has no such API)', () => {
    expect(
      resources(stackJson('local-eu-central-1'), 'aws_lambda_provisioned_concurrency_config'),
    ).toHaveLength(0);
  });

  it('wires the health function to its region state table', () => {
    const json = stackJson('prod-us-east-1');
    const [fn] = resources(json, 'aws_lambda_function');
    expect((fn?.environment as Block).variables).toEqual({
      STATE_TABLE_NAME: '${aws_dynamodb_table.StateTable_1028E22B.name}',
      REGION_STATUS_TABLE_NAME: 'prod-region-status',
    });
    expect(
      resources(json, 'aws_dynamodb_table')
        .map((t) => t.name)
        .sort(),
    ).toEqual(['prod-quota-limits', 'prod-region-state']);
  });

  it('lets the health function write and read only its own item of the state table (the data plane)', () => {
    const json = stackJson('prod-us-east-1');
    const policy = resources(json, 'aws_iam_role_policy').find((p) =>
      String(p.role).includes('aws_iam_role.Health_Role_'),
    );
    const statements = JSON.parse(String(policy?.policy)) as { Statement: Block[] };
    expect(statements.Statement.find((s) => s.Sid === 'ProbeStateTableItsOwnItem')).toEqual({
      Sid: 'ProbeStateTableItsOwnItem',
      Effect: 'Allow',
      Action: ['dynamodb:UpdateItem', 'dynamodb:GetItem'],
      Resource: ['${aws_dynamodb_table.StateTable_1028E22B.arn}'],
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['health#us-east-1'] } },
    });
    expect(JSON.stringify(statements)).not.toContain('DescribeTable');
  });

  it('sweeps failed webhook deliveries from the primary region only', () => {
    const names = (stack: string) =>
      resources(stackJson(stack), 'aws_lambda_function').map((f) => f.function_name);
    expect(names('prod-eu-central-1')).toContain('prod-runners-redelivery');
    expect(names('prod-us-east-1')).not.toContain('prod-runners-redelivery');
  });

  it('wires the sync service: the inbox consumer with partial batch responses, anti-entropy on schedule', () => {
    const json = stackJson('prod-eu-central-1');
    const mapping = resources(json, 'aws_lambda_event_source_mapping').find((m) =>
      String(m.function_name).includes('Sync_Inbox'),
    );
    expect(mapping).toMatchObject({
      event_source_arn: expect.stringMatching(/^\$\{aws_sqs_queue\.SyncBus_Inbox_\w+\.arn\}$/),
      function_name: expect.stringMatching(/^\$\{aws_lambda_alias\.Sync_Inbox_Live_\w+\.arn\}$/),
      function_response_types: ['ReportBatchItemFailures'],
      batch_size: 10,
    });
    const schedules = resources(json, 'aws_cloudwatch_event_rule').map((r) => [
      r.name,
      r.schedule_expression,
    ]);
    expect(schedules).toContainEqual(['prod-sync-anti-entropy', 'rate(5 minutes)']);
    const functions = resources(json, 'aws_lambda_function').map((f) => f.function_name);
    expect(functions.sort()).toEqual([
      'prod-health',
      'prod-quota-sync',
      'prod-runners-admin',
      'prod-runners-cache',
      'prod-runners-dispatcher',
      'prod-runners-reaper',
      // The primary region (eu-central-1) asks GitHub to redeliver failed deliveries for the environment.
      'prod-runners-redelivery',
      'prod-runners-router',
      'prod-secrets-replicator',
      'prod-sync-anti-entropy',
      'prod-sync-inbox',
    ]);
    // The mapping polls as the function's role: it waits for the role's policy (IAM first).
    expect(mapping?.depends_on).toEqual([expect.stringMatching(/^aws_iam_role_policy\.Sync_Inbox_Policy_/)]);
    // Only the latency-sensitive functions keep warm capacity: health (Route 53 checks) and the webhook router
    // (GitHub waits 10 s and never retries a failed delivery by itself).
    expect(resources(json, 'aws_lambda_provisioned_concurrency_config')).toHaveLength(2);
  });

  it('sizes the sync service from the environment: visibility from the consumer, capped inbox, own anti-entropy', () => {
    const env = envOf('prod-eu-central-1');
    const json = stackJson('prod-eu-central-1');
    const queues = resources(json, 'aws_sqs_queue');
    // 6 x the inbox's timeout + the mapping's 1 s batching window.
    expect(queues.find((q) => q.name === 'prod-sync-inbox')?.visibility_timeout_seconds).toBe(
      6 * env.sync.inboxTimeoutSec + 1,
    );
    const mapping = resources(json, 'aws_lambda_event_source_mapping').find((m) =>
      String(m.function_name).includes('Sync_Inbox'),
    );
    expect(mapping).toMatchObject({
      scaling_config: { maximum_concurrency: env.sync.inboxMaxConcurrency },
      maximum_batching_window_in_seconds: 1,
    });
    const functions = resources(json, 'aws_lambda_function');
    const antiEntropy = functions.find((f) => f.function_name === 'prod-sync-anti-entropy');
    expect(antiEntropy).toMatchObject({ timeout: 120, memory_size: env.sync.antiEntropyMemoryMiB });
    const variables = (antiEntropy?.environment as { variables: Record<string, string> }).variables;
    expect(variables).toMatchObject({
      SYNC_DOCUMENTS_INDEX: 'sync-documents',
      SYNC_SWEEP_PAGE_SIZE: '1000',
      SYNC_SETTLE_MS: '60000',
      SYNC_MERGE_CONCURRENCY: '4',
      SYNC_BUCKETS: `eu-central-1=prod-snapshots-${env.accountId}-eu-central-1,us-east-1=prod-snapshots-${env.accountId}-us-east-1`,
    });
    // The same buckets the quota service names, so a state object lands where the quota's bucket is.
    const quota = functions.find((f) => f.function_name === 'prod-quota-sync');
    const quotaBuckets = (quota?.environment as { variables: Record<string, string> }).variables
      .QUOTA_SNAPSHOT_BUCKETS;
    expect(String(quotaBuckets).split(',').sort().join(',')).toBe(variables.SYNC_BUCKETS);
  });

  it("indexes the documents of the region's state table, sparse on syncShard and changedAt", () => {
    const table = resources(stackJson('prod-eu-central-1'), 'aws_dynamodb_table').find((t) =>
      String(t.name).endsWith('-region-state'),
    );
    expect(table?.global_secondary_index).toEqual([
      {
        name: 'sync-documents',
        hash_key: 'syncShard',
        range_key: 'changedAt',
        projection_type: 'INCLUDE',
        non_key_attributes: ['digest', 'version'],
      },
    ]);
    expect(table?.attribute).toEqual([
      { name: 'pk', type: 'S' },
      { name: 'sk', type: 'S' },
      { name: 'syncShard', type: 'S' },
      { name: 'changedAt', type: 'N' },
    ]);
  });

  it('leaves the emulator its disabled inbox mapping without a concurrency cap', () => {
    const mapping = resources(stackJson('local-eu-central-1'), 'aws_lambda_event_source_mapping').find((m) =>
      String(m.function_name).includes('Sync_Inbox'),
    );
    expect(mapping?.enabled).toBe(false);
    expect(mapping).not.toHaveProperty('scaling_config');
  });

  describe('DNS that resolves', () => {
    const records = (name: string) => resources(stackJson(name), 'aws_route53_record');

    it("delegates dev's zone from prod's, in prod-global, from dev-global's name servers (read, never written)", () => {
      const [delegation, ...others] = records('prod-global').filter((r) => r.type === 'NS');
      expect(others).toHaveLength(0);
      expect(delegation).toMatchObject({
        name: 'dev.estate.example.com',
        zone_id: '${aws_route53_zone.Zone.zone_id}',
        records: expect.stringContaining('outputs.name_servers'),
        count: expect.stringContaining('length('),
      });
      const remote = stackJson('prod-global').data?.terraform_remote_state as Record<string, Block>;
      expect(Object.values(remote)).toEqual([
        expect.objectContaining({
          backend: 'remote',
          config: expect.objectContaining({
            organization: 'estate-platform',
            workspaces: { name: 'estate-dev-global' },
          }),
        }),
      ]);
      for (const name of ['dev-global', 'dev-eu-central-1', 'dev-us-east-1'])
        expect(records(name).filter((r) => r.type === 'NS')).toHaveLength(0);
    });

    it('writes the certificate validation record once, in the global stack, overwriting nothing', () => {
      for (const env of ['dev', 'prod']) {
        const validation = records(`${env}-global`).filter((r) => r.type !== 'NS');
        expect(validation).toHaveLength(1);
        expect(validation[0]?.allow_overwrite).toBeUndefined();
        for (const region of ['eu-central-1', 'us-east-1']) {
          const regional = records(`${env}-${region}`);
          expect(regional.map((r) => r.type)).toEqual(['A']);
          expect(regional.every((r) => r.allow_overwrite === undefined)).toBe(true);
        }
      }
    });
  });

  describe('alarms that notify', () => {
    it("has the environment's alarm topic, with its subscriptions, in every region alarms live in", () => {
      const global = stackJson('prod-global');
      const topics = resources(global, 'aws_sns_topic');
      expect(topics.map((t) => [t.name, t.provider ?? 'aws'])).toEqual([
        ['prod-alarms', 'aws'],
        ['prod-alarms', 'aws.us-east-1'],
      ]);
      expect(resources(global, 'aws_sns_topic_subscription').map((s) => [s.protocol, s.endpoint])).toEqual([
        ['email', 'platform-oncall@example.com'],
        ['email', 'platform-oncall@example.com'],
      ]);
    });

    it.each(['prod-eu-central-1', 'prod-us-east-1', 'dev-eu-central-1'])(
      "%s: every alarm notifies the topic of the alarm's own region",
      (name) => {
        const json = stackJson(name);
        const alarms = resources(json, 'aws_cloudwatch_metric_alarm');
        expect(alarms.length).toBeGreaterThan(0);
        const env = envOf(name);
        const region = name.slice(env.name.length + 1);
        for (const alarm of alarms) {
          const alarmRegion = alarm.provider === 'aws.route53-metrics' ? 'us-east-1' : region;
          expect(alarm.alarm_actions).toEqual([
            `arn:aws:sns:${alarmRegion}:${env.accountId}:${env.name}-alarms`,
          ]);
        }
      },
    );
  });

  describe('adds a region by one line of config', () => {
    const regions = ['eu-central-1', 'us-east-1', 'ap-southeast-1'] as const;
    const threeRegions = validateEnvironment('prod', { ...prod, regions: [...regions] });
    const synthesized = synthesize([threeRegions], mkdtempSync(join(tmpdir(), 'estate-3r-')));
    const json = (name: string): TerraformJson => {
      const stack = synthesized.find((s) => s.name === name);
      return JSON.parse(readFileSync(join(stack?.dir ?? '', 'cdk.tf.json'), 'utf8')) as TerraformJson;
    };
    const regional = regions.map((region) => json(`prod-${region}`));

    it('three regions give three regional stacks after the global one', () => {
      expect(synthesized.map((s) => s.name)).toEqual(['prod-global', ...regions.map((r) => `prod-${r}`)]);
      for (const region of regions) {
        expect(synthesized.find((s) => s.name === `prod-${region}`)?.dependsOn).toEqual(['prod-global']);
      }
    });

    it('wires N x (N-1) = 6 bus subscriptions, each region feeding every other', () => {
      const subscriptions = regional.flatMap((stack, i) =>
        resources(stack, 'aws_sns_topic_subscription').map(
          (s) => `${regions[i]}->${String(s.endpoint).split(':')[3]}`,
        ),
      );
      const expected = regions.flatMap((from) =>
        regions.filter((to) => to !== from).map((to) => `${from}->${to}`),
      );
      expect(subscriptions.sort()).toEqual(expected.sort());
    });

    it("gives each region's subscriptions a redrive queue of its own, and every region's bucket to the sync", () => {
      for (const [i, stack] of regional.entries()) {
        const names = resources(stack, 'aws_sqs_queue').map((q) => q.name);
        expect(names).toContain('prod-sync-undelivered');
        for (const subscription of resources(stack, 'aws_sns_topic_subscription')) {
          expect(JSON.parse(subscription.redrive_policy as string).deadLetterTargetArn).toMatch(
            /^\$\{aws_sqs_queue\.SyncBus_Undelivered_/,
          );
        }
        const inbox = resources(stack, 'aws_lambda_function').find(
          (f) => f.function_name === 'prod-sync-inbox',
        );
        const buckets = (inbox?.environment as { variables: Record<string, string> }).variables.SYNC_BUCKETS;
        expect(
          String(buckets)
            .split(',')
            .map((pair) => pair.split('=')[0]),
        ).toEqual([...regions].sort());
        expect(buckets).toContain(`${regions[i]}=prod-snapshots-`);
      }
    });

    it('gives every region a latency record and a health check', () => {
      for (const [i, stack] of regional.entries()) {
        expect(
          resources(stack, 'aws_route53_record').filter((r) => r.set_identifier === regions[i]),
        ).toHaveLength(1);
        expect(resources(stack, 'aws_route53_health_check')).toHaveLength(1);
      }
    });

    it('replicates every global table into the two other regions, through their providers', () => {
      const global = json('prod-global');
      expect(resources(global, 'aws_dynamodb_table')).toHaveLength(4);
      const replicas = resources(global, 'aws_dynamodb_table_replica');
      expect(replicas.map((r) => r.provider).sort()).toEqual([
        ...Array(4).fill('aws.ap-southeast-1'),
        ...Array(4).fill('aws.us-east-1'),
      ]);
    });
  });
});

describe('the cdktf app (scripts/app.mjs)', () => {
  const runApp = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'app.mjs')], {
      cwd: REPO_ROOT,
      env,
      encoding: 'utf8',
    });
  const offline = (): NodeJS.ProcessEnv => {
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (/^(AWS_|TF_TOKEN|TFE_)/.test(key)) delete env[key];
    return { ...env, ESTATE_EMULATOR_ENDPOINT: 'http://127.0.0.1:5000' };
  };

  it('synthesizes every stack offline, without AWS credentials or a Terraform Cloud token', () => {
    const out = mkdtempSync(join(tmpdir(), 'estate-app-'));
    const result = runApp({ ...offline(), CDKTF_OUTDIR: out, HTTPS_PROXY: 'http://127.0.0.1:9' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    // The estate, and what is applied once by hand before any rollout.
    expect(readdirSync(join(out, 'stacks')).sort()).toEqual(
      [
        ...stacks.map((s) => s.name),
        'terraform-cloud',
        'bootstrap-shared',
        'bootstrap-dev',
        'bootstrap-prod',
      ].sort(),
    );
  });

  it('synthesizes nothing from an invalid config, and says what is wrong', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'estate-bad-')), 'out');
    const result = runApp({ ...offline(), CDKTF_OUTDIR: out, ESTATE_EMULATOR_ENDPOINT: 'not-a-url' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(
      'local: emulator.endpoint: received "not-a-url"; expected the emulator endpoint, an http(s) URL with a host',
    );
    expect(existsSync(join(out, 'stacks'))).toBe(false);
  });
});
