/**
 * How the Python worker process is contained at the OS level. With bubblewrap, the worker runs in
 * new user, PID, network, IPC, UTS and cgroup namespaces with no capabilities, a cleared environment
 * and a file system that holds only what node and pyodide need to start (read-only): no /etc, no
 * home, no project files, no shell. Without it, only the in-process layers hold (see worker.mjs)
 * and stepwise says so at start-up.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ProtectionLevel = 'bubblewrap' | 'in-process';

export interface Protection {
  level: ProtectionLevel;
  /** One sentence for logs and `stepwise tool --protection`. */
  summary: string;
  /** Why bubblewrap is not used, when it is not. */
  reason?: string;
}

const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));

/** The pyodide entry module and the package directories the worker imports from. */
function pyodidePaths(): { entry: string; dirs: string[] } {
  const require = createRequire(import.meta.url);
  const entry = realpathSync(require.resolve('pyodide/pyodide.mjs'));
  const pyodideDir = dirname(entry);
  const dirs = [pyodideDir];
  try {
    // pyodide imports `ws` while it starts; the worker later closes it.
    const ws = realpathSync(createRequire(entry).resolve('ws'));
    dirs.push(dirname(ws).replace(/(\/node_modules\/ws)\/.*$/, '$1'));
  } catch {
    // Not installed: pyodide then fails to start and the pool reports that error.
  }
  return { entry, dirs };
}

/** Shared libraries node needs, from `ldd`; undefined when ldd is missing or says nothing useful. */
function nodeLibraries(node: string): string[] | undefined {
  try {
    const out = execFileSync('ldd', [node], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const libs = [...out.matchAll(/(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
    return libs.length > 0 ? libs : undefined;
  } catch {
    return undefined;
  }
}

/** Start-up from a memory snapshot: make one (`make`, a file to write) or start from one (`load`). */
export type SnapshotMode = { make: string } | { load: string } | undefined;

function bwrapArgs(
  node: string,
  nodeFlags: string[],
  entry: string,
  dirs: string[],
  snapshot: SnapshotMode,
): string[] {
  const args = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
    '--clearenv',
    // Node's IPC channel is fd 3 of the worker; the variables tell node so (--clearenv removed them).
    '--setenv',
    'NODE_CHANNEL_FD',
    '3',
    '--setenv',
    'NODE_CHANNEL_SERIALIZATION_MODE',
    'json',
    '--hostname',
    'sandbox',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--tmpfs',
    '/tmp',
    '--chdir',
    '/',
  ];
  const libs = nodeLibraries(node);
  if (libs) {
    for (const lib of libs) args.push('--ro-bind', realpathSync(lib), lib);
  } else {
    // No ldd: bind the system directories node's libraries live in (no /etc, home or project files).
    for (const dir of ['/usr', '/lib', '/lib64', '/lib32']) {
      if (existsSync(dir)) args.push('--ro-bind', realpathSync(dir), dir);
    }
  }
  args.push('--ro-bind', realpathSync(node), node);
  for (const dir of dirs) args.push('--ro-bind', dir, dir);
  args.push('--ro-bind', WORKER, WORKER);
  let snapshotArgs: string[] = [];
  if (snapshot && 'make' in snapshot) {
    // Only the snapshot maker (trusted start-up code, no agent code) gets a writable directory.
    args.push('--bind', dirname(snapshot.make), '/snapshot');
    snapshotArgs = ['--make-snapshot', `/snapshot/${basename(snapshot.make)}`];
  } else if (snapshot) {
    args.push('--ro-bind', snapshot.load, '/snapshot.bin');
    snapshotArgs = ['--snapshot', '/snapshot.bin'];
  }
  args.push(node, ...nodeFlags, WORKER, entry, ...snapshotArgs);
  return args;
}

export interface WorkerCommand {
  command: string;
  args: string[];
  /** Environment of the spawned command (bwrap clears it again for the worker). */
  env: NodeJS.ProcessEnv;
}

/** The command that starts one Python worker under the given protection. */
export function workerCommand(
  protection: Protection,
  nodeFlags: string[],
  snapshot?: SnapshotMode,
): WorkerCommand {
  const node = process.execPath;
  const { entry, dirs } = pyodidePaths();
  if (protection.level === 'bubblewrap') {
    return { command: 'bwrap', args: bwrapArgs(node, nodeFlags, entry, dirs, snapshot), env: {} };
  }
  // In-process only: still start from an empty environment.
  const snapshotArgs = !snapshot
    ? []
    : 'make' in snapshot
      ? ['--make-snapshot', snapshot.make]
      : ['--snapshot', snapshot.load];
  return { command: node, args: [...nodeFlags, WORKER, entry, ...snapshotArgs], env: {} };
}

/**
 * Where the start-up snapshot of this pyodide and node lives: a directory of the current user only
 * (a snapshot is code the workers run, so nobody else may write it).
 */
export function snapshotFile(): string {
  const { entry } = pyodidePaths();
  const version = (
    JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as { version: string }
  ).version;
  const uid = process.getuid?.() ?? 'user';
  const dir = join(tmpdir(), `stepwise-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const owner = statSync(dir);
  if (process.getuid && (owner.uid !== process.getuid() || (owner.mode & 0o022) !== 0)) {
    throw new Error(`${dir} is not a private directory of this user; not using a start-up snapshot from it`);
  }
  return join(dir, `pyodide-${version}-node-${process.version}.snapshot`);
}

let detected: Protection | undefined;

/**
 * Which protection this machine gives the Python worker. bubblewrap is used when it can actually
 * create the namespaces (it cannot in some containers, or where unprivileged user namespaces are off).
 * `STEPWISE_SANDBOX=in-process` forces the weaker mode (for machines where bwrap misbehaves).
 */
export function detectProtection(): Protection {
  if (detected) return detected;
  const inProcess = (reason: string): Protection => ({
    level: 'in-process',
    summary:
      'python sandbox: IN-PROCESS HARDENING ONLY (pyodide bridges closed, process/socket calls ' +
      `blocked); no OS-level containment because ${reason}. Install bubblewrap for full protection.`,
    reason,
  });
  if (process.env.STEPWISE_SANDBOX === 'in-process') {
    detected = inProcess('STEPWISE_SANDBOX=in-process is set');
    return detected;
  }
  const probe = spawnSync(
    'bwrap',
    ['--unshare-all', '--die-with-parent', '--cap-drop', 'ALL', '--ro-bind', '/', '/', 'true'],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (probe.error) detected = inProcess(`bwrap could not be run (${probe.error.message})`);
  else if (probe.status !== 0) {
    detected = inProcess(
      `bwrap cannot create namespaces here (${probe.stderr.trim() || `exit ${probe.status}`})`,
    );
  } else {
    detected = {
      level: 'bubblewrap',
      summary:
        'python sandbox: bubblewrap (new user/pid/network namespaces, no capabilities, no network, ' +
        'read-only minimal file system, cleared environment) around pyodide with its bridges closed',
    };
  }
  return detected;
}
