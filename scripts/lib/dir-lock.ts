// A lock between processes, possibly on several hosts sharing a filesystem: a directory that appears whole
// with its owner file (renamed into place), kept alive by a heartbeat on that file.
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { formatDuration } from './process';

export interface LockOptions {
  /** A lock whose owner file has not been touched for this long is stale, whoever holds it. Default: 60 s. */
  readonly staleMs?: number;
  /** How often the holder touches its owner file. Default: 10 s. */
  readonly heartbeatMs?: number;
  /** How long to wait for another holder before giving up. Default: 30 minutes. */
  readonly waitMs?: number;
  /** How often to look again. Default: 500 ms. */
  readonly pollMs?: number;
  /** Whether a process of this host is alive. Default: `process.kill(pid, 0)`. */
  readonly isAlive?: (pid: number) => boolean;
  /** Told when a stale lock is broken, and why. Default: stderr. */
  readonly log?: (message: string) => void;
  /** The clock heartbeats are aged by. Default: Date.now. */
  readonly now?: () => number;
}

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: number;
  /** Tells apart two holders with the same pid and start (PID namespaces of containers sharing a disk). */
  readonly nonce: string;
}

const OWNER_FILE = 'owner.json';
/** How old the lock's own leftovers (`<lock>.new-*`, `<lock>.stale-*`) must be before a holder removes them. */
const LEFTOVER_MS = 60 * 60_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The owner file's text (what identifies a holder) and when it was last touched; undefined without one. */
function readOwnerFile(lockDir: string): { text: string; touched: number } | undefined {
  try {
    const path = join(lockDir, OWNER_FILE);
    const text = readFileSync(path, 'utf8');
    return { text, touched: statSync(path).mtimeMs };
  } catch {
    return undefined;
  }
}

function parseOwner(text: string | undefined): LockOwner | undefined {
  try {
    const owner = JSON.parse(text ?? '') as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? (owner as LockOwner) : undefined;
  } catch {
    return undefined;
  }
}

/** A lock judged stale: why, and whose it was (its owner file's text; undefined for a lock without one). */
interface Stale {
  readonly reason: string;
  readonly ownerText: string | undefined;
}

/**
 * Whether a lock is stale: its holder has not touched the owner file for `staleMs` (a lock without one: the
 * directory is that old). A holder on this host whose process is gone is stale sooner, once it has missed two
 * heartbeats: a PID alone proves nothing, as another process may have it after a restart.
 */
function staleness(lockDir: string, options: Required<LockOptions>): Stale | undefined {
  const file = readOwnerFile(lockDir);
  let touched = file?.touched;
  if (touched === undefined) {
    try {
      touched = statSync(lockDir).mtimeMs;
    } catch {
      return undefined; // Gone: the next attempt takes it.
    }
  }
  const age = Math.max(0, options.now() - touched);
  const owner = parseOwner(file?.text);
  const holder = owner ? `process ${owner.pid} on ${owner.host}` : 'a holder without an owner file';
  if (age > options.staleMs) {
    return {
      reason: `its holder, ${holder}, has not renewed it for ${formatDuration(age)}`,
      ownerText: file?.text,
    };
  }
  if (owner?.host === hostname() && age > 2 * options.heartbeatMs && !options.isAlive(owner.pid)) {
    return {
      reason: `its holder, process ${owner.pid}, is gone and has not renewed it for ${formatDuration(age)}`,
      ownerText: file?.text,
    };
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => `${process.pid}-${randomBytes(4).toString('hex')}`;
const errorCode = (error: unknown): unknown => (error as NodeJS.ErrnoException | null)?.code;

/**
 * Creates the lock whole: a directory holding the owner file, renamed into place, so no one ever sees a lock
 * without its owner. Returns false when another lock is there.
 */
function tryCreate(lockDir: string, ownerText: string): boolean {
  const staging = `${lockDir}.new-${unique()}`;
  mkdirSync(staging);
  try {
    writeFileSync(join(staging, OWNER_FILE), ownerText);
    renameSync(staging, lockDir);
    return true;
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EEXIST' || code === 'ENOTEMPTY') return false;
    throw error;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Breaks a lock judged stale: moves it aside (of two breakers, one moves it, the other finds it gone), then
 * reads whose it was. When it is not the lock judged stale (another breaker took the lock meanwhile and
 * holds it), it is put back, and this process waits like any other.
 */
function breakLock(lockDir: string, stale: Stale, log: (message: string) => void): void {
  const aside = `${lockDir}.stale-${unique()}`;
  try {
    renameSync(lockDir, aside);
  } catch {
    return; // Someone else broke it first.
  }
  const moved = readOwnerFile(aside)?.text;
  if (moved === stale.ownerText) {
    log(`breaking the lock ${lockDir}: ${stale.reason}`);
    rmSync(aside, { recursive: true, force: true });
    return;
  }
  try {
    renameSync(aside, lockDir);
  } catch {
    // A third process made a lock meanwhile: the one moved aside has lost its place, and learns it on release.
    log(`the lock ${lockDir} changed hands while being broken; the holder moved aside (${aside}) lost it`);
  }
}

/** Removes this lock's own leftovers older than an hour: staging and stale directories of dead processes. */
function removeLeftovers(lockDir: string, now: number): void {
  const dir = dirname(lockDir);
  const prefixes = [`${basename(lockDir)}.new-`, `${basename(lockDir)}.stale-`];
  try {
    for (const name of readdirSync(dir).filter((n) => prefixes.some((p) => n.startsWith(p)))) {
      const path = join(dir, name);
      if (now - statSync(path).mtimeMs > LEFTOVER_MS) rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // Best effort.
  }
}

/**
 * Runs `fn` holding `lockDir`: waits for a live holder, breaks a stale lock. While `fn` runs, the owner file is
 * touched every `heartbeatMs`, so a lock whose holder died (on any host, whatever became of its PID) is stale
 * `staleMs` later.
 */
export async function withDirLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  lock: LockOptions = {},
): Promise<T> {
  const options: Required<LockOptions> = {
    staleMs: lock.staleMs ?? 60_000,
    heartbeatMs: lock.heartbeatMs ?? 10_000,
    waitMs: lock.waitMs ?? 30 * 60_000,
    pollMs: lock.pollMs ?? 500,
    isAlive: lock.isAlive ?? processAlive,
    log: lock.log ?? ((message) => console.error(message)),
    now: lock.now ?? Date.now,
  };
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    since: Date.now(),
    nonce: randomBytes(8).toString('hex'),
  };
  const ownerText = JSON.stringify(owner);
  const started = Date.now();
  while (!tryCreate(lockDir, ownerText)) {
    const stale = staleness(lockDir, options);
    if (stale) {
      breakLock(lockDir, stale, options.log);
      continue;
    }
    if (Date.now() - started > options.waitMs) {
      const holder = parseOwner(readOwnerFile(lockDir)?.text);
      throw new Error(
        `waited ${formatDuration(options.waitMs)} for ${lockDir}` +
          (holder ? ` (held by process ${holder.pid} on ${holder.host})` : '') +
          '; remove it if no download is running',
      );
    }
    await sleep(options.pollMs);
  }
  const ours = () => readOwnerFile(lockDir)?.text === ownerText;
  const heartbeat = setInterval(() => {
    try {
      if (!ours()) return;
      const now = new Date();
      utimesSync(join(lockDir, OWNER_FILE), now, now);
    } catch {
      // The next beat tries again; a lock not renewed for staleMs is broken, which is the point.
    }
  }, options.heartbeatMs);
  heartbeat.unref();
  try {
    removeLeftovers(lockDir, options.now());
    return await fn();
  } finally {
    clearInterval(heartbeat);
    // Released only while it is still ours (another process may have judged it stale meanwhile).
    if (ours()) rmSync(lockDir, { recursive: true, force: true });
  }
}
