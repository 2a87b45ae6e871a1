import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { AwsRegion, EnvironmentConfig } from '../environments';
import { regionProvider } from '../modules/aws-provider';
import { configureBackend } from '../modules/backend';
import { BucketReplication } from '../modules/bucket-replication';
import { ContainerRegistry, type ReplicationDestination } from '../modules/container-registry';
import { KmsKey } from '../modules/kms-key';
import { SecureBucket } from '../modules/secure-bucket';
import { bucketName, sharedKeyAlias, sharedStackName } from './names';

export interface SharedStackProps {
  readonly environment: EnvironmentConfig;
  readonly region: AwsRegion;
}

/**
 * `shared-<region>`: the shared services of one region: ECR repositories and the deployment-artifact
 * bucket. The primary (build) region replicates images to the other regions and the consumer accounts,
 * and artifacts to the other regions' buckets, which therefore deploy first.
 */
export class SharedStack extends TerraformStack {
  readonly key: KmsKey;
  readonly artifacts: SecureBucket;

  constructor(scope: Construct, props: SharedStackProps) {
    const { environment: env, region } = props;
    const services = env.sharedServices;
    if (!services) throw new Error(`environment ${env.name} hosts no shared services`);
    const name = sharedStackName(env, region);
    super(scope, name);
    configureBackend(this, env, name);
    regionProvider(this, 'aws', { environment: env, region, stackName: name });
    const [primary] = env.regions;
    const isBuildRegion = region === primary;
    const others = env.regions.filter((r) => r !== region);

    this.key = new KmsKey(this, 'Key', { aliasName: sharedKeyAlias(env), accountId: env.accountId, region });

    const replicateTo: ReplicationDestination[] =
      isBuildRegion && services.registryReplication
        ? [
            ...others.map((r) => ({ region: r, accountId: env.accountId })),
            ...services.consumerAccountIds.flatMap((accountId) =>
              env.regions.map((r) => ({ region: r, accountId })),
            ),
          ]
        : [];
    new ContainerRegistry(this, 'Registry', {
      repositories: services.repositories,
      kmsKey: this.key,
      pullAccountIds: services.consumerAccountIds,
      replicateTo,
    });

    this.artifacts = new SecureBucket(this, 'Artifacts', {
      bucketName: bucketName(env, 'artifacts', region),
      kmsKey: this.key,
      noncurrentVersionDays: 90,
      forceDestroy: !env.dynamodb.deletionProtection,
      tlsOnly: env.features.tlsOnlyBuckets,
    });
    if (isBuildRegion && others.length > 0 && env.features.artifactReplication) {
      new BucketReplication(this, 'ArtifactReplication', {
        source: this.artifacts,
        accountId: env.accountId,
        region,
        replicas: others.map((r) => ({
          region: r,
          bucketName: bucketName(env, 'artifacts', r),
          keyAlias: sharedKeyAlias(env),
        })),
      });
    }
    new TerraformOutput(this, 'artifact_bucket', { value: this.artifacts.name });
  }
}
