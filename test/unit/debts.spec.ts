import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DebtSpool } from '../../lib/client/debt-spool.js';
import { type Debt, InvalidationDebts, MAX_KEY_DEBTS, MAX_NAMESPACE_DEBTS, owesAfter } from '../../lib/client/debts.js';
import { MemcachedUsageError } from '../../lib/memcached.errors.js';
import { MemcachedError } from '../../lib/transport/memcached.error.js';

/** A payer that records payments and fails while `down`; `during` runs inside a payment. */
function payer() {
  const state = {
    down: false,
    rehashing: false,
    nodesDown: false,
    /** Payments that fail, by what they pay, while the rest succeed. */
    failing: new Set<string>(),
    paid: [] as string[],
    during: undefined as (() => void) | undefined,
  };
  const pay = async (what: string) => {
    state.during?.();
    if (state.down || state.failing.has(what)) throw new MemcachedError('delete', 'n:1', 'UNAVAILABLE', 'down');
    state.paid.push(what);
  };
  return {
    state,
    payer: {
      key: (t: { namespace?: string; key: string }) => pay(`key ${t.namespace ?? '-'} ${t.key}`),
      namespace: (n: string) => pay(`namespace ${n}`),
      everything: () => pay('everything'),
      canPay: () => !state.rehashing,
      allUp: () => !state.nodesDown,
    },
  };
}

function observer() {
  const seen = {
    owed: [] as Array<[Debt | 'everything' | undefined, boolean]>,
    paid: 0,
    cleared: 0,
    dropped: 0,
  };
  return {
    seen,
    observer: {
      owed: (debt: Debt | 'everything' | undefined, local: boolean) => seen.owed.push([debt, local]),
      paid: (_debt: Debt | 'everything', count: number) => void (seen.paid += count),
      cleared: () => void seen.cleared++,
      dropped: () => void seen.dropped++,
    },
  };
}

describe('InvalidationDebts', () => {
  let debts: InvalidationDebts | undefined;
  afterEach(() => debts?.close());

  function make() {
    const p = payer();
    const o = observer();
    debts = new InvalidationDebts(p.payer, o.observer, 1000);
    return { debts, ...p, ...o };
  }

  it('covers what it holds, and only that, until it is paid', async () => {
    const { debts, state } = make();
    state.down = true;
    debts.owe({ namespace: 'users', key: '7' }, true);
    debts.owe({ key: 'plain' }, false);
    debts.owe({ namespace: 'lists' }, true);
    expect(debts.covers({ namespace: 'users', key: '7' })).toBe(true);
    expect(debts.covers({ namespace: 'users', key: '7', variant: 'json' })).toBe(true);
    expect(debts.covers({ namespace: 'users', key: '8' })).toBe(false);
    expect(debts.covers({ key: '7' })).toBe(false);
    expect(debts.covers({ key: 'plain' })).toBe(true);
    expect(debts.covers({ namespace: 'lists', key: 'anything' })).toBe(true);
    expect(await debts.payNow()).toBe(false);
    expect(debts.report()).toStrictEqual({ keys: 2, namespaces: 1, everything: false });
    state.down = false;
    expect(await debts.payNow()).toBe(true);
    expect(debts.size).toBe(0);
    expect(debts.covers({ namespace: 'users', key: '7' })).toBe(false);
    expect(state.paid.sort()).toStrictEqual(['key - plain', 'key users 7', 'namespace lists']);
  });

  it('a debt owed again while it is being paid stays held (the payment may have gone first)', async () => {
    const { debts, state } = make();
    state.down = true;
    debts.owe({ namespace: 'users', key: '7' }, true);
    debts.owe({ namespace: 'lists' }, true);
    state.down = false;
    state.during = () => {
      state.during = undefined;
      debts.owe({ namespace: 'users', key: '7' }, true);
      debts.owe({ namespace: 'lists' }, true);
    };
    // the namespace was owed again during its own payment: held; the key was owed again before its
    // payment began: that payment covers it
    expect(await debts.payNow()).toBe(false);
    expect(debts.report()).toStrictEqual({ keys: 0, namespaces: 1, everything: false });
    expect(await debts.payNow()).toBe(true);
    expect(debts.size).toBe(0);
  });

  it('one debt that cannot be paid does not hold up the others', async () => {
    const { debts, state } = make();
    state.down = true;
    debts.owe({ namespace: 'stuck' }, true);
    for (let i = 0; i < 40; i++) debts.owe({ key: `k${i}` }, true);
    debts.owe({ key: 'stuck' }, true);
    state.down = false;
    state.failing = new Set(['namespace stuck', 'key - stuck']);
    expect(await debts.payNow()).toBe(false);
    expect(debts.report()).toStrictEqual({ keys: 1, namespaces: 1, everything: false });
    expect(debts.covers({ key: 'k3' })).toBe(false);
    expect(debts.covers({ key: 'stuck' })).toBe(true);
  });

  it('a key folded into its namespace debt while the bump runs keeps the namespace owed', async () => {
    const { debts, state } = make();
    state.down = true;
    debts.owe({ namespace: 'users' }, true);
    state.down = false;
    state.during = () => {
      state.during = undefined;
      debts.owe({ namespace: 'users', key: '7' }, true);
    };
    expect(await debts.payNow()).toBe(false);
    expect(debts.covers({ namespace: 'users', key: '7' })).toBe(true);
    expect(await debts.payNow()).toBe(true);
  });

  it('debts other processes tell of never escalate: past the bounds they are dropped (their owners pay them)', () => {
    const { debts, state, seen } = make();
    state.down = true;
    for (let i = 0; i < MAX_NAMESPACE_DEBTS; i++) debts.owe({ namespace: `ns${i}` }, false);
    debts.owe({ namespace: 'one too many' }, false);
    debts.owe('everything', false);
    for (let i = 0; i < MAX_KEY_DEBTS + 5; i++) debts.owe({ key: `plain${i}` }, false);
    expect(debts.report()).toStrictEqual({ keys: MAX_KEY_DEBTS, namespaces: MAX_NAMESPACE_DEBTS, everything: false });
    expect(seen.dropped).toBe(7);
  });

  it('flushes only while every node answers, once; what is owed during the flush is held again after it', async () => {
    const { debts, state, seen } = make();
    state.down = true;
    debts.owe('everything', true);
    state.down = false;
    state.nodesDown = true;
    expect(await debts.payNow()).toBe(false);
    expect(state.paid).toStrictEqual([]);
    state.nodesDown = false;
    state.during = () => {
      state.during = undefined;
      debts.owe({ key: 'during the flush' }, true);
      // another process's, past every bound while the flush runs: never a second flush
      for (let i = 0; i < MAX_KEY_DEBTS + 10; i++) debts.owe({ key: `remote${i}` }, false);
    };
    expect(await debts.payNow()).toBe(true);
    expect(state.paid.filter((p) => p === 'everything')).toHaveLength(1);
    expect(state.paid).toContain('key - during the flush');
    expect(debts.size).toBe(0);
    // every debt owed was settled once: what the flush covered, and what was held again after it
    expect(seen.paid).toBe(seen.owed.length);
  });

  it("this process's own debt folded into one another process told of is its own to spool", () => {
    const { debts, state, seen } = make();
    state.down = true;
    debts.owe({ namespace: 'users' }, false);
    expect(debts.held()).toStrictEqual([]);
    debts.owe({ namespace: 'users', key: '42' }, true);
    expect(seen.owed.at(-1)).toStrictEqual([{ namespace: 'users' }, true]);
    expect(debts.held()).toStrictEqual([{ namespace: 'users' }]);
    // folded again: nothing new to spool
    debts.owe({ namespace: 'users', key: '43' }, true);
    expect(seen.owed.at(-1)).toStrictEqual([undefined, true]);
  });

  it('pays nothing while a rehash sends keys to a stand-in node', async () => {
    const { debts, state } = make();
    state.rehashing = true;
    debts.owe({ key: 'k' }, true);
    expect(await debts.payNow()).toBe(false);
    expect(state.paid).toStrictEqual([]);
    state.rehashing = false;
    expect(await debts.payNow()).toBe(true);
  });

  it('is bounded: keys past the bound become their namespace, plain keys and namespaces past theirs everything', async () => {
    const { debts, state, seen } = make();
    state.down = true;
    for (let i = 0; i < MAX_KEY_DEBTS; i++) debts.owe({ namespace: `ns${i % 3}`, key: String(i) }, true);
    expect(debts.report()).toStrictEqual({ keys: MAX_KEY_DEBTS, namespaces: 0, everything: false });
    debts.owe({ namespace: 'ns1', key: 'one more' }, true);
    // the namespace's bump makes its keys' debts moot: they go
    expect(debts.report().namespaces).toBe(1);
    const ofNs1 = Array.from({ length: MAX_KEY_DEBTS }, (_, i) => i).filter((i) => i % 3 === 1).length;
    expect(debts.report().keys).toBe(MAX_KEY_DEBTS - ofNs1);
    expect(debts.covers({ namespace: 'ns1', key: 'never owed' })).toBe(true);
    for (let i = 0; i < MAX_NAMESPACE_DEBTS - 1; i++) debts.owe({ namespace: `more${i}` }, true);
    expect(debts.report().everything).toBe(false);
    debts.owe({ namespace: 'the last straw' }, true);
    expect(debts.report()).toStrictEqual({ keys: 0, namespaces: 0, everything: true });
    expect(debts.covers({ key: 'anything at all' })).toBe(true);
    expect(seen.owed.at(-1)).toStrictEqual(['everything', true]);
    state.down = false;
    expect(await debts.payNow()).toBe(true);
    expect(state.paid).toStrictEqual(['everything']);
    expect(debts.size).toBe(0);
  });

  it('a plain key past the bound of bytes makes everything owed', () => {
    const { debts, state } = make();
    state.down = true;
    debts.owe({ key: 'x'.repeat(3 * 1024 * 1024) }, true);
    debts.owe({ key: 'y'.repeat(2 * 1024 * 1024) }, true);
    expect(debts.report()).toStrictEqual({ keys: 0, namespaces: 0, everything: true });
  });

  it('pays by itself, retrying with a back-off until memcached takes it', async () => {
    const { debts, state, seen } = make();
    state.down = true;
    debts.owe({ key: 'k' }, true);
    await new Promise((r) => setTimeout(r, 50));
    expect(debts.size).toBe(1);
    state.down = false;
    const deadline = Date.now() + 3000;
    while (debts.size !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(debts.size).toBe(0);
    expect(seen).toMatchObject({ paid: 1, cleared: 1 });
  });

  it('owes after a cache failure, not after a usage error (nothing was sent)', () => {
    expect(owesAfter(new MemcachedError('delete', 'n:1', 'TIMEOUT', 'late'))).toBe(true);
    expect(owesAfter(new Error('anything else'))).toBe(true);
    expect(owesAfter(new MemcachedUsageError('KEY', 'not a string'))).toBe(false);
  });
});

describe('DebtSpool', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmc-spool-unit-'));
  afterEach(() => rmSync(join(dir, 'spool'), { force: true }));

  it('keeps debts across processes, skips what it cannot read, and empties once paid', () => {
    const path = join(dir, 'spool');
    const warnings: string[] = [];
    const spool = new DebtSpool(path, (m) => warnings.push(m));
    expect(spool.load()).toStrictEqual([]);
    const held: Array<Debt | 'everything'> = [];
    for (const debt of [{ namespace: 'users', key: '7\n"x' }, { key: 'plain' }, { namespace: 'lists' }] as Debt[]) {
      held.push(debt);
      spool.add(debt, () => held);
    }
    writeFileSync(path, `${readFileSync(path, 'utf8')}not json\n{"k":[1,"x"]}\n{"e":1}\n`);
    const next = new DebtSpool(path, (m) => warnings.push(m));
    expect(next.load()).toStrictEqual([...held, 'everything']);
    expect(warnings).toStrictEqual([`invalidationSpool ${path}: 2 unreadable line(s) skipped`]);
    next.clear();
    expect(readFileSync(path, 'utf8')).toBe('');
  });

  it('rewrites itself from what is held once it has grown well past it', () => {
    const path = join(dir, 'spool');
    const spool = new DebtSpool(path, () => undefined);
    for (let i = 0; i < 1100; i++) spool.add({ key: String(i) }, () => [{ key: 'only this' }]);
    expect(readFileSync(path, 'utf8').trim().split('\n').length).toBeLessThan(100);
    expect(new DebtSpool(path, () => undefined).load()).toContainEqual({ key: 'only this' });
  });
});
