/**
 * Milliseconds of message handling per turn of the event loop; what arrives past it waits for the
 * next turn, so a flood never holds the loop (and the requests waiting on it) for longer.
 */
export const SLICE_MS = 5;
/**
 * Messages (and bytes) waiting to be handled, at most. Past it a message is dropped: an honest one
 * shows as a gap in its source's sequence (or as its silence) and flushes the tier, as a lost
 * message does, so dropping is safe.
 */
export const MAX_INBOX = 200_000;
export const MAX_INBOX_BYTES = 64 * 1024 * 1024;

type Message = string | Uint8Array;

/**
 * What the bus receives, handled in slices: at once while this turn's slice of handling lasts,
 * else queued, in order, for the next turns. Each message keeps its arrival time (on the bus's
 * clock), so a source is heard when its message arrived, not when it was handled. A handler that
 * throws does not stop what comes next.
 */
export class Inbox {
  /** Messages dropped because too many were waiting. */
  dropped = 0;
  /** The longest the handler held the event loop in one slice, ms. */
  longestTurnMs = 0;
  private queue: Array<Message | undefined> = [];
  private arrivals: number[] = [];
  private head = 0;
  private bytes = 0;
  private draining = false;
  private closed = false;
  /** Time spent handling in this turn (-1: none yet this turn). */
  private turnSpent = -1;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    private readonly handle: (data: Message, arrived: number) => void,
    private readonly clock: () => number,
    /** Handling per turn, ms (tests that deliver by hand use Infinity). */
    private readonly sliceMs = SLICE_MS,
  ) {}

  /** Messages waiting now. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  receive(data: Message): void {
    if (this.closed) return;
    const arrived = this.clock();
    if (!this.draining) {
      if (this.turnSpent < 0) {
        this.turnSpent = 0;
        setImmediate(this.endTurn);
      }
      if (this.turnSpent <= this.sliceMs) {
        const started = performance.now();
        this.handleSafely(data, arrived);
        this.turnSpent += performance.now() - started;
        this.noteTurn(this.turnSpent);
        return;
      }
    }
    if (this.queued >= MAX_INBOX || this.bytes + data.length > MAX_INBOX_BYTES) {
      this.dropped++;
      return;
    }
    // a queued message is copied out of the transport's read buffer, so the buffer is not held
    this.queue.push(typeof data === 'string' ? data : Buffer.from(data));
    this.arrivals.push(arrived);
    this.bytes += data.length;
    if (!this.draining) {
      this.draining = true;
      setImmediate(this.drain);
    }
  }

  /** Resolves once every message received so far has been handled (for tests). */
  whenIdle(): Promise<void> {
    return this.draining ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  close(): void {
    this.closed = true;
  }

  private readonly endTurn = (): void => {
    this.turnSpent = -1;
  };

  /** Handles queued messages for one slice, then yields to the event loop until the queue is empty. */
  private readonly drain = (): void => {
    const started = performance.now();
    const until = started + this.sliceMs;
    while (this.head < this.queue.length && !this.closed) {
      const data = this.queue[this.head]!;
      const arrived = this.arrivals[this.head];
      this.queue[this.head++] = undefined;
      this.bytes -= data.length;
      this.handleSafely(data, arrived);
      // checked after every message: one can cost far more than another (a large one, without keys)
      if (performance.now() > until) break;
    }
    this.noteTurn(performance.now() - started);
    if (this.head >= this.queue.length || this.closed) {
      this.queue = [];
      this.arrivals = [];
      this.head = 0;
      this.bytes = 0;
      this.draining = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    if (this.head > 4096) {
      this.queue = this.queue.slice(this.head);
      this.arrivals = this.arrivals.slice(this.head);
      this.head = 0;
    }
    setImmediate(this.drain);
  };

  private handleSafely(data: Message, arrived: number): void {
    try {
      this.handle(data, arrived);
    } catch {
      // what the handler failed to do is its own; the next message is handled as usual
    }
  }

  private noteTurn(ms: number): void {
    if (ms > this.longestTurnMs) this.longestTurnMs = ms;
  }
}
