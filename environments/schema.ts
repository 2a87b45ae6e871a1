import { z } from 'zod';
import { parseRunnerConfig, RunnerConfigError } from '../runtime/runners/config';
import { runnerDocumentOf } from './runners';
import { parseReplicatorConfig, ReplicatorConfigError } from '../runtime/secrets/config';

/** AWS commercial-partition region codes an environment may name. */
export const AWS_REGIONS = [
  'af-south-1',
  'ap-east-1',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-northeast-3',
  'ap-south-1',
  'ap-south-2',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ca-central-1',
  'ca-west-1',
  'eu-central-1',
  'eu-central-2',
  'eu-north-1',
  'eu-south-1',
  'eu-south-2',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'il-central-1',
  'me-central-1',
  'me-south-1',
  'sa-east-1',
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
] as const;
export type AwsRegion = (typeof AWS_REGIONS)[number];

export const ENVIRONMENT_NAMES = ['shared', 'dev', 'prod', 'local'] as const;
export type EnvironmentName = (typeof ENVIRONMENT_NAMES)[number];

/** Retention periods CloudWatch Logs accepts. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Cross-field checks run even when a sibling field failed, so one error lists every problem. */
const reportEvenWhenOtherFieldsFail = {
  when: (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null,
};

const region = z.enum(AWS_REGIONS, {
  error: () => 'expected an AWS region code such as eu-central-1 or us-east-1',
});

/** Refuses a string that appears twice in `field`, naming the index where it first appeared. */
const onceEach = (what: string, field: string) => (list: readonly unknown[], ctx: z.RefinementCtx) => {
  const firstIndex = new Map<string, number>();
  list.forEach((item, index) => {
    if (typeof item !== 'string') return;
    const first = firstIndex.get(item);
    if (first === undefined) firstIndex.set(item, index);
    else {
      ctx.addIssue({
        code: 'custom',
        path: [index],
        input: item,
        message: `expected each ${what} once; it already appears at ${field}[${first}]`,
      });
    }
  });
};

const regions = z
  .array(region, { error: () => 'expected an ordered list of AWS region codes (first = primary)' })
  .min(2, { error: () => 'expected at least two regions: the estate is active/active' })
  .superRefine(onceEach('region', 'regions'), reportEvenWhenOtherFieldsFail);

const dnsLabel = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
/** A lower-case DNS name of at least two labels; `expected` says which and gives an example. */
const dnsName = (expected: string) =>
  z
    .string({ error: () => expected })
    .refine(
      (name) =>
        name.length <= 253 && name.split('.').length >= 2 && name.split('.').every((l) => dnsLabel.test(l)),
      { error: () => expected },
    );

const terraformCloudBackend = z.strictObject({
  type: z.literal('terraform-cloud'),
  organization: z
    .string({ error: () => 'expected the Terraform Cloud organisation name' })
    .min(1, { error: () => 'expected a non-empty Terraform Cloud organisation name' }),
  project: z
    .string({ error: () => 'expected the Terraform Cloud project name' })
    .min(1, { error: () => 'expected a non-empty Terraform Cloud project name' }),
  /** Terraform Cloud or Enterprise host. */
  hostname: dnsName(
    'expected the Terraform Cloud host name, a lower-case DNS name such as app.terraform.io',
  ).default('app.terraform.io'),
});

const localBackend = z.strictObject({ type: z.literal('local') });

const backend = z.discriminatedUnion('type', [terraformCloudBackend, localBackend], {
  error: () => "expected a backend: { type: 'terraform-cloud', organization, project } or { type: 'local' }",
});

const roleArn = z
  .string({ error: () => 'expected an IAM role ARN as a string' })
  .regex(/^arn:aws:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, {
    error: () => 'expected an IAM role ARN, arn:aws:iam::<account>:role/<name>',
  });

/** Where an alarm notification goes: an SNS subscription of the environment's alarm topic. */
const alarmSubscription = z.discriminatedUnion(
  'protocol',
  [
    z.strictObject({
      protocol: z.literal('email'),
      endpoint: z.email({ error: () => 'expected an e-mail address' }),
    }),
    z.strictObject({
      protocol: z.literal('https'),
      endpoint: z.url({ protocol: /^https$/, error: () => 'expected an https:// URL' }),
    }),
    z.strictObject({
      protocol: z.enum(['sqs', 'lambda']),
      endpoint: z.string().regex(/^arn:aws:(sqs|lambda):[a-z0-9-]+:\d{12}:[\w:.-]+$/, {
        error: () => 'expected the ARN of an SQS queue or Lambda function',
      }),
    }),
  ],
  { error: () => "expected { protocol: 'email' | 'https' | 'sqs' | 'lambda', endpoint }" },
);

const intIn = (min: number, max: number, what: string) =>
  z
    .int({ error: () => `expected an integer ${what} between ${min} and ${max}` })
    .min(min, {
      error: () => `expected an integer ${what} between ${min} and ${max}`,
    })
    .max(max, { error: () => `expected an integer ${what} between ${min} and ${max}` });

const lambdaSettings = z.strictObject({
  /** Provisioned concurrency on the `live` alias of latency-sensitive functions (0 = none). */
  provisionedConcurrency: intIn(0, 1000, 'provisioned concurrency'),
  memoryMiB: intIn(128, 10240, 'memory size in MiB').default(256),
  timeoutSec: intIn(1, 900, 'timeout in seconds').default(10),
  logRetentionDays: z
    .union(
      LOG_RETENTION_DAYS.map((d) => z.literal(d)),
      {
        error: () => `expected a CloudWatch Logs retention, one of ${LOG_RETENTION_DAYS.join(', ')}`,
      },
    )
    .default(365),
  /**
   * Encrypt function environment variables with the region's customer-managed key. The emulator does not
   * store `kms_key_arn`, so `local` switches it off (every plan would otherwise show a change).
   */
  environmentCmk: z.boolean().default(true),
});

const emulator = z.strictObject({
  /** Endpoint of the AWS emulator every provider and SDK client of the environment talks to. */
  endpoint: z.url({
    protocol: /^https?$/,
    // A host name, an IPv4 address or a bracketed IPv6 address (the URL parser normalises each).
    hostname: new RegExp(`${z.regexes.hostname.source}|^\\[[0-9a-f:.]+\\]$`),
    error: () => 'expected the emulator endpoint, an http(s) URL with a host, e.g. http://127.0.0.1:5000',
  }),
});

/** Cross-region synchronisation (DESIGN §7: clocks from elsewhere are bounded by a skew). */
const sync = z
  .strictObject({
    /** The most a peer region's clock may run ahead before its sync messages are refused. */
    maxClockSkewSec: intIn(1, 3600, 'clock skew in seconds').default(300),
    /** Minutes between anti-entropy passes. */
    antiEntropyIntervalMin: intIn(1, 1440, 'anti-entropy interval in minutes').default(5),
    /** Inbox invocations at once (the event-source mapping's maximum concurrency): bounds a burst of peers' messages. */
    inboxMaxConcurrency: intIn(2, 1000, 'inbox maximum concurrency').default(5),
    /** Documents the inbox merges in parallel per batch. */
    mergeConcurrency: intIn(1, 10, 'documents merged in parallel').default(4),
    /** Timeout of the inbox function: a batch may merge a large document's full state in several transactions. */
    inboxTimeoutSec: intIn(10, 900, 'inbox timeout in seconds').default(120),
    /** Memory of the inbox function (a full state of the largest document is decoded whole). */
    inboxMemoryMiB: intIn(128, 10240, 'inbox memory size in MiB').default(512),
    /** Timeout of the anti-entropy function (its own: a pass lists and announces far more than a request). */
    antiEntropyTimeoutSec: intIn(10, 900, 'anti-entropy timeout in seconds').default(120),
    /** Memory of the anti-entropy function. */
    antiEntropyMemoryMiB: intIn(128, 10240, 'anti-entropy memory size in MiB').default(256),
    /** Documents per pass of anti-entropy's incremental sweep: every document is compared at least every ceil(documents / page) passes. */
    sweepPageSize: intIn(10, 10_000, 'sweep page size in documents').default(1000),
    /** How long a document must be quiet before its digest is compared with a peer's. */
    settleSec: intIn(10, 3600, 'settle time in seconds').default(60),
  })
  // Every field has its default: an absent block takes them all.
  .prefault({});

const units = (what: string) =>
  z
    .int({ error: () => `expected ${what}, a whole number of units per second from 0 to 1000000000` })
    .min(0, { error: () => `expected ${what}, a whole number of units per second from 0 to 1000000000` })
    .max(1_000_000_000, {
      error: () => `expected ${what}, a whole number of units per second from 0 to 1000000000`,
    });

/**
 * The per-region quota sync (ADR-127): a global limit per entity and resource shared by every region.
 * Amounts are whole units per second (the runtime counts milli-units).
 */
const quota = z
  .strictObject({
    /** Seconds per sync window: the sync runs once a window in every region (EventBridge: whole minutes). */
    syncWindowSec: intIn(60, 3600, 'sync window in seconds')
      .refine((sec) => sec % 60 === 0 && 3600 % sec === 0, {
        error: () =>
          'expected whole minutes that divide an hour (60, 120, 180, 240, 300, 600, 900, 1800, 3600, ...)',
      })
      .default(60),
    /** Compute and report allocations without writing overrides. */
    shadow: z.boolean().default(false),
    /** How long a container keeps tokens it took ahead of requests, ms. */
    leaseMs: intIn(0, 10_000, 'token lease in ms').default(100),
    /** How long the hot path trusts the sync's heartbeat it read, ms. */
    heartbeatCacheMs: intIn(0, 10_000, 'heartbeat cache in ms').default(1000),
    /** Margin for clocks between regions before a share that grew takes effect, ms. */
    clockMarginMs: intIn(0, 10_000, 'clock margin in ms').default(1000),
    /** Relative weight of each region (default 1). */
    weights: z.partialRecord(region, intIn(1, 1000, 'region weight')).default({}),
    /** The global limit of every entity, by resource name. */
    resources: z
      .record(
        z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, {
          error: () => 'expected a resource name: 1-63 of a-z 0-9 . _ -, starting with a letter or digit',
        }),
        z.strictObject({
          /** Units per second an entity may use across every region together. */
          limitPerSec: units('the global limit'),
          /** Seconds of the limit a bucket holds (its burst). */
          burstSec: intIn(1, 3600, 'burst in seconds').default(1),
          /** A region's guaranteed minimum, units per second. */
          floorsPerSec: z.partialRecord(region, units('a floor')).default({}),
        }),
      )
      .default({}),
  })
  .default({
    syncWindowSec: 60,
    shadow: false,
    leaseMs: 100,
    heartbeatCacheMs: 1000,
    clockMarginMs: 1000,
    weights: {},
    resources: {},
  });

/**
 * The CI runner control plane (runtime/runners): its document (routing rules, runner types, spillover
 * thresholds, time-to-lives; runtime/runners/config.ts), whose `regions` default to the environment's in
 * order of priority, validated at synth; the runners' image; the EC2 capacity that runs Docker jobs.
 */
const runners = z
  .strictObject({
    document: z.record(z.string(), z.unknown()).default({}),
    /** Runners each region runs at once, when the document names no regions. */
    capacityPerRegion: intIn(1, 100_000, 'runners at once per region').default(20),
    /** The runner image: a repository of the account's registry (replicated from the shared one) and a tag. */
    image: z
      .strictObject({
        repository: z
          .string()
          .regex(/^[a-z0-9][a-z0-9._/-]{1,200}$/, { error: () => 'expected an ECR repository name' }),
        tag: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { error: () => 'expected an image tag' }),
      })
      .default({ repository: 'runner', tag: 'latest' }),
    /** Instances of the EC2 capacity provider that runs Docker jobs (`launch: ec2` runner types). */
    ec2: z
      .strictObject({
        instanceType: z
          .string()
          .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, {
            error: () => 'expected an EC2 instance type such as m7i.large',
          })
          .default('m7i.large'),
        maxInstances: intIn(1, 1000, 'instances at most').default(10),
      })
      .default({ instanceType: 'm7i.large', maxInstances: 10 }),
  })
  .default({
    document: {},
    capacityPerRegion: 20,
    image: { repository: 'runner', tag: 'latest' },
    ec2: { instanceType: 'm7i.large', maxInstances: 10 },
  });

/**
 * The secrets replicator (runtime/secrets): for each region that runs one, its configuration document
 * (destinations, filters, transformations, name mappings, delete policies; runtime/secrets/config.ts),
 * written to the region's config secret and validated at synth; and when the full resync runs.
 */
const secrets = z
  .strictObject({
    replication: z.partialRecord(region, z.record(z.string(), z.unknown())).default({}),
    resyncSchedule: z
      .string()
      .regex(/^(rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)|cron\(.+\))$/, {
        error: () => 'expected rate(<n> <unit>) or cron(...)',
      })
      .default('rate(1 day)'),
  })
  .default({ replication: {}, resyncSchedule: 'rate(1 day)' });

/**
 * Settings that exist only because the AWS emulator cannot do something: `local` sets each to its emulator
 * value; every other environment is refused it, with the reason.
 */
const EMULATOR_ONLY: ReadonlyArray<{
  readonly path: readonly [string, string];
  readonly emulatorValue: unknown;
  readonly expected: unknown;
  readonly why: string;
}> = [
  {
    path: ['dynamodb', 'replication'],
    emulatorValue: 'per-region',
    expected: 'global-tables',
    why: 'per-region tables exist only for the emulator (local), which cannot create global-table replicas',
  },
  {
    path: ['dynamodb', 'deletionProtection'],
    emulatorValue: false,
    expected: true,
    why: 'unprotected tables exist only for the emulator (local), whose estate is torn down and a lost table simulated',
  },
  {
    path: ['features', 'secretReplicaCmk'],
    emulatorValue: false,
    expected: true,
    why: "secret replicas under the AWS-managed key exist only for the emulator (local), which ignores a replica's key",
  },
  {
    path: ['features', 'artifactReplication'],
    emulatorValue: false,
    expected: true,
    why: 'an unreplicated artifact bucket exists only for the emulator (local), which drops delete-marker replication and the SSE-KMS criteria',
  },
  {
    path: ['features', 'redrivePolicyDrift'],
    emulatorValue: false,
    expected: true,
    why: 'ignoring redrive-policy changes exists only for the emulator (local), which echoes the policy with spaces so every plan would show a change',
  },
  {
    path: ['features', 'launchTemplateTagsDrift'],
    emulatorValue: false,
    expected: true,
    why: "ignoring a launch template's tag-specification changes exists only for the emulator (local), which echoes the default tags as a tag specification so every plan would show a change",
  },
  {
    path: ['features', 'eventSourceMappings'],
    emulatorValue: false,
    expected: true,
    why: 'disabled event-source mappings exist only for the emulator (local), which cannot run a function (no Docker); its event pump stands in',
  },
  {
    path: ['lambda', 'environmentCmk'],
    emulatorValue: false,
    expected: true,
    why: "function environments without the CMK exist only for the emulator (local), which does not store a function's kms_key_arn",
  },
  {
    path: ['sharedServices', 'registryReplication'],
    emulatorValue: false,
    expected: true,
    why: 'no registry replication exists only for the emulator (local), from which the provider cannot read it back',
  },
  {
    path: ['features', 'tlsOnlyBuckets'],
    emulatorValue: false,
    expected: true,
    why: 'buckets that admit plain HTTP exist only for the emulator (local), which serves plain HTTP and enforces bucket policies',
  },
  {
    path: ['features', 'preventDestroy'],
    emulatorValue: false,
    expected: true,
    why: 'destroyable keys, tables and zones exist only for the emulator (local), whose estate the tests tear down',
  },
  {
    path: ['network', 'natGateways'],
    emulatorValue: 'none',
    expected: 'per-zone',
    why: "runners without NAT exist only for the emulator (local): in AWS they could not reach GitHub (use 'one' to save cost)",
  },
  {
    path: ['dns', 'customDomain'],
    emulatorValue: false,
    expected: true,
    why: 'an API without a custom domain exists only for the emulator (local), where no certificate can be validated',
  },
];

export const environmentSchema = z
  .strictObject({
    name: z.enum(ENVIRONMENT_NAMES, { error: () => `expected one of ${ENVIRONMENT_NAMES.join(', ')}` }),
    accountId: z
      .string({ error: () => 'expected a 12-digit AWS account id as a string' })
      .regex(/^\d{12}$/, { error: () => 'expected a 12-digit AWS account id' }),
    /**
     * Role that applies the environment's stacks: only jobs of the GitHub environment named after it assume
     * it (GitHub OIDC; the bootstrap stack creates it). Absent only for `local`.
     */
    deployRoleArn: roleArn.optional(),
    /** Read-only role that pull requests plan with; it can never apply. Absent only for `local`. */
    planRoleArn: roleArn.optional(),
    /** The GitHub repository whose workflows deploy the environment (OIDC trust). Absent only for `local`. */
    github: z
      .strictObject({
        repository: z.string().regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/, {
          error: () => 'expected a GitHub repository as owner/name',
        }),
        /**
         * The owner's and the repository's numeric ids (`gh api repos/<owner>/<name> --jq '.owner.id, .id'`).
         * GitHub sends repositories created, renamed or transferred since mid 2026 an immutable OIDC subject,
         * `repo:owner@<id>/name@<id>:…`, which the roles admit only with these (and which a re-registered name
         * cannot match). Required outside local.
         */
        ids: z
          .strictObject({
            owner: z
              .string()
              .regex(/^\d{1,20}$/, { error: () => "expected the owner's numeric id as a string" }),
            repository: z
              .string()
              .regex(/^\d{1,20}$/, { error: () => "expected the repository's numeric id as a string" }),
          })
          .optional(),
      })
      .optional(),
    regions,
    backend,
    dns: z.strictObject({
      /** Hosted zone the environment's public names live in. */
      zoneName: dnsName(
        'expected a lower-case DNS name with at least two labels, e.g. dev.estate.example.com',
      ),
      /** Label of the latency-routed API name inside the zone. */
      apiRecordName: z.string().regex(dnsLabel, { error: () => 'expected a single lower-case DNS label' }),
      /**
       * Serve the API on the zone's name through a regional custom domain with an ACM certificate. Off, the
       * latency records point at each region's execute-api host.
       */
      customDomain: z.boolean().default(true),
    }),
    network: z
      .strictObject({
        /** CIDR of the first region's runner VPC (a /16); each further region takes the next /16. */
        firstVpcCidr: z
          .string()
          .regex(/^10\.(\d{1,3})\.0\.0\/16$/, { error: () => 'expected a 10.x.0.0/16 CIDR' })
          .refine((cidr) => Number(cidr.split('.')[1]) <= 200, {
            error: () => 'expected 10.x.0.0/16 with x <= 200',
          }),
        /**
         * NAT gateways of the runners' private subnets (runners reach GitHub through them): one per
         * availability zone (survives a zone's loss), one for the region (cheaper: about 32 USD a month
         * each), or none (only the emulator, where nothing leaves the machine).
         */
        natGateways: z
          .enum(['per-zone', 'one', 'none'], { error: () => "expected 'per-zone', 'one' or 'none'" })
          .default('per-zone'),
        /**
         * Interface endpoints for ECR (api, dkr), CloudWatch Logs and STS in the private subnets, so image
         * pulls, logs and credentials do not depend on the NAT gateways.
         */
        interfaceEndpoints: z.boolean().default(true),
      })
      .default({ firstVpcCidr: '10.20.0.0/16', natGateways: 'per-zone', interfaceEndpoints: true }),
    /** Where the environment's alarms notify: subscriptions of its alarm topic (one per region). */
    alarms: z
      .strictObject({
        subscriptions: z
          .array(alarmSubscription)
          .max(100, { error: () => 'expected at most 100 subscriptions' }),
      })
      .default({ subscriptions: [] }),
    /** Whether the environment runs workloads (`<env>-global` and `<env>-<region>` stacks). */
    workloads: z.boolean().default(true),
    /** Shared services this environment hosts (ECR, deployment artifacts): the shared account, and local. */
    sharedServices: z
      .strictObject({
        /** ECR repositories, e.g. `runner`. */
        repositories: z
          .array(
            z
              .string()
              .regex(/^[a-z0-9][a-z0-9._/-]{1,200}$/, { error: () => 'expected an ECR repository name' }),
          )
          .min(1, { error: () => 'expected at least one repository' })
          .superRefine(onceEach('repository', 'sharedServices.repositories'), reportEvenWhenOtherFieldsFail),
        /** Accounts that pull images and receive them by registry replication (dev, prod). */
        consumerAccountIds: z
          .array(z.string().regex(/^\d{12}$/, { error: () => 'expected a 12-digit AWS account id' }))
          .superRefine(
            onceEach('consumer account', 'sharedServices.consumerAccountIds'),
            reportEvenWhenOtherFieldsFail,
          ),
        /** Replicate images to the other regions and the consumer accounts (the emulator cannot read it back). */
        registryReplication: z.boolean().default(true),
      })
      .optional(),
    /** Account whose registry replicates images into this one (the shared account); allowed by registry policy. */
    imageSourceAccountId: z
      .string()
      .regex(/^\d{12}$/, { error: () => 'expected a 12-digit AWS account id' })
      .optional(),
    lambda: lambdaSettings,
    dynamodb: z
      .strictObject({
        /** Refuse `DeleteTable` on the estate's tables. */
        deletionProtection: z.boolean().default(true),
        /**
         * How tables shared across regions are kept: DynamoDB global tables (replicas in every region), or
         * one independent table per region (the emulator cannot create replicas).
         */
        replication: z.enum(['global-tables', 'per-region']).default('global-tables'),
      })
      .default({ deletionProtection: true, replication: 'global-tables' }),
    emulator: emulator.optional(),
    sync,
    quota,
    secrets,
    runners,
    /**
     * Switches for what the AWS emulator cannot do or cannot read back; only `local` may turn them off.
     */
    features: z
      .strictObject({
        /** Encrypt each secret replica with its region's CMK (moto keeps the AWS-managed key instead). */
        secretReplicaCmk: z.boolean().default(true),
        /** Replicate the artifact bucket (moto drops delete-marker replication and the SSE-KMS criteria). */
        artifactReplication: z.boolean().default(true),
        /**
         * Plan changes to a queue's redrive policy (moto echoes it with spaces, which the provider compares as
         * text, so every plan would show a change).
         */
        redrivePolicyDrift: z.boolean().default(true),
        /**
         * Plan changes to the runners' launch template's tag specifications (moto echoes the provider's default
         * tags as a `launch-template` tag specification, so every plan would show a change).
         */
        launchTemplateTagsDrift: z.boolean().default(true),
        /**
         * Enable SQS event-source mappings. moto would run the function itself on every message (it cannot:
         * no Docker) and reports the alias's version as the mapping's target; `local` creates them disabled
         * and its event pump stands in.
         */
        eventSourceMappings: z.boolean().default(true),
        /**
         * Refuse, at plan time, to destroy keys, tables and zones (`prevent_destroy`). Off only for the
         * emulator, whose estate the tests tear down.
         */
        preventDestroy: z.boolean().default(true),
        /**
         * Deny non-TLS requests to the estate's buckets. Off only for the emulator, which serves plain HTTP
         * and enforces bucket policies, so every object request would be denied.
         */
        tlsOnlyBuckets: z.boolean().default(true),
      })
      .default({
        preventDestroy: true,
        tlsOnlyBuckets: true,
        secretReplicaCmk: true,
        artifactReplication: true,
        redrivePolicyDrift: true,
        launchTemplateTagsDrift: true,
        eventSourceMappings: true,
      }),
  })
  .superRefine((parsed, ctx) => {
    // Runs even when other fields failed: read every field defensively.
    const env = parsed as Partial<typeof parsed>;
    const isLocal = env.name === 'local';
    for (const field of ['deployRoleArn', 'planRoleArn'] as const) {
      const arn = env[field];
      if (
        typeof arn === 'string' &&
        typeof env.accountId === 'string' &&
        /^\d{12}$/.test(env.accountId) &&
        arn.split(':')[4] !== env.accountId
      ) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          input: arn,
          message: `expected a role in the environment's own account ${env.accountId}`,
        });
      }
    }
    for (const field of ['deployRoleArn', 'planRoleArn'] as const) {
      const arn = env[field];
      if (!isLocal && !arn) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          input: arn,
          message:
            field === 'deployRoleArn'
              ? 'expected the deploy role ARN that applies run under (required outside local)'
              : 'expected the read-only plan role ARN that pull requests plan with (required outside local)',
        });
      }
    }
    if (
      typeof env.planRoleArn === 'string' &&
      typeof env.deployRoleArn === 'string' &&
      env.planRoleArn === env.deployRoleArn
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['planRoleArn'],
        input: env.planRoleArn,
        message: 'expected a role other than deployRoleArn: a plan must never hold a role that can apply',
      });
    }
    const estateRegions = new Set<string>(Array.isArray(env.regions) ? env.regions : []);
    for (const [replicatorRegion, document] of Object.entries(env.secrets?.replication ?? {})) {
      if (!estateRegions.has(replicatorRegion))
        ctx.addIssue({
          code: 'custom',
          path: ['secrets', 'replication', replicatorRegion],
          input: replicatorRegion,
          message: 'expected a region of the environment',
        });
      try {
        parseReplicatorConfig(JSON.stringify(document));
      } catch (error) {
        if (!(error instanceof ReplicatorConfigError)) throw error;
        for (const issue of error.issues)
          ctx.addIssue({
            code: 'custom',
            path: ['secrets', 'replication', replicatorRegion],
            // The document itself is not quoted: an external id in it is a shared secret.
            input: '(a replicator document)',
            message: issue,
          });
      }
    }
    // Checked once the regions themselves are valid: each of their problems is reported once, above.
    if (env.runners && Array.isArray(env.regions) && new Set(env.regions).size === env.regions.length) {
      try {
        const config = parseRunnerConfig(
          runnerDocumentOf({ regions: env.regions, runners: env.runners }),
          'document',
        );
        if (config.concurrencyResource && !(config.concurrencyResource in (env.quota?.resources ?? {})))
          ctx.addIssue({
            code: 'custom',
            path: ['runners', 'document', 'concurrencyResource'],
            input: config.concurrencyResource,
            message: 'expected a resource of quota.resources: its global limit caps each organisation',
          });
        const configured = config.regions.map((r) => r.region).sort();
        if (configured.join() !== [...env.regions].sort().join())
          ctx.addIssue({
            code: 'custom',
            path: ['runners', 'document', 'regions'],
            input: configured,
            message: "expected exactly the environment's regions",
          });
      } catch (error) {
        if (!(error instanceof RunnerConfigError)) throw error;
        for (const issue of error.issues)
          ctx.addIssue({
            code: 'custom',
            path: ['runners', 'document'],
            input: '(the runner document)',
            message: issue,
          });
      }
    }
    for (const [weightRegion, weight] of Object.entries(env.quota?.weights ?? {})) {
      if (!estateRegions.has(weightRegion))
        ctx.addIssue({
          code: 'custom',
          path: ['quota', 'weights', weightRegion],
          input: weight,
          message: 'expected a region of the environment',
        });
    }
    for (const [resourceName, resource] of Object.entries(env.quota?.resources ?? {})) {
      const floors = Object.entries(resource.floorsPerSec ?? {});
      for (const [floorRegion] of floors)
        if (!estateRegions.has(floorRegion))
          ctx.addIssue({
            code: 'custom',
            path: ['quota', 'resources', resourceName, 'floorsPerSec', floorRegion],
            input: resource.floorsPerSec[floorRegion as AwsRegion],
            message: 'expected a region of the environment',
          });
      if (floors.reduce((sum, [, floor]) => sum + (floor ?? 0), 0) > resource.limitPerSec)
        ctx.addIssue({
          code: 'custom',
          path: ['quota', 'resources', resourceName, 'floorsPerSec'],
          input: resource.floorsPerSec,
          message: 'expected floors summing to at most limitPerSec',
        });
    }
    if (!isLocal && env.github && !env.github.ids) {
      ctx.addIssue({
        code: 'custom',
        path: ['github', 'ids'],
        input: undefined,
        message:
          "expected { owner, repository }, the numeric ids GitHub's immutable OIDC subject carries (required outside local)",
      });
    }
    if (!isLocal && !env.github) {
      ctx.addIssue({
        code: 'custom',
        path: ['github'],
        input: env.github,
        message:
          'expected { repository: owner/name }, the repository whose workflows deploy (required outside local)',
      });
    }
    if (!isLocal && env.backend?.type === 'local') {
      ctx.addIssue({
        code: 'custom',
        path: ['backend', 'type'],
        input: env.backend?.type,
        message: "expected 'terraform-cloud': only the local environment keeps local state",
      });
    }
    if (env.name === 'shared' && env.workloads !== false) {
      ctx.addIssue({
        code: 'custom',
        path: ['workloads'],
        input: env.workloads,
        message: 'expected false: the shared account hosts shared services, not workloads',
      });
    }
    if (env.name === 'shared' && !env.sharedServices) {
      ctx.addIssue({
        code: 'custom',
        path: ['sharedServices'],
        input: env.sharedServices,
        message: 'expected the shared services the shared account hosts',
      });
    }
    if (isLocal !== (env.emulator !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['emulator'],
        input: env.emulator,
        message: isLocal
          ? 'expected the emulator endpoint: the local environment deploys onto the AWS emulator'
          : 'expected no emulator: only the local environment targets the AWS emulator',
      });
    }
    for (const { path, emulatorValue, expected, why } of isLocal ? [] : EMULATOR_ONLY) {
      const [block, field] = path;
      const section: unknown = (env as Record<string, unknown>)[block];
      if (typeof section !== 'object' || section === null) continue;
      const value = (section as Record<string, unknown>)[field];
      if (value === emulatorValue) {
        ctx.addIssue({
          code: 'custom',
          path: [...path],
          input: value,
          message: `expected ${JSON.stringify(expected)}: ${why}`,
        });
      }
    }
  }, reportEvenWhenOtherFieldsFail);

/** A validated environment: what every stack and construct reads. */
export type EnvironmentConfig = z.output<typeof environmentSchema>;
/** What an environment file declares, before defaults are applied. */
export type EnvironmentInput = z.input<typeof environmentSchema>;
