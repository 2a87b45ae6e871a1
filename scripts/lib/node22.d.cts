// Types of node22.cjs (plain CommonJS, so that the dependency-free pre-script and TypeScript share it).

/** The Node 22 version the pre-script installs into `.build/node22`. */
export declare const NODE22_VERSION: string;
/** `.build/node22`, relative to the repository. */
export declare const NODE22_DIR: string;

export interface Node22Package {
  /** `node-<os>-<cpu>`. */
  readonly name: string;
  /** `<name>@<NODE22_VERSION>`. */
  readonly spec: string;
  /** The binary's path inside the package. */
  readonly bin: string;
  /** The darwin-x64 build on Apple silicon, run by Rosetta 2 (no darwin-arm64 build of Node 22 is on npm). */
  readonly rosetta: boolean;
}

export interface Node22Candidate {
  readonly source: string;
  readonly path: string;
  /** `--version` output when known without running it. */
  readonly version?: string;
  /** ESTATE_NODE22: the one, or an error. */
  readonly required?: boolean;
  /** The copy in `.build/node22`: skipped, not probed, while absent. */
  readonly installed?: boolean;
}

export interface Node22Found {
  readonly path: string;
  /** `v22.x.y`. */
  readonly version: string;
  readonly source: string;
}

export type Node22Choice = Node22Found | { readonly error: string } | undefined;

export interface Node22Context {
  readonly env?: NodeJS.ProcessEnv;
  readonly platform?: string;
  readonly arch?: string;
  /** The running node's binary and version (default: process.execPath, process.version). */
  readonly execPath?: string;
  readonly runningVersion?: string;
  /** `<binary> --version` output, or undefined when it does not run. Default: nodeVersion. */
  readonly probe?: (binary: string) => string | undefined;
}

export declare function node22Package(platform?: string, arch?: string): Node22Package | undefined;
export declare function installedNode22(
  repoRoot: string,
  platform?: string,
  arch?: string,
): string | undefined;
export declare function node22InstallArgs(platform?: string, arch?: string): string[] | undefined;
export declare function isNode22(version: string | undefined): boolean;
export declare function findOnPath(
  command: string,
  env?: NodeJS.ProcessEnv,
  platform?: string,
): string | undefined;
export declare function node22Candidates(repoRoot: string, context?: Node22Context): Node22Candidate[];
export declare function chooseNode22(
  candidates: readonly Node22Candidate[],
  probe: (binary: string) => string | undefined,
  exists?: (path: string) => boolean,
): Node22Choice;
export declare function nodeVersion(binary: string): string | undefined;
export declare function resolveNode22(repoRoot: string, context?: Node22Context): Node22Choice;
/** The Node 22 binary for running the handlers as Lambda does (nodejs22.x); undefined when there is none yet. */
export declare function node22Binary(repoRoot: string, env?: NodeJS.ProcessEnv): string | undefined;
