import type { LoggerService } from '@nestjs/common';
import { backgroundTimer } from './background.js';

/** What a state change says: at `log` level for good news, `warn` for bad. */
export interface StateMessage {
  level: 'log' | 'warn';
  message: string;
}

/** What the line for a state is given. */
export interface StateChange {
  up: boolean;
  /** The state last logged; undefined the first time. */
  previous: boolean | undefined;
  /** Changes since the last line (more than 1 when the state flapped meanwhile). */
  changes: number;
  /** For a recovery: how long it was down, ms. */
  downForMs: number;
}

/**
 * Logs a component's up/down changes so that the last line logged always tells its current state:
 * a change is logged at once, unless a line was logged within `intervalMs`; then the state is
 * logged when the interval ends, if it differs from the last line. A flapping link gives a few
 * lines a minute, and never leaves "down" as the last word while it is up, or the reverse.
 */
export class StateLog {
  private logged: boolean | undefined;
  private current: boolean | undefined;
  private downSince = 0;
  private lastAt = Number.NEGATIVE_INFINITY;
  private changes = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly logger: LoggerService | false,
    private readonly describe: (change: StateChange) => StateMessage,
    private readonly intervalMs = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  set(up: boolean): void {
    if (this.closed || up === this.current) return;
    const now = this.clock();
    this.current = up;
    if (!up) this.downSince = now;
    this.changes++;
    if (this.timer !== undefined) return;
    const wait = this.lastAt + this.intervalMs - now;
    if (wait <= 0) return this.write();
    this.timer = backgroundTimer(() => {
      this.timer = undefined;
      if (this.current !== this.logged) this.write();
      else this.changes = 0;
    }, wait);
  }

  /** Stops logging: a component closing on purpose is not news. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private write(): void {
    const up = this.current!;
    const now = this.clock();
    const { level, message } = this.describe({
      up,
      previous: this.logged,
      changes: this.changes,
      downForMs: Math.max(0, Math.round(now - this.downSince)),
    });
    this.logged = up;
    this.lastAt = now;
    this.changes = 0;
    if (!this.logger) return;
    if (level === 'warn') this.logger.warn(message);
    else this.logger.log(message);
  }
}
