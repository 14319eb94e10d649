import type { LoggerService } from '@nestjs/common';
import { traceSuffix } from '../tracing/channels.js';

/**
 * Logs a message at most once per interval for each topic, then reports how many were held back,
 * so a dead cache node yields a few lines a minute instead of one per request. It remembers at
 * most `maxTopics` topics (the oldest are forgotten), so no stream of distinct topics grows it.
 * A line logged during a traced request names its trace (`nestjs-memcached/otel`).
 */
export class RateLimitedLogger {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: LoggerService | false,
    private readonly intervalMs = 10_000,
    private readonly maxTopics = 1000,
  ) {}

  /** How many topics are remembered. */
  get size(): number {
    return this.last.size;
  }

  /** `message` may be a function, so a suppressed message costs no string building. */
  warn(topic: string, message: string | (() => string)): void {
    if (!this.logger) return;
    const now = Date.now();
    const entry = this.last.get(topic);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suffix = entry && entry.suppressed > 0 ? ` (${entry.suppressed} similar messages suppressed)` : '';
    this.remember(topic, now);
    this.logger.warn((typeof message === 'function' ? message() : message) + suffix + traceSuffix());
  }

  /** Logs once per topic (as long as the topic is remembered). */
  once(topic: string, message: string): void {
    if (!this.logger || this.last.has(topic)) return;
    this.remember(topic, Number.POSITIVE_INFINITY);
    this.logger.warn(message + traceSuffix());
  }

  private remember(topic: string, at: number): void {
    this.last.delete(topic);
    if (this.last.size >= this.maxTopics) this.last.delete(this.last.keys().next().value!);
    this.last.set(topic, { at, suppressed: 0 });
  }
}
