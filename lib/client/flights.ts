import { flightNames } from '../codec/keyspace.js';
import type { ItemRead } from './operations.js';

/** What a running load tells the calls that may join it. */
export interface FlightHandle {
  /** Records the lease this load holds (its marker's CAS), or null when it holds none. */
  leased(cas: Buffer | null): void;
  /** True once an eviction in this process came after the load started: its result is not stored. */
  readonly invalidated: boolean;
}

interface Flight extends FlightHandle {
  promise: Promise<unknown>;
  /** When the load started, on the ticket clock. */
  ticket: number;
  lease: Promise<Buffer | null>;
  invalidated: boolean;
}

/**
 * Single-flight for cache misses, split by evictions. Concurrent misses of one key share one load,
 * but a call joins a running load only when that load cannot be older than an eviction the call
 * must see: the load started after the call did (tickets), or the call's own read found the very
 * lease marker the load holds (an eviction deletes the marker, and the fill is conditional on it).
 * An eviction in this process marks the key's running load invalidated: nobody joins it any more
 * and its result is not stored.
 */
export class Flights {
  private clock = 0;
  private readonly running = new Map<string, Flight>();

  /** A call's start on the ticket clock; take it before the call's first read. */
  ticket(): number {
    return ++this.clock;
  }

  /**
   * Joins the load running for `key` when that is safe (see the class), else starts `load` as the
   * key's load. `seen` is what this call's read found at the key. `joined` says which happened.
   */
  async run<T>(
    key: string,
    ticket: number,
    seen: ItemRead | undefined,
    load: (flight: FlightHandle) => Promise<T>,
  ): Promise<{ result: T; joined: boolean }> {
    for (;;) {
      const current = this.running.get(key);
      if (current === undefined || current.invalidated) break;
      if (current.ticket > ticket) return { result: (await current.promise) as T, joined: true };
      if (seen?.state !== 'lease') break;
      const held = await current.lease;
      if (this.running.get(key) !== current) continue;
      if (held !== null && held.equals(seen.cas) && !current.invalidated)
        return { result: (await current.promise) as T, joined: true };
      break;
    }
    return { result: await this.start(key, load), joined: false };
  }

  /** An eviction of `key` in this process: its running load is neither joined nor stored. */
  invalidate(key: string): void {
    const current = this.running.get(key);
    if (current === undefined) return;
    current.invalidated = true;
    this.running.delete(key);
  }

  /** An eviction of a wire key: its loads (HTTP or not, tagged or not) are neither joined nor stored. */
  invalidateWire(wire: string): void {
    this.invalidate(flightNames.ofWire(wire, false));
    this.invalidate(flightNames.ofWire(wire, true));
    if (this.running.size === 0) return;
    this.invalidatePrefix(flightNames.ofWire(wire, false) + '\u0002');
    this.invalidatePrefix(flightNames.ofWire(wire, true) + '\u0002');
  }

  /** Invalidates every running load whose key starts with `prefix`. */
  invalidatePrefix(prefix: string): void {
    for (const key of [...this.running.keys()]) if (key.startsWith(prefix)) this.invalidate(key);
  }

  private start<T>(key: string, load: (flight: FlightHandle) => Promise<T>): Promise<T> {
    let settleLease!: (cas: Buffer | null) => void;
    const flight: Flight = {
      promise: undefined as unknown as Promise<unknown>,
      ticket: this.ticket(),
      lease: new Promise<Buffer | null>((resolve) => (settleLease = resolve)),
      invalidated: false,
      leased: (cas) => settleLease(cas),
    };
    this.running.set(key, flight);
    const promise = load(flight);
    flight.promise = promise;
    const done = () => {
      settleLease(null);
      if (this.running.get(key) === flight) this.running.delete(key);
    };
    promise.then(done, done);
    return promise;
  }
}
