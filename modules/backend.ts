import { CloudBackend, LocalBackend, NamedCloudWorkspace, type TerraformStack } from 'cdktf';
import type { EnvironmentConfig } from '../environments';

/** Prefix of every Terraform Cloud workspace the estate owns. */
export const WORKSPACE_PREFIX = 'estate-';

/**
 * Where a stack keeps its state: one named Terraform Cloud workspace per stack (in the environment's
 * organisation and project), or a local state file for the `local` environment.
 */
export function configureBackend(
  stack: TerraformStack,
  environment: EnvironmentConfig,
  stackName: string,
): void {
  const backend = environment.backend;
  if (backend.type === 'local') {
    new LocalBackend(stack, { path: `terraform.${stackName}.tfstate` });
    return;
  }
  new CloudBackend(stack, {
    hostname: backend.hostname,
    organization: backend.organization,
    workspaces: new NamedCloudWorkspace(`${WORKSPACE_PREFIX}${stackName}`, backend.project),
  });
}
