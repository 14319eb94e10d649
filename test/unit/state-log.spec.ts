import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { busBack, busConnected, busDown } from '../../lib/memcached.messages.js';
import { type StateChange, StateLog } from '../../lib/utils/state-log.js';

/** A StateLog over a fake clock, writing `level: message` lines. */
function harness(intervalMs = 10_000) {
  const lines: string[] = [];
  const logger = {
    log: (m: string) => lines.push(`log: ${m}`),
    warn: (m: string) => lines.push(`warn: ${m}`),
    error: () => undefined,
  };
  const describe = ({ up, previous, changes, downForMs }: StateChange) =>
    up
      ? {
          level: 'log' as const,
          message: previous === undefined ? `up x${changes}` : `back after ${downForMs} x${changes}`,
        }
      : { level: 'warn' as const, message: `down x${changes}` };
  return { lines, log: new StateLog(logger, describe, intervalMs, () => Date.now()) };
}

describe('StateLog: the last line logged tells the current state', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('good news is logged at log level, bad news at warn, and a recovery is logged once', () => {
    const { lines, log } = harness();
    log.set(true);
    vi.advanceTimersByTime(20_000);
    log.set(false);
    vi.advanceTimersByTime(15_000);
    log.set(true);
    log.set(true);
    expect(lines).toStrictEqual(['log: up x1', 'warn: down x1', 'log: back after 15000 x1']);
  });

  it('a flapping state gives at most one line per interval, and the last line is the state at its end', () => {
    const { lines, log } = harness();
    log.set(true);
    for (let i = 0; i < 9; i++) {
      vi.advanceTimersByTime(100);
      log.set(i % 2 === 0 ? false : true); // ends down
    }
    expect(lines).toStrictEqual(['log: up x1']);
    vi.advanceTimersByTime(10_000);
    expect(lines).toStrictEqual(['log: up x1', 'warn: down x9']);
  });

  it('a flap that ends where the last line left it adds no line', () => {
    const { lines, log } = harness();
    log.set(true);
    vi.advanceTimersByTime(100);
    log.set(false);
    vi.advanceTimersByTime(100);
    log.set(true);
    vi.advanceTimersByTime(20_000);
    expect(lines).toStrictEqual(['log: up x1']);
  });

  it('nothing is logged once closed (a clean shutdown is not news)', () => {
    const { lines, log } = harness();
    log.set(true);
    vi.advanceTimersByTime(20_000);
    log.close();
    log.set(false);
    vi.advanceTimersByTime(20_000);
    expect(lines).toStrictEqual(['log: up x1']);
  });

  it('the bus messages: without a near cache nothing claims that one serves hits', () => {
    expect(busConnected('nats', false, 1)).not.toMatch(/near cache serves/);
    expect(busConnected('nats', true, 1)).toMatch(/near cache serves hits/);
    expect(busBack('nats', true, 1234, 1)).toMatch(/back after 1234 ms: the near cache serves hits again/);
    expect(busDown('nats', 'is silent', false, 3)).toMatch(/is silent \(3 changes since the last report\)/);
  });
});
