import { AsyncResource } from 'node:async_hooks';

/**
 * The async context this module was loaded in (at import, before any request): the library's own
 * background work runs in it, not in the context of the request that happened to schedule it.
 * (AsyncLocalStorage, and so OpenTelemetry's default context manager, follow it; a context manager
 * that keeps its own stack does not.)
 */
const outside = new AsyncResource('nestjs-memcached:background', { requireManualDestroy: true });

/**
 * Runs `work` outside any request's async context: what it creates (a socket, a timer) and every
 * callback of those runs there too, so a request that happened to start it neither has the
 * library's later work traced as its own nor is kept alive by it.
 */
export function detached<T>(work: () => T): T {
  return outside.runInAsyncScope(work);
}

/** `setTimeout` (unref'd) for background work: paying owed invalidations, probing a node. */
export function backgroundTimer(run: () => void, delay: number): NodeJS.Timeout {
  const timer = detached(() => setTimeout(run, delay));
  timer.unref();
  return timer;
}
