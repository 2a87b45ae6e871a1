import { readFileSync } from 'node:fs';
import type ModuleNamespace from 'node:module';
import { dirname, join } from 'node:path';
import { runInThisContext } from 'node:vm';
import { unzipSync } from 'fflate';
import { REPO_ROOT } from '../../modules/bundled-function/bundle';

/** A Lambda handler as a bundle exports it. */
export type LambdaHandler = (event: unknown, context?: unknown) => Promise<unknown>;

/**
 * The real Node process. Bundles run in the main context, as in Lambda, and see this process; test
 * runners (jest) give their tests a sandboxed copy of `process` instead.
 */
const hostProcess = runInThisContext('process') as NodeJS.Process;
const hostModule = hostProcess.getBuiltinModule('node:module') as typeof ModuleNamespace;

type CommonJsWrapper = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

/**
 * Loads a bundle's `index.js` as a fresh module, as a new Lambda container would: nothing is shared with
 * earlier loads. `@aws-sdk/*` (external to the bundle, provided by the nodejs22.x runtime) resolves to the
 * repository's pinned SDK. Answers every export of the entry.
 */
export function loadBundleExports(source: string, filename: string): Record<string, unknown> {
  const wrapper = runInThisContext(hostModule.wrap(source), { filename }) as CommonJsWrapper;
  const mod = { exports: {} as Record<string, unknown> };
  wrapper(
    mod.exports,
    hostModule.createRequire(join(REPO_ROOT, 'package.json')),
    mod,
    filename,
    dirname(filename),
  );
  return mod.exports;
}

/** The `handler` of a bundle loaded as a fresh module (loadBundleExports). */
export function loadBundleSource(source: string, filename: string): LambdaHandler {
  const { handler } = loadBundleExports(source, filename);
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

/** Runs `fn` with extra environment variables (in the real process, which bundles see), then restores them. */
export async function withEnv<T>(vars: Readonly<Record<string, string>>, fn: () => Promise<T>): Promise<T> {
  const envs = [...new Set([hostProcess.env, process.env])];
  const saved = envs.map((env) => Object.fromEntries(Object.keys(vars).map((key) => [key, env[key]])));
  for (const env of envs) Object.assign(env, vars);
  try {
    return await fn();
  } finally {
    envs.forEach((env, i) => {
      for (const [key, value] of Object.entries(saved[i] ?? {})) {
        if (value === undefined) delete env[key];
        else env[key] = value;
      }
    });
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

const hostDate = runInThisContext('Date') as DateConstructor;

/**
 * Runs `fn` with the real process's `Date.now` answering `now()`, so a bundle loaded here runs at a moment
 * the caller chooses (a sync window of its choice), then restores it. `new Date()` is left alone: the SDK
 * signs requests with it.
 */
export async function withClock<T>(now: () => number, fn: () => Promise<T>): Promise<T> {
  const real = hostDate.now;
  hostDate.now = now;
  try {
    return await fn();
  } finally {
    hostDate.now = real;
  }
}

/** Runs `fn` collecting what bundles write to the real process's stdout and stderr (logs, EMF metrics). */
export async function capturingOutput<T>(fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  const chunks: string[] = [];
  const streams = [hostProcess.stdout, hostProcess.stderr];
  const writes = streams.map((stream) => stream.write.bind(stream));
  for (const stream of streams)
    stream.write = ((chunk: string | Uint8Array) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as typeof stream.write;
  try {
    const result = await fn();
    return { result, output: chunks.join('') };
  } finally {
    streams.forEach((stream, i) => (stream.write = writes[i] as typeof stream.write));
  }
}
