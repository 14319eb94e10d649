import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { canConnect, freePort, listensOn, sleep } from './memcached-daemon.js';

const execFileAsync = promisify(execFile);

/**
 * The brokers and the database the e2e tests use, each a real server this test process starts on a
 * free loopback port with its data in a fresh temporary directory, so that no test depends on (or
 * disturbs) a server the machine happens to run. Killed, with their directories removed, when the
 * test process exits.
 */
export interface TestServer {
  readonly port: number;
  readonly url: string;
  /** The server's process (NATS, Redis), for tests that pin it to a CPU. */
  readonly pid?: number;
  stop(): Promise<void>;
}

/** Each process runs in its own process group: stopping or killing it reaches its helpers too. */
class Launched {
  private readonly exited: Promise<void>;
  private alive = true;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        this.alive = false;
        running.delete(this);
        resolve();
      }),
    );
    running.add(this);
  }

  /**
   * Spawns `command` and waits until a process of its group listens on `port` (a port another
   * process took after freePort found it free also accepts connections, so accepting alone proves
   * nothing) and `ready` says so. Output goes to `log`, a file, so that nobody has to drain it.
   */
  static async start(spec: {
    name: string;
    command: string;
    args: string[];
    port: number;
    log: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    user?: { uid: number; gid: number };
    timeoutMs?: number;
    ready?: () => Promise<boolean>;
  }): Promise<Launched> {
    const out = openSync(spec.log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, {
        stdio: ['ignore', out, out],
        detached: true,
        env: spec.env ?? process.env,
        cwd: spec.cwd,
        ...spec.user,
      });
    } finally {
      closeSync(out);
    }
    const launched = new Launched(child);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const deadline = Date.now() + (spec.timeoutMs ?? 10_000);
    try {
      for (;;) {
        const failure = await Promise.race([spawnError, sleep(25).then(() => undefined)]);
        if (failure) throw failure;
        if (!launched.alive) throw new Error(`exited ${child.exitCode ?? child.signalCode}`);
        if (
          (await canConnect(spec.port)) &&
          groupListensOn(child.pid!, spec.port) &&
          (!spec.ready || (await spec.ready()))
        )
          return launched;
        if (Date.now() > deadline) throw new Error(`not ready within ${spec.timeoutMs ?? 10_000} ms`);
      }
    } catch (err) {
      const exited = !launched.alive;
      launched.killNow();
      // a process that never started emits no exit
      if (child.pid !== undefined) await launched.exited;
      throw new ServerStartError(
        `${spec.name} on port ${spec.port} did not start (${(err as Error).message}): ${tail(spec.log)}`,
        exited,
        err,
      );
    }
  }

  /** Sends `signal` to the process (its own graceful stop), SIGKILLs the group after `graceMs`. */
  async stop(signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
    if (this.alive) {
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    // what the leader left behind (a server's own children) goes with it
    this.killNow();
    if (this.child.pid !== undefined) await this.exited;
  }

  killNow(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
}

/** A start that failed because the process exited (typically: its port was taken meanwhile); worth a retry. */
class ServerStartError extends Error {
  constructor(
    message: string,
    readonly exited: boolean,
    cause: unknown,
  ) {
    super(message, { cause });
  }
}

const running = new Set<Launched>();
const directories = new Set<string>();
process.once('exit', () => {
  for (const launched of running) launched.killNow();
  for (const dir of directories) removeDir(dir);
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `nmc-${prefix}-`));
  directories.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  directories.delete(dir);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // a server killed at exit may still be writing into it
  }
}

/** Tries `start` with fresh ports again when the server exited at once (a port taken in between). */
async function withRetries<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 4 || !(err instanceof ServerStartError && err.exited)) throw err;
    }
  }
}

/** The last lines of a server's log, for an error message. */
function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n') || 'no output';
  } catch {
    return 'no output';
  }
}

/** The first of `candidates` that exists, else a clear error naming the Debian package. */
function binary(name: string, pkg: string, candidates: string[]): string {
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed: run \`bash .ci/run\` or \`apt-get install ${pkg}\``);
  }
}

/** Whether a process of the group `pgid` listens on 127.0.0.1:`port` (Linux's /proc; assumed where there is none). */
function groupListensOn(pgid: number, port: number): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return listensOn(pgid, port);
  }
  return pids.some((pid) => {
    try {
      // "pid (comm) state ppid pgrp ...": comm may hold spaces
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(fields[2]) === pgid && listensOn(Number(pid), port);
    } catch {
      return false;
    }
  });
}

/** NATS (`nats-server`, no JetStream: nothing on disk). */
export function startNats(): Promise<TestServer> {
  const command = binary('nats-server', 'nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server']);
  return withRetries(async () => {
    const dir = tempDir('nats');
    const port = await freePort();
    try {
      const server = await Launched.start({
        name: 'nats-server',
        command,
        args: ['-a', '127.0.0.1', '-p', String(port)],
        port,
        log: join(dir, 'server.log'),
      });
      return stoppable(port, `nats://127.0.0.1:${port}`, dir, () => server.stop('SIGTERM'), server.child.pid);
    } catch (err) {
      removeDir(dir);
      throw err;
    }
  });
}

/** Redis, persisting nothing. */
export function startRedis(): Promise<TestServer> {
  const command = binary('redis-server', 'redis-server', ['/usr/bin/redis-server']);
  return withRetries(async () => {
    const dir = tempDir('redis');
    const port = await freePort();
    try {
      const server = await Launched.start({
        name: 'redis-server',
        command,
        args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        port,
        log: join(dir, 'server.log'),
      });
      return stoppable(port, `redis://127.0.0.1:${port}`, dir, () => server.stop('SIGTERM'), server.child.pid);
    } catch (err) {
      removeDir(dir);
      throw err;
    }
  });
}

let rabbitNodes = 0;

/**
 * RabbitMQ as a node of its own: its own name, ports, epmd, Erlang cookie (HOME) and directories,
 * and none of the machine's configuration (/etc/rabbitmq sets the node name and port 5672), so it
 * neither needs nor disturbs a RabbitMQ the machine runs. The guest user may log in from loopback.
 */
export function startRabbitMq(): Promise<TestServer> {
  const command = binary('rabbitmq-server', 'rabbitmq-server', ['/usr/lib/rabbitmq/bin/rabbitmq-server']);
  const epmdCommand = binary('epmd', 'rabbitmq-server', ['/usr/bin/epmd', '/usr/lib/erlang/bin/epmd']);
  return withRetries(async () => {
    const dir = tempDir('rabbitmq');
    const [port, distPort, epmdPort] = await distinctFreePorts(3);
    let epmd: Launched | undefined;
    try {
      // an epmd of our own: the one on 4369 may be the machine's, and one the node started itself
      // would outlive it
      epmd = await Launched.start({
        name: 'epmd',
        command: epmdCommand,
        args: ['-address', '127.0.0.1', '-port', String(epmdPort)],
        port: epmdPort,
        log: join(dir, 'epmd.log'),
      });
      const plugins = join(dir, 'enabled_plugins');
      const envFile = join(dir, 'rabbitmq-env.conf');
      writeFileSync(plugins, '');
      writeFileSync(envFile, '');
      const node = `nmc-${process.pid}-${++rabbitNodes}@localhost`;
      const rabbit = await Launched.start({
        name: 'rabbitmq-server',
        command,
        args: [],
        port,
        log: join(dir, 'server.log'),
        cwd: dir,
        env: {
          ...process.env,
          // the Erlang cookie is made here, readable by this node only
          HOME: dir,
          ERL_EPMD_PORT: String(epmdPort),
          ERL_EPMD_ADDRESS: '127.0.0.1',
          RABBITMQ_NODENAME: node,
          RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
          RABBITMQ_NODE_PORT: String(port),
          RABBITMQ_DIST_PORT: String(distPort),
          RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
          RABBITMQ_LOG_BASE: join(dir, 'log'),
          // empty: no plugins (the management plugin alone adds seconds and a port)
          RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
          RABBITMQ_CONF_ENV_FILE: envFile,
          // absent files: no cuttlefish configuration to translate at boot, none of /etc/rabbitmq's
          RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
          RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
          RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
        },
        timeoutMs: 90_000,
        ready: () => amqpAnswers(port),
      });
      const rabbitmqEpmd = epmd;
      return stoppable(port, `amqp://guest:guest@127.0.0.1:${port}`, dir, async () => {
        // the script turns SIGTERM into RabbitMQ's graceful stop, as `rabbitmqctl stop` does, without
        // booting a second Erlang VM for the CLI
        await rabbit.stop('SIGTERM');
        await rabbitmqEpmd.stop('SIGTERM');
      });
    } catch (err) {
      await epmd?.stop('SIGKILL');
      removeDir(dir);
      throw err;
    }
  });
}

/** Whether an AMQP 0-9-1 broker answers the protocol header with its first frame (Connection.Start). */
function amqpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1')));
    // frame type 1: a method frame
    socket.once('data', (chunk) => done(chunk[0] === 1));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/**
 * PostgreSQL with a fresh cluster (user `postgres`, trust authentication, database `test`),
 * durability off for speed. initdb and postgres refuse to run as root: as root they run as the
 * `postgres` user the Debian package creates.
 */
export function startPostgres(): Promise<TestServer> {
  const bin = postgresBin();
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  return withRetries(async () => {
    const dir = tempDir('postgres');
    if (user) chownSync(dir, user.uid, user.gid);
    const data = join(dir, 'data');
    const log = join(dir, 'server.log');
    try {
      await execFileAsync(
        join(bin, 'initdb'),
        ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
        { cwd: dir, ...user },
      );
    } catch (err) {
      removeDir(dir);
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new Error(`initdb failed: ${stderr || (err as Error).message}`, { cause: err });
    }
    const port = await freePort();
    try {
      const server = await Launched.start({
        name: 'postgres',
        command: join(bin, 'postgres'),
        // the socket in our directory: /var/run/postgresql may not exist, or be another server's
        args: ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1'].concat(
          ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'].flatMap((setting) => ['-c', setting]),
        ),
        port,
        log,
        cwd: dir,
        user,
        timeoutMs: 30_000,
        ready: () => createDatabase(port, 'test'),
      });
      // SIGINT: the fast shutdown (SIGTERM would wait for every client to disconnect)
      return stoppable(port, `postgres://postgres@127.0.0.1:${port}/test`, dir, () => server.stop('SIGINT'));
    } catch (err) {
      removeDir(dir);
      throw err;
    }
  });
}

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length > 0) return join(root, versions[0], 'bin');
  const initdb = binary('initdb', 'postgresql', []);
  return initdb.slice(0, initdb.lastIndexOf('/'));
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      'no `postgres` user to run PostgreSQL as (root may not): run `bash .ci/run` or `apt-get install postgresql`',
    );
  }
}

/** Creates `database` once the server accepts connections; false while it is starting up. */
async function createDatabase(port: number, database: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch {
    return false;
  }
  try {
    await client.query(`CREATE DATABASE ${database}`);
    return true;
  } finally {
    await client.end();
  }
}

/** `count` free ports, all different (freePort alone may hand out the same one twice). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function stoppable(port: number, url: string, dir: string, stop: () => Promise<void>, pid?: number): TestServer {
  let stopped: Promise<void> | undefined;
  return {
    port,
    url,
    pid,
    stop: () => (stopped ??= stop().finally(() => removeDir(dir))),
  };
}
