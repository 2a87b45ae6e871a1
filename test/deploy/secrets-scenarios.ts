import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import type { AwsRegion } from '../../environments';
import { REPLICA_OF } from '../../runtime/secrets/replica-tags';
import { invokeDeployed, regionalStackOf, type LocalEstate } from '../../scripts/lib/local-estate';
import { scheduledEvent, secretsManagerCall } from '../support/cloudtrail-events';
import { consumeWith, emulatorClients } from './topology';

interface ReplicatorRegion {
  readonly region: AwsRegion;
  readonly stackDir: string;
  readonly queueUrl: string;
  readonly functionName: string;
  readonly configSecret: string;
}

/**
 * The secrets replicator as deployed (both regions of `local` replicate `app/**` to each other, two-way,
 * with the region's name rewritten): a user's write queued as the CloudTrail rule would queue it, the queue
 * pumped through the deployed bundle as its event-source mapping would (acknowledging what it did not
 * report as failed), the replica checked in the other region, and the echo and a resync shown to write
 * nothing.
 */
export function secretsScenarios(endpoint: string, estateOf: () => LocalEstate): void {
  let regions: ReplicatorRegion[];
  const secrets = (region: string) =>
    new SecretsManagerClient({
      region,
      endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  const sqs = (region: string): SQSClient => emulatorClients(endpoint, region).sqs;

  beforeAll(() => {
    const estate = estateOf();
    regions = estate.environment.regions.map((region) => {
      const outputs = regionalStackOf(estate, region).outputs;
      return {
        region,
        stackDir: regionalStackOf(estate, region).dir,
        queueUrl: outputs.secrets_replication_queue_url as string,
        functionName: outputs.secrets_replicator_function as string,
        configSecret: outputs.secrets_config_secret as string,
      };
    });
  });

  /** Receives what the queue holds, invokes the deployed replicator with it, deletes what it acknowledged. */
  async function pump(at: ReplicatorRegion): Promise<SQSBatchResponse> {
    const client = sqs(at.region);
    const received = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: at.queueUrl,
        MaxNumberOfMessages: 1,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    return consumeWith(client, at.queueUrl, at.region, received.Messages ?? [], async (event) => {
      const { response } = await invokeDeployed(endpoint, at.region, at.stackDir, at.functionName, event);
      return response;
    });
  }

  const send = (at: ReplicatorRegion, body: object) =>
    sqs(at.region).send(new SendMessageCommand({ QueueUrl: at.queueUrl, MessageBody: JSON.stringify(body) }));
  const versionsOf = async (region: string, name: string) =>
    (await secrets(region).send(new ListSecretVersionIdsCommand({ SecretId: name }))).Versions?.length ?? 0;
  const valueOf = async (region: string, name: string) =>
    (await secrets(region).send(new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSCURRENT' })))
      .SecretString;

  it("holds each region's document in its config secret", async () => {
    const estate = estateOf();
    for (const at of regions) {
      const stored = await valueOf(at.region, at.configSecret);
      expect(JSON.parse(stored ?? 'null')).toEqual(estate.environment.secrets.replication[at.region]);
    }
  });

  it('replicates a write to the other region, transformed and tagged; its echo and a resync write nothing', async () => {
    const [from, to] = regions as [ReplicatorRegion, ReplicatorRegion];
    const name = 'app/deploy/db';
    const created = await secrets(from.region).send(
      new CreateSecretCommand({ Name: name, SecretString: `{"host":"db.${from.region}.internal"}` }),
    );
    await send(from, secretsManagerCall('CreateSecret', { arn: created.ARN ?? '', name }));
    expect(await pump(from)).toEqual({ batchItemFailures: [] });

    expect(await valueOf(to.region, name)).toBe(`{"host":"db.${to.region}.internal"}`);
    const replica = await secrets(to.region).send(new DescribeSecretCommand({ SecretId: name }));
    expect(replica.Tags).toContainEqual({ Key: REPLICA_OF, Value: created.ARN });

    // The replica's creation, as the other region's rule queues it: a replica write, never sent back.
    await send(to, secretsManagerCall('CreateSecret', { arn: replica.ARN ?? '', name }));
    expect(await pump(to)).toEqual({ batchItemFailures: [] });
    expect(await versionsOf(from.region, name)).toBe(1);
    expect(await valueOf(from.region, name)).toBe(`{"host":"db.${from.region}.internal"}`);

    for (const at of regions) {
      await send(at, scheduledEvent(at.region, estateOf().environment.accountId));
      expect(await pump(at)).toEqual({ batchItemFailures: [] });
    }
    expect(await versionsOf(from.region, name)).toBe(1);
    expect(await versionsOf(to.region, name)).toBe(1);
  });
}
