import { TerraformResource } from 'cdktf';
// cdktf's own addressing scheme (pinned with cdktf): the logical id a resource had at another path.
import { makeUniqueId } from 'cdktf/lib/private/unique';
import type { Construct } from 'constructs';

/**
 * Records that every resource under `scope` lived at `previousPath` (construct ids below the stack) before
 * a refactoring moved it, as Terraform `moved` blocks: an applied estate keeps its resources instead of
 * destroying and recreating them (for a bucket, its data).
 */
export function movedFrom(scope: Construct, previousPath: readonly string[]): void {
  const depth = scope.node.scopes.length;
  for (const child of scope.node.findAll()) {
    if (!(child instanceof TerraformResource)) continue;
    const below = child.node.scopes.slice(depth).map((c) => c.node.id);
    child.moveFromId(`${child.terraformResourceType}.${makeUniqueId([...previousPath, ...below])}`);
  }
}
