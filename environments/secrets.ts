import type { AwsRegion } from './schema';

/**
 * A two-way pair of replicators: each region's `app/**` secrets are replicated to the other region under
 * the same name, with the region's name in their values rewritten to the other's; the newer write wins when
 * both sides change at once, and deleting one side deletes the other (with a recovery window).
 */
export function twoWayApplicationSecrets(
  a: AwsRegion,
  b: AwsRegion,
): Record<string, Record<string, unknown>> {
  const towards = (from: AwsRegion, to: AwsRegion) => ({
    destinations: [
      {
        region: to,
        filters: { 'app/**': `s/${from}/${to}/g` },
        deletePolicy: 'propagate',
        twoWay: true,
      },
    ],
  });
  return { [a]: towards(a, b), [b]: towards(b, a) };
}
