import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const register = fileURLToPath(new URL('../../scripts/ts-register.mjs', import.meta.url));

/** Starts a TypeScript script in its own Node process; resolves once it prints READY. */
export async function startServer(script: URL, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', register, fileURLToPath(script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Runs a TypeScript script with a JSON job and returns its last stdout line, parsed. */
export function runJson<T>(script: URL, job: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', register, fileURLToPath(script), JSON.stringify(job)], {
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
  non2xx: number;
  errors: number;
}
