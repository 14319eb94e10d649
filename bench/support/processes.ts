import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const register = fileURLToPath(new URL('../../scripts/ts-register.mjs', import.meta.url));

/**
 * CPU pinning (BENCH_PIN=0 turns it off): the server under test gets the last CPU to itself; the
 * load generator, memcached and this orchestrator share the others. On a small shared machine
 * this keeps the load generator from stealing the server's CPU, so req/s measures the server.
 */
export const pinning: { server: string; rest: string } | undefined = (() => {
  const cpus = os.availableParallelism();
  if (process.env.BENCH_PIN === '0' || cpus < 2) return undefined;
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return { server: String(cpus - 1), rest: cpus === 2 ? '0' : `0-${cpus - 2}` };
})();

/** `node args...`, under `taskset -c cpus` when pinning is on. */
function node(args: string[], cpus: string | undefined): [string, string[]] {
  return pinning && cpus ? ['taskset', ['-c', cpus, process.execPath, ...args]] : [process.execPath, args];
}

/** Moves a running process (all its threads) to the non-server CPUs, when pinning is on. */
export function pinToRest(pid: number | undefined): void {
  if (pinning && pid) execFileSync('taskset', ['-a', '-p', '-c', pinning.rest, String(pid)], { stdio: 'ignore' });
}

/** Moves a running process (all its threads) to the server's CPU, when pinning is on. */
export function pinToServer(pid: number): void {
  if (pinning) execFileSync('taskset', ['-a', '-p', '-c', pinning.server, String(pid)], { stdio: 'ignore' });
}

/** How the processes were placed, for the report. */
export function pinningNote(): string {
  return pinning
    ? `server pinned to CPU ${pinning.server}, load generator and memcached to CPU ${pinning.rest} (taskset; BENCH_PIN=0 turns this off)`
    : 'no CPU pinning';
}

/**
 * Starts a TypeScript script in its own Node process; resolves once it prints READY. `pin: false`
 * leaves it unpinned (several servers at once).
 */
export async function startServer(
  script: URL,
  env: Record<string, string>,
  options: { pin?: boolean } = {},
): Promise<ChildProcess> {
  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof": flags for the server under test only
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const [command, args] = node(
    [...extra, '--import', register, fileURLToPath(script)],
    options.pin === false ? undefined : pinning?.server,
  );
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (process.env.BENCH_SERVER_LOG)
    child.stdout!.on('data', (chunk) => appendFileSync(process.env.BENCH_SERVER_LOG!, chunk));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('READY')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${script.pathname} exited ${code} before READY`)));
  });
  return child;
}

/** Stops a server: SIGTERM (a clean exit, so `--cpu-prof` writes its profile), SIGKILL after 5 s. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Runs a TypeScript script with a JSON job and returns its last stdout line, parsed. */
export function runJson<T>(script: URL, job: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const [command, args] = node(['--import', register, fileURLToPath(script), JSON.stringify(job)], pinning?.rest);
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script.pathname} exited ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

/** The HTTP variant server and the load generator every HTTP benchmark uses. */
export const httpServer = new URL('../http/server.ts', import.meta.url);
export const loadGenerator = new URL('../http/load.ts', import.meta.url);

/** What the load generator reports. */
export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  /** The slowest response, ms. */
  max: number;
  /** When it arrived, ms into the run. */
  maxAt: number;
  /** The slowest response that arrived from `windowFromMs` on (0 without it). */
  windowMax: number;
  non2xx: number;
  errors: number;
}
