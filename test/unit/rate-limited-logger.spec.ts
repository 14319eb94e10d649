import { describe, expect, it } from 'vitest';
import { RateLimitedLogger } from '../../lib/utils/rate-limited-logger.js';

describe('RateLimitedLogger', () => {
  it('logs a topic once per interval and then says how many were held back', () => {
    const lines: string[] = [];
    const logger = new RateLimitedLogger({ log() {}, error() {}, warn: (m: string) => lines.push(m) }, 60_000);
    for (let i = 0; i < 5; i++) logger.warn('node-down', 'down');
    expect(lines).toStrictEqual(['down']);
  });

  it('remembers a bounded number of topics however many distinct ones arrive', () => {
    const logger = new RateLimitedLogger({ log() {}, error() {}, warn() {} }, 60_000, 100);
    for (let i = 0; i < 100_000; i++) logger.warn(`topic-${i}`, 'x');
    for (let i = 0; i < 100_000; i++) logger.once(`once-${i}`, 'x');
    expect(logger.size).toBe(100);
  });
});
