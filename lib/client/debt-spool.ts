import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Debt } from './debts.js';

/** One line of the spool: a key (`k`: namespace or null, key), a namespace (`n`), or everything (`e`). */
type SpoolLine = { k: [string | null, string] } | { n: string } | { e: 1 };

/**
 * The `invalidationSpool` file: every debt held is appended (synchronously, before the failed
 * invalidation returns to its caller), the file is emptied once every debt is paid, and a process
 * that starts reads it back and pays what it finds. What a process that dies while holding debts
 * leaves for the next one, without a bus (mcrouter's asynclog, for invalidations only).
 */
export class DebtSpool {
  private lines = 0;

  constructor(
    private readonly path: string,
    private readonly warn: (message: string) => void,
  ) {}

  /** The debts left by an earlier process (unreadable lines are skipped, with one warning). */
  load(): Array<Debt | 'everything'> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.warn(`invalidationSpool ${this.path} could not be read: ${(error as Error).message}`);
      return [];
    }
    const debts: Array<Debt | 'everything'> = [];
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const debt = debtOf(line);
      if (debt === undefined) skipped++;
      else debts.push(debt);
    }
    if (skipped > 0) this.warn(`invalidationSpool ${this.path}: ${skipped} unreadable line(s) skipped`);
    this.lines = debts.length;
    return debts;
  }

  /** Appends a debt; rewrites the file from `held` when it has grown well past what is held. */
  add(debt: Debt | 'everything', held: () => Array<Debt | 'everything'>): void {
    try {
      if (this.lines > 1024 && this.lines > 4 * held().length) return this.rewrite(held());
      appendFileSync(this.path, `${lineOf(debt)}\n`);
      this.lines++;
    } catch (error) {
      this.warn(`invalidationSpool ${this.path} could not be written: ${(error as Error).message}`);
    }
  }

  /** Every debt is paid. */
  clear(): void {
    try {
      writeFileSync(this.path, '');
      this.lines = 0;
    } catch (error) {
      this.warn(`invalidationSpool ${this.path} could not be emptied: ${(error as Error).message}`);
    }
  }

  private rewrite(held: Array<Debt | 'everything'>): void {
    const next = `${this.path}.next`;
    writeFileSync(next, held.map((debt) => `${lineOf(debt)}\n`).join(''));
    renameSync(next, this.path);
    this.lines = held.length;
  }
}

function lineOf(debt: Debt | 'everything'): string {
  const line: SpoolLine =
    debt === 'everything'
      ? { e: 1 }
      : debt.key === undefined
        ? { n: debt.namespace }
        : { k: [debt.namespace ?? null, debt.key] };
  return JSON.stringify(line);
}

function debtOf(line: string): Debt | 'everything' | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const fields = parsed as Record<string, unknown>;
  if (fields.e === 1) return 'everything';
  if (typeof fields.n === 'string' && fields.n !== '') return { namespace: fields.n };
  const k = fields.k;
  if (Array.isArray(k) && k.length === 2 && typeof k[1] === 'string') {
    if (k[0] === null) return { key: k[1] };
    if (typeof k[0] === 'string' && k[0] !== '') return { namespace: k[0], key: k[1] };
  }
  return undefined;
}
