import memjs from 'memjs';
import type { MemcachedNodeAddress } from '../config/server-list.js';
import { MemcachedError } from './memcached.error.js';
import type { BinaryResponse } from './protocol.js';

const parseMessage = (memjs as unknown as { Utils: { parseMessage(buf: Buffer): BinaryResponse } }).Utils.parseMessage;

/** The parts of memjs's `Server` this client drives (memjs ships no types for them). */
interface MemjsServer {
  _socket?: import('node:net').Socket;
  connected: boolean;
  responseCallbacks: Record<number, ((res: BinaryResponse) => void) & { quiet?: boolean }>;
  errorCallbacks: Record<number, (err: unknown) => void>;
  onResponse(seq: number, fn: (res: BinaryResponse) => void): void;
  onError(seq: number, fn: (err: unknown) => void): void;
  write(frame: Buffer): void;
  error(err: unknown): void;
  sock(sasl: boolean, go: (socket: unknown) => void): void;
  close(): void;
}

type MemjsServerConstructor = new (
  host: string,
  port: number,
  username: string | undefined,
  password: string | undefined,
  options: Record<string, unknown>,
) => MemjsServer;

/** `onResponse` returns this while a multi-response request (getMulti, stats) is still streaming. */
export const PENDING: unique symbol = Symbol('pending');

export interface ConnectionOptions {
  username?: string;
  password?: string;
  timeout: number;
  connectTimeout: number;
  keepAlive: boolean;
  retries: number;
  retryDelay: number;
}

export interface RequestOptions {
  /** The request may get several responses; `onResponse` returns PENDING until the last. */
  quiet?: boolean;
  /** Safe to send again after a connection error. */
  idempotent?: boolean;
}

const CLOSED_BY_SERVER = 'connection closed by the server';

/** What the client needs from a node: requests with a deadline, and close. */
export interface NodeTransport {
  readonly label: string;
  request<T>(
    operation: string,
    seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    options?: RequestOptions,
  ): Promise<T>;
  close(): void;
}

export type NodeTransportFactory = (address: MemcachedNodeAddress, options: ConnectionOptions) => NodeTransport;

/**
 * One memcached node: memjs's socket, SASL and framing, plus what memjs lacks: a deadline on
 * every request (memjs leaves a request pending forever when the server closes the socket),
 * failing in-flight requests at once when the socket closes, and no retries that could apply
 * an increment twice.
 */
export class NodeConnection implements NodeTransport {
  readonly label: string;
  private readonly server: MemjsServer;
  private closed = false;
  private queued: Buffer[] = [];
  private flushScheduled = false;

  constructor(
    readonly address: MemcachedNodeAddress,
    private readonly options: ConnectionOptions,
  ) {
    this.label = address.label;
    const Server = (memjs as unknown as { Server: MemjsServerConstructor }).Server;
    this.server = new Server(address.host, address.port, options.username, undefined, {
      timeout: options.timeout / 1000,
      conntimeout: options.connectTimeout / 1000,
      keepAlive: options.keepAlive,
      keepAliveDelay: 30,
    });
    // memjs falls back to MEMCACHIER_* / MEMCACHE_* variables; only our options count, and the
    // password stays out of enumerable properties so inspecting the client never shows it
    Object.defineProperty(this.server, 'password', {
      value: options.password,
      enumerable: false,
      writable: true,
    });
    if (!options.username) (this.server as unknown as { username?: string }).username = undefined;
    this.failPendingOnClose();
    this.parseWithoutCopying();
  }

  request<T>(
    operation: string,
    seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    options: RequestOptions = {},
  ): Promise<T> {
    if (this.closed) {
      return Promise.reject(new MemcachedError(operation, this.label, 'CLOSED', 'the client is closed'));
    }
    return new Promise<T>((resolve, reject) => {
      const server = this.server;
      const startedAt = Date.now();
      const timeout = this.options.timeout;
      let settled = false;
      let attempt = 0;
      const finish = (err: MemcachedError | null, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };
      const timer = setTimeout(() => {
        this.forget(seq);
        finish(new MemcachedError(operation, this.label, 'TIMEOUT', `no answer within ${timeout} ms`));
      }, timeout);
      const send = () => {
        const handler = (res: BinaryResponse) => {
          if (settled) return;
          let result: T | typeof PENDING;
          try {
            result = onResponse(res);
          } catch (err) {
            this.forget(seq);
            finish(err instanceof MemcachedError ? err : toError(operation, this.label, err));
            return;
          }
          if (result !== PENDING) finish(null, result);
        };
        if (options.quiet) (handler as { quiet?: boolean }).quiet = true;
        server.onResponse(seq, handler);
        server.onError(seq, (err: unknown) => {
          if (settled) return;
          const left = timeout - (Date.now() - startedAt) - this.options.retryDelay;
          if (options.idempotent && attempt < this.options.retries && left > 0 && !this.closed) {
            attempt++;
            setTimeout(send, this.options.retryDelay).unref();
          } else {
            finish(toError(operation, this.label, err));
          }
        });
        this.enqueue(frame);
      };
      send();
    });
  }

  /**
   * Requests issued in the same turn of the event loop (every HTTP request that arrived in it, a
   * burst of concurrent calls) leave in one socket write instead of one system call each.
   */
  private enqueue(frame: Buffer): void {
    this.queued.push(frame);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const frames = this.queued;
    this.queued = [];
    if (frames.length === 0) return;
    this.server.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  };

  /** Ends the socket; requests made afterwards reject with `CLOSED`. */
  close(): void {
    if (this.closed) return;
    // what was already asked for (a fill behind a result, say) still goes out
    this.flush();
    this.closed = true;
    const socket = this.server._socket;
    this.server.close();
    if (socket) setTimeout(() => socket.destroy(), Math.min(this.options.timeout, 1000)).unref();
  }

  /** Drops a request memcached never answered, so memjs keeps no callback for it. */
  private forget(seq: number): void {
    delete this.server.responseCallbacks[seq];
    delete this.server.errorCallbacks[seq];
  }

  /**
   * memjs appends every received chunk to one buffer by copying it whole, which is quadratic in a
   * large value's size; this keeps the chunks and joins them once per complete message.
   */
  private parseWithoutCopying(): void {
    const server = this.server as unknown as MemjsServer & {
      responseHandler(data: Buffer): void;
      respond(res: BinaryResponse): void;
      saslAuth(): void;
      emit(event: string): void;
    };
    let chunks: Buffer[] = [];
    let buffered = 0;
    // joins only the chunks that hold the first `length` bytes (never everything buffered)
    const join = (length: number): Buffer => {
      let size = 0;
      let count = 0;
      while (size < length) size += chunks[count++].length;
      const joined = Buffer.concat(chunks.slice(0, count), size);
      chunks.splice(0, count, joined);
      return joined;
    };
    const take = (length: number): Buffer => {
      const first = chunks[0].length >= length ? chunks[0] : join(length);
      const message = first.subarray(0, length);
      if (first.length === length) chunks.shift();
      else chunks[0] = first.subarray(length);
      buffered -= length;
      return message;
    };
    const headerOf = (): Buffer => (chunks[0].length >= 24 ? chunks[0] : join(24));
    server.responseHandler = function (data: Buffer) {
      chunks.push(data);
      buffered += data.length;
      while (buffered >= 24) {
        const header = headerOf();
        const total = 24 + header.readUInt32BE(8);
        if (buffered < total) return;
        const res = parseMessage(take(total));
        if (res.header.opcode === 0x20) this.saslAuth();
        else if (res.header.status === 0x20) this.error('Memcached server authentication failed!');
        else if (res.header.opcode === 0x21) this.emit('authenticated');
        else this.respond(res);
      }
    };
    const error = server.error;
    server.error = function (this: MemjsServer, err: unknown) {
      chunks = [];
      buffered = 0;
      error.call(this, err);
    };
  }

  private failPendingOnClose(): void {
    const server = this.server;
    const sock = server.sock;
    server.sock = function (this: MemjsServer, sasl, go) {
      sock.call(this, sasl, go);
      const socket = this._socket as (import('node:net').Socket & { __nmWatched?: boolean }) | undefined;
      if (!socket || socket.__nmWatched) return;
      socket.__nmWatched = true;
      socket.unref();
      socket.once('close', () => {
        if (this._socket !== undefined && this._socket !== socket) return;
        if (Object.keys(this.errorCallbacks).length > 0) this.error(new Error(CLOSED_BY_SERVER));
      });
    };
  }
}

function toError(operation: string, node: string, err: unknown): MemcachedError {
  const message = err instanceof Error ? err.message : String(err);
  return new MemcachedError(operation, node, 'CONNECTION', message, undefined, { cause: err });
}
