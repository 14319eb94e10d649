import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const register = fileURLToPath(new URL('../../scripts/ts-register.mjs', import.meta.url));

export interface Worker {
  child: ChildProcess;
  /** Resolves with the parsed last line of stdout when the process exits 0. */
  result: Promise<any>;
  /** Resolves when stdout prints this line. */
  waitFor(line: string): Promise<void>;
  /** Writes a line to the worker's stdin. */
  send(line: string): void;
}

const running = new Set<ChildProcess>();
// a test that times out leaves its workers running: they go with the test process
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Runs a TypeScript worker in its own OS process with a JSON job (and Node flags such as `--expose-gc`). */
export function startWorker(script: URL, job: object, nodeFlags: string[] = []): Worker {
  const child = spawn(
    process.execPath,
    [...nodeFlags, '--import', register, fileURLToPath(script), JSON.stringify(job)],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ line: string; resolve: () => void }> = [];
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
    for (const w of [...waiters]) {
      if (stdout.split('\n').includes(w.line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const result = new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => {
      if (code !== 0) return reject(new Error(`worker exited ${code ?? signal}: ${stderr}`));
      const lines = stdout.trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]));
      } catch (error) {
        reject(new Error(`worker printed no JSON result (${(error as Error).message}): ${stdout.slice(-200)}`));
      }
    });
  });
  result.catch(() => undefined);
  return {
    child,
    result,
    send: (line) => child.stdin!.write(line + '\n'),
    waitFor: (line) =>
      stdout.split('\n').includes(line)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ line, resolve })),
  };
}
