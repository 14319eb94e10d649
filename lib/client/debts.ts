import type { EntryRef } from '../codec/keyspace.js';
import { MemcachedUsageError } from '../memcached.errors.js';

/** An invalidation memcached did not confirm: one key (every variant of it), or a whole namespace. */
export type Debt = { namespace?: string; key: string } | { namespace: string; key?: undefined };

/** Unpaid invalidations, as `client.stats().debts` reports them. */
export interface DebtReport {
  /** Keys whose eviction or overwrite is owed. */
  keys: number;
  /** Namespaces whose generation bump is owed. */
  namespaces: number;
  /** Past the bounds: every node is flushed when it answers again, and nothing is read until then. */
  everything: boolean;
}

/** `client.stats().owed`: what memcached did not confirm, and what landed on stand-in nodes during a failover. */
export interface OwedReport extends DebtReport {
  /** With `deadNodePolicy: 'rehash'`: invalidations made on stand-in nodes, owed to their owner when it returns. */
  onReturn: DebtReport;
}

/** How debts are paid; each call is idempotent and rejects while the node cannot take it. */
export interface DebtPayer {
  key(target: { namespace?: string; key: string }): Promise<unknown>;
  namespace(namespace: string): Promise<unknown>;
  /** Flushes every node (the debts outgrew their bounds). */
  everything(): Promise<unknown>;
  /** False while a payment could land on another node than the one that owes it (a rehash failover). */
  canPay(): boolean;
}

/** What happens to debts besides being held: told to the bus, written to the spool, counted. */
export interface DebtObserver {
  owed(debt: Debt | 'everything', local: boolean): void;
  paid(debt: Debt | 'everything'): void;
  /** Every debt is paid. */
  cleared(): void;
}

/** Most key debts held; past it a namespaced key's debt becomes its namespace's. */
export const MAX_KEY_DEBTS = 10_000;
/** Most bytes of keys held in key debts (UTF-16 units, namespaces included). */
export const MAX_KEY_DEBT_BYTES = 4 * 1024 * 1024;
/** Most namespace debts held; past it the debts become "everything" (a flush of every node). */
export const MAX_NAMESPACE_DEBTS = 1_000;
/** Payments sent at once while paying. */
const PAYING_AT_ONCE = 16;

/**
 * Invalidations that memcached did not confirm (a node partitioned, frozen, down): fail open for
 * the caller, but never forgotten. Each is held here until it is paid (the same eviction again,
 * idempotent), and while it is held no read of its target goes to memcached (it reads as a miss),
 * so the old value cannot come back when the node answers again. Bounded, escalating when full:
 * key -> namespace -> everything. Payments are retried with a back-off until they land.
 */
export class InvalidationDebts {
  /** By id, with how many times it was owed (a payment clears only the debts it saw). */
  private readonly keys = new Map<string, { namespace?: string; key: string; times: number }>();
  private readonly namespaces = new Map<string, number>();
  private keyBytes = 0;
  private everything = false;
  private everythingTimes = 0;
  private timer?: NodeJS.Timeout;
  private delay = 0;
  private paying = false;
  private closed = false;

  constructor(
    private readonly payer: DebtPayer,
    private readonly observer: DebtObserver,
    /** Longest pause between payment attempts, ms (the breaker's cooldown). */
    private readonly maxDelay: number,
  ) {}

  /** Debts held now; 0 is the common case, checked before anything else on the read path. */
  get size(): number {
    return this.keys.size + this.namespaces.size + (this.everything ? 1 : 0);
  }

  report(): DebtReport {
    return { keys: this.keys.size, namespaces: this.namespaces.size, everything: this.everything };
  }

  /** Every debt held, as a spool writes them. */
  held(): Array<Debt | 'everything'> {
    if (this.everything) return ['everything'];
    const debts: Debt[] = [...this.namespaces.keys()].map((namespace) => ({ namespace }));
    for (const { namespace, key } of this.keys.values())
      debts.push(namespace === undefined ? { key } : { namespace, key });
    return debts;
  }

  /** Whether a read of `target` must not go to memcached: an invalidation of it is unpaid. */
  covers(target: EntryRef): boolean {
    if (this.everything) return true;
    if (target.namespace !== undefined && this.namespaces.has(target.namespace)) return true;
    return this.keys.size !== 0 && this.keys.has(idOf(target.namespace, target.key));
  }

  /** Whether any debt touches the namespace (a key of it, or itself). */
  coversNamespace(namespace: string): boolean {
    if (this.everything || this.namespaces.has(namespace)) return true;
    if (this.keys.size === 0) return false;
    for (const debt of this.keys.values()) if (debt.namespace === namespace) return true;
    return false;
  }

  /**
   * Holds a debt (`local`: this process's own invalidation failed; else another process told us)
   * and starts paying it. A key already covered by its namespace's debt adds nothing.
   */
  owe(debt: Debt | 'everything', local: boolean): void {
    if (this.closed) return;
    const held = this.hold(debt);
    if (held === undefined) return;
    this.observer.owed(held, local);
    this.schedule(true);
  }

  /** Stops paying (the client is closing); what is held stays in the spool, if any. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Pays what can be paid now (tests; the timer calls it too). Resolves when this attempt ends. */
  async payNow(): Promise<boolean> {
    if (this.paying || this.closed) return false;
    if (this.size === 0) return true;
    if (!this.payer.canPay()) return false;
    this.paying = true;
    try {
      if (this.everything) {
        const times = this.everythingTimes;
        await this.payer.everything();
        if (!this.payer.canPay() || this.everythingTimes !== times) return false;
        this.keys.clear();
        this.namespaces.clear();
        this.keyBytes = 0;
        this.everything = false;
        this.observer.paid('everything');
      } else {
        for (const [namespace, times] of [...this.namespaces]) {
          await this.payer.namespace(namespace);
          if (!this.payer.canPay()) return false;
          // owed again while it was paid: the payment may have gone before that invalidation
          if (this.namespaces.get(namespace) !== times) continue;
          this.namespaces.delete(namespace);
          this.observer.paid({ namespace });
        }
        for (;;) {
          const batch = [...this.keys].slice(0, PAYING_AT_ONCE).map(([id, debt]) => [id, debt, debt.times] as const);
          if (batch.length === 0) break;
          await Promise.all(
            batch.map(([, debt]) => this.payer.key(debt.namespace === undefined ? { key: debt.key } : debt)),
          );
          if (!this.payer.canPay()) return false;
          let progress = false;
          for (const [id, debt, times] of batch) {
            if (this.keys.get(id) !== debt || debt.times !== times) continue;
            this.keys.delete(id);
            this.keyBytes -= id.length;
            progress = true;
            this.observer.paid(
              debt.namespace === undefined ? { key: debt.key } : { namespace: debt.namespace, key: debt.key },
            );
          }
          if (!progress) return false;
        }
        if (this.size !== 0) return false;
      }
      this.observer.cleared();
      return true;
    } catch {
      return false;
    } finally {
      this.paying = false;
    }
  }

  private hold(debt: Debt | 'everything'): Debt | 'everything' | undefined {
    if (this.everything) {
      // owed while a flush may be under way: that flush may have gone before this invalidation
      this.everythingTimes++;
      return undefined;
    }
    if (debt === 'everything') return this.escalate();
    if (debt.key === undefined) {
      const times = this.namespaces.get(debt.namespace);
      if (times !== undefined) {
        this.namespaces.set(debt.namespace, times + 1);
        return undefined;
      }
      if (this.namespaces.size >= MAX_NAMESPACE_DEBTS) return this.escalate();
      this.namespaces.set(debt.namespace, 1);
      // the namespace's bump makes its keys' debts moot
      for (const [id, target] of this.keys)
        if (target.namespace === debt.namespace) {
          this.keys.delete(id);
          this.keyBytes -= id.length;
        }
      return debt;
    }
    if (debt.namespace !== undefined && this.namespaces.has(debt.namespace)) return undefined;
    const id = idOf(debt.namespace, debt.key);
    const known = this.keys.get(id);
    if (known !== undefined) {
      known.times++;
      return undefined;
    }
    if (this.keys.size >= MAX_KEY_DEBTS || this.keyBytes + id.length > MAX_KEY_DEBT_BYTES)
      return debt.namespace === undefined ? this.escalate() : this.hold({ namespace: debt.namespace });
    this.keys.set(
      id,
      debt.namespace === undefined
        ? { key: debt.key, times: 1 }
        : { namespace: debt.namespace, key: debt.key, times: 1 },
    );
    this.keyBytes += id.length;
    return debt;
  }

  private escalate(): 'everything' {
    this.everything = true;
    this.everythingTimes = 1;
    this.keys.clear();
    this.namespaces.clear();
    this.keyBytes = 0;
    return 'everything';
  }

  /** Tries to pay soon: at once after a new debt, then backing off to `maxDelay` while it fails. */
  private schedule(fresh: boolean): void {
    if (this.closed || this.size === 0) return;
    if (fresh) this.delay = 0;
    if (this.timer !== undefined) {
      if (!fresh) return;
      clearTimeout(this.timer);
    }
    const delay = this.delay;
    this.delay = Math.min(Math.max(10, delay * 2), this.maxDelay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.payNow().then((done) => (done ? undefined : this.schedule(false)));
    }, delay);
    this.timer.unref();
  }
}

/** A debt's identity: the namespace (empty for a plain key) and the key, apart by a byte no namespace holds. */
function idOf(namespace: string | undefined, key: string): string {
  return `${namespace ?? ''}\u0000${key}`;
}

/** Whether an invalidation's failure is a cache failure to remember (a usage error is the caller's, and nothing was sent). */
export function owesAfter(error: unknown): boolean {
  return !(error instanceof MemcachedUsageError);
}
