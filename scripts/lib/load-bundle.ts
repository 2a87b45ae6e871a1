import Module from 'node:module';
import { dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';

/** A Lambda handler as a bundle exports it. */
export type LambdaHandler = (event: unknown, context?: unknown) => Promise<unknown>;

interface CompilableModule extends Module {
  _compile(source: string, filename: string): void;
}
const ModuleInternals = Module as unknown as { _nodeModulePaths(from: string): string[] };

/**
 * Loads a bundle's `index.js` as a fresh module, as a new Lambda container would: nothing is shared with
 * earlier loads. `@aws-sdk/*` (external to the bundle, provided by the nodejs22.x runtime) resolves to the
 * repository's pinned SDK.
 */
export function loadBundleSource(source: string, filename: string): LambdaHandler {
  const mod = new Module(filename) as CompilableModule;
  mod.filename = filename;
  mod.paths = ModuleInternals._nodeModulePaths(REPO_ROOT);
  mod._compile(source, filename);
  const handler = (mod.exports as { handler?: unknown }).handler;
  if (typeof handler !== 'function') throw new Error(`${filename} exports no handler function`);
  return handler as LambdaHandler;
}

/** Loads the handler from a Lambda deployment archive (the zip Terraform uploaded). */
export function loadHandlerFromArchive(archivePath: string): LambdaHandler {
  const entries = unzipSync(readFileSync(archivePath));
  const code = entries['index.js'];
  if (!code) throw new Error(`${archivePath} holds no index.js`);
  return loadBundleSource(Buffer.from(code).toString('utf8'), join(dirname(archivePath), 'index.js'));
}

/** Runs `fn` with extra environment variables, restoring the environment afterwards. */
export async function withEnv<T>(vars: Readonly<Record<string, string>>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** Environment under which a bundle loaded here talks to the emulator, as if it ran in `region`. */
export function emulatorEnv(endpoint: string, region: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  };
}
