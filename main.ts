import { App } from 'cdktf';
import { loadEnvironments } from './environments';
import { buildEstate } from './stacks/estate';

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
buildEstate(
  app,
  Object.values(environments).filter((env) => !only || only.includes(env.name)),
);
app.synth();
