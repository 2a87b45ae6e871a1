import {
  CloudBackend,
  DataTerraformRemoteState,
  DataTerraformRemoteStateLocal,
  LocalBackend,
  NamedCloudWorkspace,
  type TerraformRemoteState,
  type TerraformStack,
} from 'cdktf';
import type { Construct } from 'constructs';
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

/**
 * Read-only access to another stack's outputs, wherever the environment keeps that stack's state (its
 * Terraform Cloud workspace, or the local state file). Outputs absent until that stack is applied read
 * as `defaults`.
 */
export function remoteStateOf(
  scope: Construct,
  id: string,
  environment: EnvironmentConfig,
  stackName: string,
  defaults: Record<string, unknown>,
): TerraformRemoteState {
  const backend = environment.backend;
  if (backend.type === 'local') {
    return new DataTerraformRemoteStateLocal(scope, id, {
      path: `../${stackName}/terraform.${stackName}.tfstate`,
      defaults,
    });
  }
  return new DataTerraformRemoteState(scope, id, {
    hostname: backend.hostname,
    organization: backend.organization,
    workspaces: { name: `${WORKSPACE_PREFIX}${stackName}` },
    defaults,
  });
}
