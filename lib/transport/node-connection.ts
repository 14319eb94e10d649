import {
  tlsFailed,
  tlsSetupFailed,
  tlsNoHandshake,
  authFailed,
  authRequired,
  clientClosed,
  closedByServer,
  connectionReset,
  malformedResponse,
  noAnswer,
  noConnection,
  opcodeMismatch,
  protocolDropped,
  saslRefused,
  saslStatus,
} from '../memcached.messages.js';
import net from 'node:net';
import tls from 'node:tls';
import type { MemcachedNodeAddress } from '../config/server-list.js';
import { MemcachedError } from './memcached.error.js';
import { type BinaryResponse, buildRequest, Opcode, Status } from './protocol.js';
import { CONNECTION_OPAQUE } from './request-ids.js';
import { ProtocolError, ResponseParser } from './response-parser.js';
import { detached } from '../utils/background.js';

/** `onResponse` returns this while a multi-response request (getMulti, stats) is still streaming. */
export const PENDING: unique symbol = Symbol('pending');

export interface ConnectionOptions {
  username?: string;
  password?: string;
  /** Connect over TLS with these settings (their private key is kept apart, as the password is). */
  tls?: tls.ConnectionOptions;
  timeout: number;
  connectTimeout: number;
  keepAlive: boolean;
  retries: number;
  retryDelay: number;
  /** Longest response body accepted; a longer one is skipped as it arrives and read as `oversized`. */
  maxBodyLength: number;
}

export interface RequestOptions {
  /** The request may get several responses; `onResponse` returns PENDING until the last. */
  quiet?: boolean;
  /** Safe to send again after a connection error. */
  idempotent?: boolean;
}

/** What the client needs from a node: requests with a deadline, a reset, and close. */
export interface NodeTransport {
  readonly label: string;
  request<T>(
    operation: string,
    seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    options?: RequestOptions,
  ): Promise<T>;
  /** Drops the current socket (a confused or stuck stream); the next request opens a new one. */
  reset(): void;
  close(): void;
}

export type NodeTransportFactory = (address: MemcachedNodeAddress, options: ConnectionOptions) => NodeTransport;

interface Pending {
  operation: string;
  opcode: number;
  frame: Buffer;
  onResponse: (res: BinaryResponse) => unknown;
  quiet: boolean;
  idempotent: boolean;
  attempt: number;
  startedAt: number;
  timer: NodeJS.Timeout;
  resolve(value: unknown): void;
  reject(error: MemcachedError): void;
}

type State = 'idle' | 'connecting' | 'ready' | 'closed';

// SASL credentials and TLS settings live here, never on the connection, so inspecting a node cannot show them
const credentials = new WeakMap<NodeConnection, Buffer>();
const tlsSettings = new WeakMap<NodeConnection, TlsSetup>();

/**
 * How a node connects over TLS: the certificates and the private key are loaded once into a secure
 * context, and only that context goes to `tls.connect` (a TLS socket keeps its connect options,
 * so the key and its passphrase must never be among them). A context that cannot be made (a
 * wrong passphrase, bad PEM) is the error every connection attempt fails with, at once.
 */
interface TlsSetup {
  connect: tls.ConnectionOptions;
  failure?: MemcachedError;
}

function tlsSetup(label: string, options: tls.ConnectionOptions): TlsSetup {
  const { ca, cert, key, passphrase, ...connect } = options;
  try {
    const secureContext = tls.createSecureContext({ ca, cert, key, passphrase, minVersion: connect.minVersion });
    return { connect: { ...connect, secureContext } };
  } catch (error) {
    const code = (error as { code?: string }).code;
    return {
      connect,
      failure: new MemcachedError(
        'connect',
        label,
        'TLS',
        tlsSetupFailed(code, (error as Error).message, isEncryptedKey(key)),
      ),
    };
  }
}

/**
 * Whether the key is an encrypted PEM key: a wrong passphrase then usually fails as "bad decrypt",
 * but now and then decrypts to bytes that fail later, as an undecodable key.
 */
function isEncryptedKey(key: tls.ConnectionOptions['key']): boolean {
  const keys = Array.isArray(key) ? key : [key];
  return keys.some((k) => {
    const pem = Buffer.isBuffer(k) ? k.toString('latin1') : typeof k === 'string' ? k : undefined;
    return pem !== undefined && pem.includes('ENCRYPTED');
  });
}

/**
 * memcached (1.6.18 at least) reads TLS with a plain `SSL_read` and waits on the socket after a
 * short read: when its read ends inside a TLS record, the rest of that record stays decrypted in
 * OpenSSL, and if the socket brings nothing more, those requests are never answered (20 pipelined
 * 1 KB sets hang). After a write that can span records (over 2 KB: memcached's smallest read
 * buffer), a NOOP in a record of its own wakes it; its id is the connection's own (no request's), so
 * its answer is dropped.
 */
const TLS_NUDGE = buildRequest(Opcode.Noop, '', null, null, CONNECTION_OPAQUE);
const TLS_NUDGE_AFTER = 2048;
/** A turn's frames up to this many bytes in all are copied into one write; past it, large ones go as they are. */
const COPY_UP_TO = 16 * 1024;

/**
 * One memcached node over one pipelined socket, speaking the binary protocol. Every byte the
 * server sends is checked (see `ResponseParser`): a broken frame drops the socket and fails what
 * was in flight on it, never the process. Every request has its own deadline, including when the
 * server closes the socket or stops answering; idempotent requests can be retried after a
 * connection error, within that deadline. SASL PLAIN runs before anything else is sent.
 */
export class NodeConnection implements NodeTransport {
  readonly label: string;
  private state: State = 'idle';
  private socket?: net.Socket;
  private connectTimer?: NodeJS.Timeout;
  private readonly pending = new PendingTable();
  private outbox: Array<{ seq: number; frame: Buffer }> = [];
  private flushScheduled = false;
  private readonly options: Omit<ConnectionOptions, 'username' | 'password' | 'tls'>;

  constructor(
    readonly address: MemcachedNodeAddress,
    { username, password, tls: secure, ...options }: ConnectionOptions,
  ) {
    this.label = address.label;
    this.options = options;
    if (secure) tlsSettings.set(this, tlsSetup(address.label, secure));
    if (username) {
      const auth = Buffer.from(`\0${username}\0${password ?? ''}`, 'utf8');
      credentials.set(this, buildRequest(Opcode.SaslAuth, 'PLAIN', null, auth, CONNECTION_OPAQUE));
    }
  }

  request<T>(
    operation: string,
    seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    options: RequestOptions = {},
  ): Promise<T> {
    if (this.state === 'closed') {
      return Promise.reject(new MemcachedError(operation, this.label, 'CLOSED', clientClosed()));
    }
    if (this.pending.has(seq)) {
      return Promise.reject(
        new MemcachedError(operation, this.label, 'CONNECTION', `request id ${seq} is already in flight`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const timeout = this.options.timeout;
      const pending: Pending = {
        operation,
        opcode: frame[1],
        frame,
        onResponse,
        quiet: options.quiet === true,
        idempotent: options.idempotent === true,
        attempt: 0,
        startedAt: Date.now(),
        timer: setTimeout(() => {
          if (this.pending.get(seq) !== pending) return;
          this.pending.delete(seq);
          reject(new MemcachedError(operation, this.label, 'TIMEOUT', noAnswer(timeout)));
        }, timeout),
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      this.pending.set(seq, pending);
      this.enqueue(seq, frame);
    });
  }

  reset(): void {
    if (this.socket) this.drop(this.socket, new MemcachedError('reset', this.label, 'CONNECTION', connectionReset()));
  }

  /** Ends the socket; requests made afterwards reject with `CLOSED`. */
  close(): void {
    if (this.state === 'closed') return;
    // what was already asked for (a fill behind a result, say) still goes out
    this.flush();
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    const socket = this.socket;
    if (!socket) return;
    if (!wasReady) {
      this.drop(socket, new MemcachedError('close', this.label, 'CLOSED', clientClosed()));
      return;
    }
    socket.end();
    setTimeout(() => socket.destroy(), Math.min(this.options.timeout, 1000)).unref();
  }

  /**
   * Requests issued in the same turn of the event loop (every HTTP request that arrived in it, a
   * burst of concurrent calls) leave in one socket write instead of one system call each.
   */
  private enqueue(seq: number, frame: Buffer): void {
    this.outbox.push({ seq, frame });
    // the socket outlives this request: its events must not run in the request's context
    if (this.state === 'idle') detached(() => this.connect());
    if (this.state !== 'ready' || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.state !== 'ready' || this.socket === undefined) return;
    const entries = this.outbox;
    if (entries.length === 0) return;
    this.outbox = [];
    // frames of requests that already timed out are not sent
    const frames: Buffer[] = [];
    let total = 0;
    for (const entry of entries) {
      if (this.pending.get(entry.seq)?.frame !== entry.frame) continue;
      frames.push(entry.frame);
      total += entry.frame.length;
    }
    if (frames.length === 0) return;
    const socket = this.socket;
    const done =
      total > TLS_NUDGE_AFTER && tlsSettings.has(this)
        ? (error?: Error | null) => error || socket.destroyed || socket.write(TLS_NUDGE)
        : undefined;
    if (frames.length === 1 || total <= COPY_UP_TO) {
      socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames, total), done);
      return;
    }
    // large frames are not copied into one buffer (copying them costs more than the writes); runs of small ones are
    socket.cork();
    let from = 0;
    let runBytes = 0;
    for (let i = 0; i <= frames.length; i++) {
      const frame = frames[i];
      if (frame !== undefined && frame.length < COPY_UP_TO) {
        runBytes += frame.length;
        continue;
      }
      if (i > from)
        socket.write(
          i - from === 1 ? frames[from] : Buffer.concat(frames.slice(from, i), runBytes),
          i === frames.length ? done : undefined,
        );
      if (frame !== undefined) socket.write(frame, i === frames.length - 1 ? done : undefined);
      from = i + 1;
      runBytes = 0;
    }
    socket.uncork();
  };

  private connect(): void {
    this.state = 'connecting';
    const { host, port } = this.address;
    const secure = tlsSettings.get(this);
    if (secure?.failure !== undefined) {
      // on the next turn, so that every request made in this one fails alike
      setImmediate(() => this.failSetup(secure.failure!));
      return;
    }
    const socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...secure.connect })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    socket.setKeepAlive(this.options.keepAlive, 30_000);
    socket.unref();
    this.socket = socket;
    const parser = new ResponseParser(this.options.maxBodyLength, (res) => this.dispatch(socket, res));
    this.connectTimer = setTimeout(
      () =>
        this.drop(
          socket,
          new MemcachedError(
            'connect',
            this.label,
            secure ? 'TLS' : 'CONNECTION',
            secure ? tlsNoHandshake(this.options.connectTimeout) : noConnection(this.options.connectTimeout),
          ),
        ),
      this.options.connectTimeout,
    );
    // over TLS, nothing is sent before the handshake has verified the server
    let handshaken = !secure;
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      handshaken = true;
      if (this.socket !== socket) return;
      const auth = credentials.get(this);
      if (auth) socket.write(auth);
      else this.ready(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      try {
        parser.push(chunk);
      } catch (error) {
        const detail = error instanceof ProtocolError ? error.message : `unreadable response: ${String(error)}`;
        this.drop(
          socket,
          new MemcachedError('read', this.label, 'PROTOCOL', protocolDropped(detail), undefined, { cause: error }),
        );
      }
    });
    // a server that refuses our certificate says so after the handshake (TLS 1.3): still a TLS error
    socket.on('error', (error: Error & { code?: string }) =>
      this.drop(
        socket,
        !handshaken || (secure && error.code?.startsWith('ERR_SSL_'))
          ? tlsError(this.label, error)
          : toError('connect', this.label, error),
      ),
    );
    socket.on('close', () => this.drop(socket, new MemcachedError('read', this.label, 'CONNECTION', closedByServer())));
  }

  private ready(socket: net.Socket): void {
    clearTimeout(this.connectTimer);
    if (this.state === 'closed') {
      socket.end();
      return;
    }
    this.state = 'ready';
    this.flush();
  }

  private dispatch(socket: net.Socket, res: BinaryResponse): void {
    if (this.socket !== socket) return;
    const { opcode, opaque, status } = res.header;
    if (opcode === Opcode.SaslAuth && opaque === CONNECTION_OPAQUE && this.state !== 'ready') {
      if (status === Status.Ok) this.ready(socket);
      else
        this.drop(
          socket,
          new MemcachedError(
            'authenticate',
            this.label,
            'AUTH',
            status === Status.AuthError ? saslRefused() : saslStatus(status),
          ),
        );
      return;
    }
    const pending = this.pending.get(opaque);
    // a late answer to a request that already timed out
    if (pending === undefined) return;
    if (opcode !== pending.opcode && !(pending.quiet && opcode === Opcode.Noop)) {
      throw new ProtocolError(opcodeMismatch(opcode, pending.opcode));
    }
    if (status === Status.AuthError) {
      const detail = credentials.has(this) ? authFailed() : authRequired();
      this.settle(opaque, pending, new MemcachedError(pending.operation, this.label, 'AUTH', detail, status));
      return;
    }
    let result: unknown;
    try {
      result = pending.onResponse(res);
    } catch (error) {
      const failure =
        error instanceof MemcachedError
          ? error
          : new MemcachedError(
              pending.operation,
              this.label,
              'PROTOCOL',
              malformedResponse((error as Error)?.message ?? String(error)),
              status,
              { cause: error },
            );
      this.settle(opaque, pending, failure);
      return;
    }
    if (result !== PENDING) this.settle(opaque, pending, null, result);
  }

  private settle(seq: number, pending: Pending, error: MemcachedError | null, value?: unknown): void {
    if (this.pending.get(seq) !== pending) return;
    this.pending.delete(seq);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(value);
  }

  /** The TLS settings cannot work: whatever waits fails with that, and the next request tries again. */
  private failSetup(error: MemcachedError): void {
    if (this.state === 'connecting') this.state = 'idle';
    this.outbox = [];
    for (const [seq, pending] of this.pending.entries()) {
      this.settle(seq, pending, error.operation === pending.operation ? error : rename(error, pending.operation));
    }
  }

  /** Drops a socket: its buffered bytes, unsent frames and in-flight requests go with it. */
  private drop(socket: net.Socket, error: MemcachedError): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    clearTimeout(this.connectTimer);
    socket.destroy();
    this.outbox = [];
    const closed = this.state === 'closed';
    if (!closed) this.state = 'idle';
    for (const [seq, pending] of this.pending.entries()) {
      const left = this.options.timeout - (Date.now() - pending.startedAt) - this.options.retryDelay;
      if (!closed && pending.idempotent && pending.attempt < this.options.retries && left > 0) {
        pending.attempt++;
        setTimeout(() => {
          if (this.pending.get(seq) === pending && this.state !== 'closed') this.enqueue(seq, pending.frame);
        }, this.options.retryDelay).unref();
        continue;
      }
      const failure =
        closed && error.code !== 'AUTH'
          ? new MemcachedError(pending.operation, this.label, 'CLOSED', clientClosed())
          : error;
      this.settle(seq, pending, failure.operation === pending.operation ? failure : rename(failure, pending.operation));
    }
  }
}

function rename(error: MemcachedError, operation: string): MemcachedError {
  return new MemcachedError(operation, error.node, error.code, error.detail, error.status, { cause: error.cause });
}

/** A failed handshake, named as such: a certificate that does not verify is not a network fault. */
function tlsError(node: string, err: Error & { code?: string }): MemcachedError {
  return new MemcachedError('connect', node, 'TLS', tlsFailed(err.code, err.message), undefined, { cause: err });
}

function toError(operation: string, node: string, err: unknown): MemcachedError {
  const message = err instanceof Error ? err.message : String(err);
  return new MemcachedError(operation, node, 'CONNECTION', message, undefined, { cause: err });
}

/** In-flight requests by id: a dictionary object (V8 keeps integer keys as elements). */
class PendingTable {
  private table: Record<number, Pending> = Object.create(null);

  get(seq: number): Pending | undefined {
    return this.table[seq];
  }

  has(seq: number): boolean {
    return this.table[seq] !== undefined;
  }

  set(seq: number, pending: Pending): void {
    this.table[seq] = pending;
  }

  delete(seq: number): void {
    delete this.table[seq];
  }

  entries(): Array<[number, Pending]> {
    return Object.keys(this.table).map((key) => [Number(key), this.table[Number(key)]]);
  }
}
