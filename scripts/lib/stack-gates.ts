// When a stack of the local estate may start applying: as soon as what it reads from the stacks it depends on
// exists, rather than once those stacks have finished.

/** A synthesized stack with its Terraform JSON. */
export interface StackConfig {
  readonly name: string;
  readonly dependsOn: readonly string[];
  readonly config: unknown;
}

/** What a stack must see created in one of the stacks it depends on before it starts. */
export interface Need {
  readonly stack: string;
  /** Resource addresses, or `all` when the stack reads the other's state (its outputs exist at its end). */
  readonly addresses: readonly string[] | 'all';
}

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const blockOf = (config: unknown, key: string): Json =>
  isRecord(config) && isRecord(config[key]) ? (config[key] as Json) : {};

/**
 * The needs of each stack, by name. A stack plans against what its data sources find, so it needs each
 * resource of a stack it depends on whose type one of its data sources looks up (`data.aws_route53_zone`
 * waits for that stack's `aws_route53_zone`s), and the whole of a stack whose state it reads
 * (`terraform_remote_state`). A dependency it reads nothing of orders rollouts to real accounts (shared
 * services before their consumers), and does not hold it back here. Only for the `local` estate: what a
 * stack needs of another at create time without a data source (a certificate validation waiting for the
 * global stack's validation record, alarms naming the global alarm topic) is not waited for, and rollouts to
 * real accounts keep whole-stack order (scripts/lib/rollout.ts).
 */
export function stackNeeds(stacks: readonly StackConfig[]): Map<string, Need[]> {
  const byName = new Map(stacks.map((stack) => [stack.name, stack]));
  return new Map(
    stacks.map((stack) => {
      const data = blockOf(stack.config, 'data');
      const lookedUp = new Set(Object.keys(data).filter((type) => type !== 'terraform_remote_state'));
      const remoteStates = JSON.stringify(data.terraform_remote_state ?? {});
      const needs = stack.dependsOn.flatMap((name): Need[] => {
        const dependency = byName.get(name);
        if (!dependency) return [];
        if (remoteStates.includes(name)) return [{ stack: name, addresses: 'all' }];
        const resources = blockOf(dependency.config, 'resource');
        const addresses = Object.entries(resources)
          .filter(([type]) => lookedUp.has(type))
          .flatMap(([type, byId]) => Object.keys(isRecord(byId) ? byId : {}).map((id) => `${type}.${id}`));
        return addresses.length > 0 ? [{ stack: name, addresses }] : [];
      });
      return [stack.name, needs];
    }),
  );
}

/** What a stack still waits for, given what each stack has created and which stacks have finished. */
export function unmetNeeds(
  needs: readonly Need[],
  created: (stack: string) => ReadonlySet<string>,
  finished: (stack: string) => boolean,
): string[] {
  return needs.flatMap((need) => {
    if (finished(need.stack)) return [];
    if (need.addresses === 'all') return [need.stack];
    const done = created(need.stack);
    // Terraform reports an instance of a counted resource as `type.name[0]`.
    const missing = need.addresses.filter(
      (address) => !done.has(address) && ![...done].some((d) => d.startsWith(`${address}[`)),
    );
    return missing.map((address) => `${need.stack}: ${address}`);
  });
}
