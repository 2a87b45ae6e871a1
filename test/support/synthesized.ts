/** Reading synthesized Terraform JSON in tests. */
export type Block = Record<string, unknown>;

export interface TerraformJson {
  readonly resource?: Record<string, Record<string, Block>>;
  readonly provider?: Record<string, Block[]>;
  readonly terraform?: Block;
  readonly output?: Record<string, Block>;
  readonly data?: Record<string, Record<string, Block>>;
}

export const parse = (synthesized: string): TerraformJson => JSON.parse(synthesized) as TerraformJson;

/** Every resource of one type, e.g. `aws_lambda_function`. */
export function resources(synthesized: string | TerraformJson, type: string): Block[] {
  const json = typeof synthesized === 'string' ? parse(synthesized) : synthesized;
  return Object.values(json.resource?.[type] ?? {});
}

/** The single resource of a type; fails when there is not exactly one. */
export function only(synthesized: string | TerraformJson, type: string): Block {
  const found = resources(synthesized, type);
  if (found.length !== 1) throw new Error(`expected exactly one ${type}, found ${found.length}`);
  return found[0] as Block;
}

/** A policy document embedded as a JSON string. */
export const policyOf = (block: Block, key = 'policy'): { Statement: Block[] } =>
  JSON.parse(block[key] as string) as { Statement: Block[] };

/** Every statement of every role policy in a synthesized scope. */
export const roleStatements = (synthesized: string): Block[] =>
  resources(synthesized, 'aws_iam_role_policy').flatMap((p) => policyOf(p).Statement);

/** The role-policy statement with `sid`. */
export const roleStatement = (synthesized: string, sid: string): Block =>
  roleStatements(synthesized).find((st) => st.Sid === sid) as Block;
