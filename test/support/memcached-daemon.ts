import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Flags for one daemon; `itemSize` is memcached's `-I` (e.g. `'2k'`). */
export interface DaemonOptions {
  itemSize?: string;
  memoryMb?: number;
  extraArgs?: string[];
  /** Starts memcached with SASL (`-S`, binary protocol only), with these users in a sasldb. */
  saslUsers?: Array<{ username: string; password: string }>;
  /** Starts memcached with TLS (`-Z`): its certificate and key, and a CA to require client certificates from (mutual TLS). */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

/**
 * A SASL configuration directory for memcached: a sasldb made with `saslpasswd2` (Debian's
 * memcached has no plaintext password file) and a config allowing PLAIN. Readable by the
 * `memcache` user the daemon drops to.
 */
function saslConfig(users: Array<{ username: string; password: string }>): string {
  const dir = mkdtempSync(join(tmpdir(), 'memcached-sasl-'));
  chmodSync(dir, 0o755);
  const db = join(dir, 'sasldb2');
  for (const { username, password } of users) {
    execFileSync('saslpasswd2', ['-p', '-a', 'memcached', '-c', '-f', db, username], { input: password });
  }
  chmodSync(db, 0o644);
  writeFileSync(join(dir, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`, { mode: 0o644 });
  return dir;
}

const running = new Set<MemcachedDaemon>();
process.once('exit', () => {
  for (const daemon of running) daemon.killNow();
});

export function memcachedBinary(): string {
  for (const candidate of [process.env.MEMCACHED_BIN, '/usr/bin/memcached', '/usr/local/bin/memcached']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v memcached'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('memcached is not installed: run `bash .ci/run` or `apt-get install memcached`');
  }
}

/** A free loopback port, found by binding port 0. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A real memcached process on a free loopback port. Tests can stop, kill, pause (SIGSTOP),
 * resume and restart it; every daemon still running is killed when the test process exits.
 */
export class MemcachedDaemon {
  private child?: ChildProcess;
  private saslDir?: string;

  private constructor(
    readonly port: number,
    private readonly options: DaemonOptions,
  ) {}

  static async start(options: DaemonOptions = {}): Promise<MemcachedDaemon> {
    for (let attempt = 0; ; attempt++) {
      const daemon = new MemcachedDaemon(await freePort(), options);
      try {
        await daemon.spawn();
        return daemon;
      } catch (err) {
        if (attempt >= 4) throw err;
      }
    }
  }

  get host(): string {
    return '127.0.0.1';
  }

  /** `127.0.0.1:port`, as the client's `servers` option takes it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined;
  }

  /** Graceful stop (SIGTERM), waiting for the process to exit. */
  async stop(): Promise<void> {
    await this.signalAndWait('SIGTERM');
  }

  /** Abrupt death (SIGKILL), as a crashed node. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  async pause(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    child.kill('SIGSTOP');
    // the signal is only queued: each thread stops when it next runs, and a loaded machine can
    // let the worker answer a request sent meanwhile; wait until every thread has stopped
    const deadline = Date.now() + 5000;
    while (!allStopped(child.pid)) {
      if (Date.now() > deadline) throw new Error(`memcached (pid ${child.pid}) did not stop within 5 s of SIGSTOP`);
      await sleep(1);
    }
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Starts it again on the same port, empty. */
  async restart(): Promise<void> {
    if (this.child) await this.kill();
    await this.spawn();
  }

  killNow(): void {
    if (this.saslDir) rmSync(this.saslDir, { recursive: true, force: true });
    if (!this.child) return;
    try {
      this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
    this.child = undefined;
    running.delete(this);
  }

  private async spawn(): Promise<void> {
    const args = ['-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-t', '1', '-c', '1024'];
    args.push('-m', String(this.options.memoryMb ?? 64));
    if (this.options.itemSize) {
      // memcached refuses an -I below its default slab chunk size (512k) unless told a smaller one
      const bytes = parseSize(this.options.itemSize);
      args.push('-I', String(bytes), '-o', `slab_chunk_max=${Math.min(bytes / 2, 512 * 1024)}`);
    }
    if (process.getuid?.() === 0) args.push('-u', 'memcache');
    const env = { ...process.env };
    if (this.options.saslUsers) {
      this.saslDir ??= saslConfig(this.options.saslUsers);
      args.push('-S');
      env.SASL_CONF_PATH = this.saslDir;
    }
    const tls = this.options.tls;
    if (tls) {
      const settings = [`ssl_chain_cert=${tls.certFile}`, `ssl_key=${tls.keyFile}`];
      // 2: a client without a certificate from this CA is refused
      if (tls.clientCaFile) settings.push(`ssl_ca_cert=${tls.clientCaFile}`, 'ssl_verify_mode=2');
      args.push('-Z', '-o', settings.join(','));
    }
    args.push(...(this.options.extraArgs ?? []));
    const child = spawn(memcachedBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr += chunk));
    let exited = false;
    child.once('exit', () => {
      exited = true;
      if (this.child === child) {
        this.child = undefined;
        running.delete(this);
      }
    });
    this.child = child;
    running.add(this);
    const deadline = Date.now() + 5000;
    // a port another process listens on also accepts: ours must be the one holding it
    while (!(await canConnect(this.port)) || !listensOn(child.pid, this.port)) {
      if (exited || Date.now() > deadline) {
        this.killNow();
        throw new Error(`memcached on port ${this.port} did not start: ${stderr.trim() || 'no output'}`);
      }
      await sleep(20);
    }
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGCONT');
      child.kill(signal);
      await exited;
    }
    // a restart writes a fresh one
    if (this.saslDir) rmSync(this.saslDir, { recursive: true, force: true });
    this.saslDir = undefined;
  }
}

/** Starts `count` daemons with the same flags. */
export async function startDaemons(count: number, options: DaemonOptions = {}): Promise<MemcachedDaemon[]> {
  return Promise.all(Array.from({ length: count }, () => MemcachedDaemon.start(options)));
}

export async function stopAll(daemons: Array<MemcachedDaemon | undefined>): Promise<void> {
  await Promise.all(daemons.map((d) => d?.kill()));
}

/** Whether every thread of `pid` is stopped (Linux's /proc; assumed where there is none). */
function allStopped(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    // no /proc: assumed; a /proc without the process: it is gone, not stopped
    return !existsSync('/proc/self');
  }
  return tasks.every((task) => {
    try {
      // "pid (comm) state ...": comm may hold spaces, the state follows its closing parenthesis
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      return stat[stat.lastIndexOf(')') + 2] === 'T';
    } catch {
      return true;
    }
  });
}

/**
 * Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux's /proc; assumed
 * where there is none). freePort's port can be taken by another worker's daemon or proxy before
 * ours binds it; ours then exits, but connecting to the port still succeeds.
 */
export function listensOn(pid: number | undefined, port: number): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return true;
  }
  if (pid === undefined) return false;
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[3] === '0A') inodes.add(fields[9]);
  }
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function parseSize(size: string): number {
  const match = /^([0-9]+)([km]?)$/i.exec(size);
  if (!match) throw new Error(`bad itemSize ${size}`);
  return Number(match[1]) * (match[2] === '' ? 1 : /k/i.test(match[2]) ? 1024 : 1024 * 1024);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
