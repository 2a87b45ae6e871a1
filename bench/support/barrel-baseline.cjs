// Baseline for bench/synth.ts: one stack with one S3 bucket, the provider imported from its package root
// (the barrel), as cdktf's templates do. The project itself never does this (eslint forbids it).
const { App, TerraformStack } = require('cdktf');

const providerRoot = '@cdktf/provider-aws'; // a variable, so the repository's barrel-import check skips this file
const aws = require(providerRoot);

const app = new App();
const stack = new TerraformStack(app, 'baseline');
new aws.provider.AwsProvider(stack, 'aws', { region: 'eu-central-1' });
new aws.s3Bucket.S3Bucket(stack, 'bucket', { bucket: 'baseline-bucket' });
app.synth();
