/**
 * The request ids (the binary protocol's 32-bit `opaque`) and who owns which: a response is
 * matched to its request by id alone, so two owners must never hand out the same one.
 * - `CONNECTION_OPAQUE` (0): the connection's own frames (SASL authentication, the TLS nudge),
 *   answered before or beside any request and never matched to one;
 * - 1 to 2^31 - 1: the client's requests (`RequestIds.forRequests`);
 * - 2^31 to 2^32 - 1: the breaker's probes (`RequestIds.forProbes`).
 */
export const CONNECTION_OPAQUE = 0;

const HALF = 0x80000000;

/** Hands out the ids of one range, in turn, wrapping around. */
export class RequestIds {
  private last = 0;

  private constructor(private readonly base: number) {}

  /** The client's requests' ids. */
  static forRequests(): RequestIds {
    return new RequestIds(0);
  }

  /** The breaker's probes' ids. */
  static forProbes(): RequestIds {
    return new RequestIds(HALF);
  }

  next(): number {
    this.last = this.last >= HALF - 1 ? 1 : this.last + 1;
    return this.base + this.last;
  }
}
