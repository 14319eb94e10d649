/**
 * Coalesces concurrent calls per key: while one call for a key is running, the others get its
 * promise instead of starting their own.
 */
export class SingleFlight {
  private readonly inflight = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running as Promise<T>;
    const promise = fn();
    this.inflight.set(key, promise);
    const clear = () => {
      this.inflight.delete(key);
    };
    promise.then(clear, clear);
    return promise;
  }
}
