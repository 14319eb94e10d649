import type { EntryRef } from '../codec/keyspace.js';
import { MemcachedUsageError } from '../memcached.errors.js';
import { backgroundTimer } from '../utils/background.js';

/** An invalidation memcached did not confirm: one key (every variant of it), or a whole namespace. */
export type Debt = { namespace?: string; key: string } | { namespace: string; key?: undefined };

/** Unpaid invalidations of one kind, as `client.stats().owed` reports them. */
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
  /** Tags whose invalidation (a new version) is owed. */
  tags: number;
  /** With `deadNodePolicy: 'rehash'`: invalidations made on stand-in nodes, owed to their owner when it returns. */
  onReturn: DebtReport;
}

/** How debts are paid; each call is idempotent and rejects while the node cannot take it. */
export interface DebtPayer {
  key(target: { namespace?: string; key: string }): Promise<unknown>;
  namespace(namespace: string): Promise<unknown>;
  /** Flushes every node (this process's debts outgrew their bounds). */
  everything(): Promise<unknown>;
  /** False while a payment could land on another node than the one that owes it (a rehash failover). */
  canPay(): boolean;
  /** Whether every node answers (a flush is sent only then, so no node is flushed twice). */
  allUp(): boolean;
}

/** What happens to debts besides being held: told to the bus, written to the spool, counted. */
export interface DebtObserver {
  /** A debt was taken: `held` is what is now held for it (undefined: folded into one already held). */
  owed(held: Debt | 'everything' | undefined, local: boolean): void;
  /** A payment landed; `count`: the debts it settled (those folded into it included). */
  paid(debt: Debt | 'everything', count: number): void;
  /** A debt told by another process that could not be held (past the bounds); this process's own never are. */
  dropped(): void;
  /** Every debt is paid. */
  cleared(): void;
}

/** Most key debts held; past it a namespaced key's debt becomes its namespace's. */
export const MAX_KEY_DEBTS = 10_000;
/** Most bytes of keys held in key debts (UTF-16 units, namespaces included). */
export const MAX_KEY_DEBT_BYTES = 4 * 1024 * 1024;
/** Most namespace debts held; past it this process's debts become "everything" (a flush of every node). */
export const MAX_NAMESPACE_DEBTS = 1_000;
/** Payments sent at once while paying. */
const PAYING_AT_ONCE = 16;

interface HeldKey {
  namespace?: string;
  key: string;
  /** Times owed: a payment clears only a debt not owed again while it ran. */
  times: number;
  /** Debts this one settles (1, or more once others were folded into it). */
  covers: number;
  /** This process's own (a spool keeps it), not only another process's. */
  local: boolean;
}

interface HeldNamespace {
  times: number;
  covers: number;
  local: boolean;
}

/**
 * Invalidations that memcached did not confirm (a node partitioned, frozen, down): fail open for
 * the caller, but never forgotten. Each is held here until it is paid (the same eviction again,
 * idempotent), and while it is held no read of its target goes to memcached (it reads as a miss),
 * so the old value cannot come back when the node answers again. Bounded, escalating when full:
 * key -> namespace -> everything; only this process's own debts escalate to everything (a flush
 * of every node); debts other processes tell of past the bounds are dropped (they hold them
 * themselves). Payments are retried with a back-off until they land; one that fails does not
 * hold up the others.
 */
export class InvalidationDebts {
  private readonly keys = new Map<string, HeldKey>();
  private readonly namespaces = new Map<string, HeldNamespace>();
  private keyBytes = 0;
  private everything = false;
  /** Debts folded into "everything". */
  private everythingCovers = 0;
  /** A flush is under way: what is owed meanwhile is held again after it (it may have gone first). */
  private flushing = false;
  private sinceFlush: Array<[Debt, boolean]> = [];
  /** Owed during the flush past what `sinceFlush` keeps: how many, and whether one was this process's. */
  private lostDuringFlush = { count: 0, local: false };
  private timer?: NodeJS.Timeout;
  private delay = 0;
  private paying = false;
  /** Owed while a payment round ran: another round follows it at once. */
  private payAgain = false;
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

  /** This process's own debts (only those escalate to everything), as a spool writes them. */
  held(): Array<Debt | 'everything'> {
    if (this.everything) return ['everything'];
    const debts: Debt[] = [];
    for (const [namespace, held] of this.namespaces) if (held.local) debts.push({ namespace });
    for (const { namespace, key, local } of this.keys.values())
      if (local) debts.push(namespace === undefined ? { key } : { namespace, key });
    return debts;
  }

  /** Whether a read of `target` must not go to memcached: an invalidation of it is unpaid. */
  covers(target: EntryRef): boolean {
    if (this.everything) return true;
    if (target.namespace !== undefined && this.namespaces.has(target.namespace)) return true;
    return this.keys.size !== 0 && this.keys.has(idOf(target.namespace, target.key));
  }

  /**
   * Holds a debt (`local`: this process's own invalidation failed; else another process told us)
   * and starts paying it. A key already covered by its namespace's debt adds nothing.
   */
  owe(debt: Debt | 'everything', local: boolean): void {
    if (this.closed) return;
    const held = this.hold(debt, local);
    if (held === 'dropped') return this.observer.dropped();
    this.observer.owed(held, local);
    // folded into a debt whose payment may be running: pay again soon
    this.schedule(true);
  }

  /** Stops paying (the client is closing); what is held stays in the spool, if any. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Pays what can be paid now (tests; the timer calls it too). True once nothing is owed. */
  async payNow(): Promise<boolean> {
    if (this.paying) this.payAgain = true;
    if (this.paying || this.closed) return false;
    if (this.size === 0) return true;
    if (!this.payer.canPay()) return false;
    this.paying = true;
    try {
      if (this.everything && !(await this.flush())) return false;
      for (const [namespace, held] of [...this.namespaces]) {
        if (!this.payer.canPay()) return false;
        const times = held.times;
        try {
          await this.payer.namespace(namespace);
        } catch {
          continue;
        }
        // owed again while it was paid: the payment may have gone before that invalidation
        if (!this.payer.canPay() || this.namespaces.get(namespace) !== held || held.times !== times) continue;
        this.namespaces.delete(namespace);
        this.observer.paid({ namespace }, held.covers);
      }
      const pending = [...this.keys];
      for (let at = 0; at < pending.length; at += PAYING_AT_ONCE) {
        const batch = pending.slice(at, at + PAYING_AT_ONCE).map(([id, held]) => [id, held, held.times] as const);
        const settled = await Promise.allSettled(
          batch.map(([, held]) =>
            this.payer.key(
              held.namespace === undefined ? { key: held.key } : { namespace: held.namespace, key: held.key },
            ),
          ),
        );
        if (!this.payer.canPay()) return false;
        batch.forEach(([id, held, times], i) => {
          if (settled[i].status !== 'fulfilled' || this.keys.get(id) !== held || held.times !== times) return;
          this.keys.delete(id);
          this.keyBytes -= id.length;
          this.observer.paid(
            held.namespace === undefined ? { key: held.key } : { namespace: held.namespace, key: held.key },
            held.covers,
          );
        });
      }
      if (this.size !== 0) return false;
      this.observer.cleared();
      return true;
    } finally {
      this.paying = false;
      if (this.payAgain) {
        this.payAgain = false;
        this.schedule(true);
      }
    }
  }

  /**
   * Pays "everything": a flush of every node, sent only while every node answers (a flush that
   * fails on one is sent to all again). What is owed while it runs is held again afterwards, as
   * it was owed (the flush may have gone before it). False if not paid.
   */
  private async flush(): Promise<boolean> {
    if (!this.payer.allUp()) return false;
    this.flushing = true;
    // what was owed before this flush, it settles
    const covers = this.everythingCovers;
    try {
      await this.payer.everything();
    } catch {
      // what was owed meanwhile is settled by the next flush
      this.everythingCovers += this.sinceFlush.length + this.lostDuringFlush.count;
      this.sinceFlush = [];
      this.lostDuringFlush = { count: 0, local: false };
      return false;
    } finally {
      this.flushing = false;
    }
    const again = this.sinceFlush;
    const lost = this.lostDuringFlush;
    this.sinceFlush = [];
    this.lostDuringFlush = { count: 0, local: false };
    this.everything = false;
    this.everythingCovers = 0;
    this.observer.paid('everything', covers);
    if (lost.local) {
      // one of this process's own could not be kept: nothing less than another flush is safe
      this.escalate(again.length + lost.count);
      return false;
    }
    // another process's, past the bounds: its owner pays it
    if (lost.count > 0) this.observer.paid('everything', lost.count);
    for (const [debt, local] of again) {
      if (this.hold(debt, local) === 'dropped') this.observer.paid('everything', 1);
    }
    return true;
  }

  private hold(debt: Debt | 'everything', local: boolean): Debt | 'everything' | 'dropped' | undefined {
    if (this.everything) {
      // the coming flush settles it; one under way may have gone before it: kept for after it
      if (!this.flushing) this.everythingCovers++;
      else if (debt !== 'everything' && this.sinceFlush.length < MAX_KEY_DEBTS) this.sinceFlush.push([debt, local]);
      else {
        this.lostDuringFlush.count++;
        this.lostDuringFlush.local ||= local;
      }
      return undefined;
    }
    if (debt === 'everything') return local ? this.escalate(1) : 'dropped';
    if (debt.key === undefined) {
      const known = this.namespaces.get(debt.namespace);
      if (known !== undefined) return this.fold(known, debt, local);
      if (this.namespaces.size >= MAX_NAMESPACE_DEBTS) return local ? this.escalate(1) : 'dropped';
      const held: HeldNamespace = { times: 1, covers: 1, local };
      this.namespaces.set(debt.namespace, held);
      // the namespace's bump makes its keys' debts moot: it settles them
      for (const [id, target] of this.keys)
        if (target.namespace === debt.namespace) {
          this.keys.delete(id);
          this.keyBytes -= id.length;
          held.covers += target.covers;
          held.local ||= target.local;
        }
      return debt;
    }
    if (debt.namespace !== undefined) {
      const namespace = this.namespaces.get(debt.namespace);
      // folded into the namespace's debt, which must not count as paid by a bump sent before it
      if (namespace !== undefined) return this.fold(namespace, { namespace: debt.namespace }, local);
    }
    const id = idOf(debt.namespace, debt.key);
    const known = this.keys.get(id);
    if (known !== undefined) return this.fold(known, debt, local);
    if (this.keys.size >= MAX_KEY_DEBTS || this.keyBytes + id.length > MAX_KEY_DEBT_BYTES) {
      if (debt.namespace !== undefined) return this.hold({ namespace: debt.namespace }, local);
      return local ? this.escalate(1) : 'dropped';
    }
    this.keys.set(
      id,
      debt.namespace === undefined
        ? { key: debt.key, times: 1, covers: 1, local }
        : { namespace: debt.namespace, key: debt.key, times: 1, covers: 1, local },
    );
    this.keyBytes += id.length;
    return debt;
  }

  /**
   * A debt owed again, or covered by one held: the held one settles it, and a payment that ran
   * before it does not count. Undefined, unless it is the first of this process's own in a debt
   * only another process told of: then it is this process's to keep (the spool writes it).
   */
  private fold(held: HeldKey | HeldNamespace, debt: Debt, local: boolean): Debt | undefined {
    held.times++;
    held.covers++;
    if (!local || held.local) return undefined;
    held.local = true;
    return debt;
  }

  /** Every debt becomes one: a flush of every node. `adding`: the debts that caused it. */
  private escalate(adding: number): 'everything' {
    let covers = this.everythingCovers + adding;
    for (const held of this.keys.values()) covers += held.covers;
    for (const held of this.namespaces.values()) covers += held.covers;
    this.everything = true;
    this.everythingCovers = covers;
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
    this.timer = backgroundTimer(() => {
      this.timer = undefined;
      void this.payNow().then((done) => (done ? undefined : this.schedule(false)));
    }, delay);
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
