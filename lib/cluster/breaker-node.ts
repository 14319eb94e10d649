import type { LoggerService } from '@nestjs/common';
import { MemcachedError } from '../transport/memcached.error.js';
import type { NodeTransport, RequestOptions } from '../transport/node-connection.js';
import { PENDING } from '../transport/node-connection.js';
import { type BinaryResponse, buildRequest, Opcode } from '../transport/protocol.js';
import { RequestIds } from '../transport/request-ids.js';
import { nodeDown, nodeSkipped, nodeUp } from '../memcached.messages.js';
import { backgroundTimer } from '../utils/background.js';

export type BreakerState = 'closed' | 'open';

/** A node's health as `MemcachedClient.nodeStatus()` reports it. */
export interface NodeStatus {
  node: string;
  /** `up` while requests flow; `down` while the breaker is open (requests skip the node). */
  state: 'up' | 'down';
  consecutiveFailures: number;
  lastError?: string;
  lastErrorAt?: Date;
  /** Moving average of successful request latency, in ms. */
  latencyMs?: number;
  /** When the breaker last opened, while it is open. */
  downSince?: Date;
}

export interface BreakerOptions {
  /** Consecutive connection failures or timeouts that open the breaker; 0 disables it. */
  threshold: number;
  /**
   * While open: the longest pause between probes, ms. Probes start after a tenth of it (at least
   * 10 ms) and back off by doubling, so a node that comes back quickly is used again quickly.
   */
  cooldown: number;
  logger: LoggerService | false;
}

/** Failures that say the node (or our way to it) is unusable, as opposed to memcached's answers. */
const NODE_FAILURES = new Set(['CONNECTION', 'TIMEOUT', 'PROTOCOL', 'AUTH', 'TLS']);

/**
 * A per-node circuit breaker around a transport. After `threshold` consecutive connection
 * failures, timeouts, protocol or authentication errors it opens: the socket is dropped, requests
 * to the node fail at once (a dead node costs ~0 ms, not a timeout per request) while background
 * probes (an authenticated `noop` on a fresh socket) check whether the node is back, first after
 * a tenth of `cooldown` and then backing off to `cooldown`; the first successful probe closes it
 * again. memcached's own error answers (not found, too large, ...) are successes here.
 */
export class BreakerNode implements NodeTransport {
  private state: BreakerState = 'closed';
  private failures = 0;
  private lastError?: string;
  private lastErrorAt?: Date;
  private downSince?: Date;
  private latency?: number;
  private probeTimer?: NodeJS.Timeout;
  private probeDelay = 0;
  private readonly probeIds = RequestIds.forProbes();
  private closed = false;

  constructor(
    private readonly inner: NodeTransport,
    private readonly options: BreakerOptions,
  ) {}

  get label(): string {
    return this.inner.label;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  status(): NodeStatus {
    return {
      node: this.label,
      state: this.state === 'open' ? 'down' : 'up',
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      latencyMs: this.latency === undefined ? undefined : Math.round(this.latency * 1000) / 1000,
      downSince: this.downSince,
    };
  }

  /**
   * `settled`, when given, hears every request's end with its duration (and error), so a caller
   * keeping statistics needs no promise of its own around this one.
   */
  request<T>(
    operation: string,
    seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    options?: RequestOptions,
    settled?: (operation: string, node: string, durationMs: number, error?: unknown) => void,
  ): Promise<T> {
    if (this.state === 'open') {
      // a fresh error per caller (one may change what it was given), without the stack trace,
      // which would only show this line and costs more than the rest of a skipped request
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      const error = new MemcachedError(operation, this.label, 'UNAVAILABLE', nodeSkipped());
      Error.stackTraceLimit = limit;
      settled?.(operation, this.label, 0, error);
      return Promise.reject(error);
    }
    const started = performance.now();
    return this.inner.request(operation, seq, frame, onResponse, options).then(
      (value) => {
        const ms = performance.now() - started;
        this.succeeded(ms);
        settled?.(operation, this.label, ms);
        return value;
      },
      (error: unknown) => {
        const ms = performance.now() - started;
        if (error instanceof MemcachedError && NODE_FAILURES.has(error.code)) {
          this.failed(error);
        } else if (error instanceof MemcachedError && error.code === 'SERVER') {
          this.succeeded(ms);
        }
        settled?.(operation, this.label, ms, error);
        throw error;
      },
    );
  }

  reset(): void {
    this.inner.reset();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.inner.close();
  }

  private succeeded(ms: number): void {
    this.failures = 0;
    this.latency = this.latency === undefined ? ms : this.latency * 0.9 + ms * 0.1;
  }

  private failed(error: MemcachedError): void {
    this.failures++;
    this.lastError = error.message;
    this.lastErrorAt = new Date();
    if (this.state === 'closed' && this.options.threshold > 0 && this.failures >= this.options.threshold) this.open();
  }

  private open(): void {
    this.state = 'open';
    this.downSince = new Date();
    // whatever state the socket is in (a stuck or confused stream), probes start on a fresh one
    this.inner.reset();
    if (this.options.logger) {
      this.options.logger.warn(
        nodeDown(this.label, this.failures, this.lastError ?? 'unknown error', this.options.cooldown),
      );
    }
    this.probeDelay = Math.max(10, Math.floor(this.options.cooldown / 10));
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    const delay = Math.min(this.probeDelay, this.options.cooldown);
    this.probeDelay = delay * 2;
    this.probeTimer = backgroundTimer(() => void this.probe(), delay);
  }

  private async probe(): Promise<void> {
    if (this.closed || this.state !== 'open') return;
    const seq = this.probeIds.next();
    try {
      // noop needs authentication (version does not), so a probe passes only where requests would
      await this.inner.request('probe', seq, buildRequest(Opcode.Noop, '', null, null, seq), () => true);
      const downFor = this.downSince ? Date.now() - this.downSince.getTime() : 0;
      this.state = 'closed';
      this.failures = 0;
      this.downSince = undefined;
      if (this.options.logger) this.options.logger.log?.(nodeUp(this.label, downFor));
    } catch (error) {
      this.lastError = (error as Error).message;
      this.lastErrorAt = new Date();
      this.scheduleProbe();
    }
  }
}
