import { AsyncResource } from 'node:async_hooks';

/**
 * The async context this module was loaded in (at import, before any request): the library's own
 * background work runs in it, not in the context of the request that happened to schedule it.
 */
const outside = new AsyncResource('nestjs-memcached:background', { requireManualDestroy: true });

/**
 * `setTimeout` (unref'd) for background work: paying owed invalidations, probing a node. A plain
 * timer keeps the scheduling request's context (its AsyncLocalStorage stores), so a retry made
 * minutes later would be traced as part of that request, and its warnings would name its trace.
 */
export function backgroundTimer(run: () => void, delay: number): NodeJS.Timeout {
  const timer = outside.runInAsyncScope(() => setTimeout(run, delay));
  timer.unref();
  return timer;
}
