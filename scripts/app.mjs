// The cdktf app: compiles main.ts with esbuild (dependencies stay in node_modules) and runs it.
// Faster than ts-node or tsx at every synth; `cdktf synth`, `cdktf deploy` and `npm run synth` all use it.
import { buildSync } from 'esbuild';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, '.build', 'app', 'main.js');
buildSync({
  entryPoints: [join(root, 'main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: 'inline',
  outfile,
  logLevel: 'warning',
});
createRequire(import.meta.url)(outfile);
