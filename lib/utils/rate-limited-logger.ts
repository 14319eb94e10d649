import type { LoggerService } from '@nestjs/common';

/**
 * Logs a message at most once per interval for each topic, then reports how many were held back,
 * so a dead cache node yields a few lines a minute instead of one per request.
 */
export class RateLimitedLogger {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: LoggerService | false,
    private readonly intervalMs = 10_000,
  ) {}

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
    this.last.set(topic, { at: now, suppressed: 0 });
    this.logger.warn((typeof message === 'function' ? message() : message) + suffix);
  }

  /** Logs once per topic for the life of the process. */
  once(topic: string, message: string): void {
    if (!this.logger || this.last.has(topic)) return;
    this.last.set(topic, { at: Number.POSITIVE_INFINITY, suppressed: 0 });
    this.logger.warn(message);
  }
}
