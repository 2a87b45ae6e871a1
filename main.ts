import { App } from 'cdktf';
import { loadEnvironments } from './environments';
import { buildEstate, estateStackOwners } from './stacks/estate';
import { buildAccountSetup } from './stacks/setup';

/** Synthesizes every stack; ESTATE_ENVIRONMENTS=local,dev restricts it to some environments. */
const environments = loadEnvironments();
const only = process.env.ESTATE_ENVIRONMENTS?.split(',')
  .map((name) => name.trim())
  .filter(Boolean);
const unknown = only?.filter((name) => !(name in environments)) ?? [];
if (unknown.length > 0) {
  throw new Error(
    `ESTATE_ENVIRONMENTS names unknown environments ${unknown.join(', ')}; expected some of ${Object.keys(environments).join(', ')}`,
  );
}
// cdktf's construct validations re-run `terraform version` once per Terraform Cloud stack (half of the synth
// time); the synth tests run them (scripts/lib/synth.ts) and the terraform lane validates every stack.
const app = new App({ skipValidation: true });
const selected = Object.values(environments).filter((env) => !only || only.includes(env.name));
const estate = buildEstate(app, selected);
// Applied once by hand before any rollout: Terraform Cloud's workspaces and teams, each account's bootstrap.
buildAccountSetup(app, selected, estateStackOwners(estate, selected));
app.synth();
