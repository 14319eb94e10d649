import { MemcachedUsageError } from '../memcached.errors.js';
import { generationLost, keyNotString } from '../memcached.messages.js';
import { LRUCache } from 'lru-cache';
import { assertNamespace } from '../codec/key.codec.js';
import { type EntryRef, Keyspace } from '../codec/keyspace.js';
import { RawJson } from '../codec/value.codec.js';
import { MemcachedError } from '../transport/memcached.error.js';
import { Opcode, Status } from '../transport/protocol.js';
import type { ItemRead, Operations } from './operations.js';

/** What a read found, and the wire key it read (the one a fill must write). */
export interface Lookup {
  wire: string;
  item: ItemRead;
  /** The generations the entry was read under, checked by the same read (namespaced targets). */
  generation?: number;
  group?: number;
  /** The versions of the tags read with the entry, in the order asked for (tagged reads). */
  tagItems?: ItemRead[];
}

const NO_TAGS: readonly string[] = [];
const KNOWN_NAMESPACES = 10_000;
const KNOWN_VARIANT_GROUPS = 50_000;

/**
 * Namespaces and variant groups as memcached holds them. memcached cannot delete by prefix, so
 * each namespace has a generation counter and its entries live under its current value (the
 * names are in keyspace.ts): evicting the namespace is one atomic increment, and older entries
 * are never read again. The variants of one key work the same way, under a counter of their own, so an
 * eviction of the key makes every variant miss. A lost counter restarts from the clock, never
 * from a value used before. The generations last seen are kept (bounded), so a read is one round
 * trip that fetches the counters and the entry together, and checks them.
 */
export class Namespaces {
  private readonly generations = new LRUCache<string, number>({ max: KNOWN_NAMESPACES });
  private readonly groups = new LRUCache<string, number>({ max: KNOWN_VARIANT_GROUPS });
  private readonly generationWires = new LRUCache<string, string>({ max: KNOWN_NAMESPACES });

  readonly keyspace: Keyspace;

  constructor(
    private readonly ops: Operations,
    prefix: string,
  ) {
    this.keyspace = new Keyspace(prefix);
  }

  /**
   * Refuses a target no wire key can be made for (a key that is not a string, a bad namespace),
   * before anything is read: a caller's mistake, not a cache failure.
   */
  check(target: EntryRef): void {
    assertKey(target.key);
    if (target.namespace !== undefined) assertNamespace(target.namespace);
  }

  /** The wire key of a plain key (no namespace). */
  plainWire(key: string): string {
    assertKey(key);
    return this.keyspace.plain(key);
  }

  /** True when the node holding the target's namespace counter (or plain key) is down. */
  isDown(target: EntryRef): boolean {
    return this.ops.isDown(target.namespace ? this.generationWire(target.namespace) : this.plainWire(target.key));
  }

  /**
   * Reads the target's entry under the current generations (one round trip when they are known).
   * With `keep`, a hit carries a copy of its bytes (for the near cache). The caller has `check`ed it.
   */
  async lookup(
    target: EntryRef,
    rawJson = false,
    keep = false,
    tagWires: readonly string[] = NO_TAGS,
  ): Promise<Lookup> {
    const { namespace, variant } = target;
    if (!namespace) return this.readEntry(this.plainWire(target.key), tagWires, rawJson, keep);
    const known = this.generations.get(namespace);
    // a variant group's counter is remembered under its wire key
    const groupWire = variant === undefined ? undefined : this.groupWire(namespace, target.key);
    const knownGroup = groupWire === undefined ? 0 : this.groups.get(groupWire);
    if (known !== undefined && knownGroup !== undefined) {
      const wire = this.wireAt(target, known, knownGroup);
      const counters =
        groupWire === undefined ? [this.generationWire(namespace)] : [this.generationWire(namespace), groupWire];
      const wires = tagWires.length === 0 ? [...counters, wire] : [...counters, ...tagWires, wire];
      const items = await this.ops.read(wires, { rawJson, keep, counters: wires.length - 1 });
      const generation = counterValue(items[0]);
      const group = variant === undefined ? 0 : counterValue(items[1]);
      if (generation === known && group === knownGroup) {
        const found: Lookup = { wire, item: items[wires.length - 1], generation, group };
        if (tagWires.length > 0) found.tagItems = items.slice(counters.length, wires.length - 1);
        return found;
      }
      if (generation !== undefined && group !== undefined) {
        this.generations.set(namespace, generation);
        if (groupWire !== undefined) this.groups.set(groupWire, group);
        const current = this.wireAt(target, generation, group);
        return { ...(await this.readEntry(current, tagWires, rawJson, keep)), generation, group };
      }
    }
    const ids = await this.currentIds(target);
    const wire = this.wireAt(target, ids.generation, ids.group);
    return { ...(await this.readEntry(wire, tagWires, rawJson, keep)), ...ids };
  }

  /** An entry and the versions of its tags (`tagWires`), in one round trip. */
  private async readEntry(wire: string, tagWires: readonly string[], rawJson: boolean, keep: boolean): Promise<Lookup> {
    if (tagWires.length === 0) return { wire, item: (await this.ops.read([wire], { rawJson, keep }))[0] };
    const items = await this.ops.read([...tagWires, wire], { rawJson, keep, counters: tagWires.length });
    return { wire, item: items[tagWires.length], tagItems: items.slice(0, tagWires.length) };
  }

  /** The wire key of the target's entry under the current generations (created when missing). */
  async currentWire(target: EntryRef): Promise<string> {
    if (!target.namespace) return this.plainWire(target.key);
    this.check(target);
    const { generation, group } = await this.currentIds(target);
    return this.wireAt(target, generation, group);
  }

  /** The target's current namespace generation and variant group (created when missing). */
  private async currentIds(target: EntryRef): Promise<{ generation: number; group: number }> {
    const namespace = target.namespace!;
    const groupWire = target.variant === undefined ? undefined : this.groupWire(namespace, target.key);
    const [generation, group] = await Promise.all([
      this.current(this.generationWire(namespace), (g) => this.generations.set(namespace, g)),
      groupWire === undefined ? 0 : this.current(groupWire, (g) => this.groups.set(groupWire, g)),
    ]);
    return { generation, group };
  }

  /** The wire keys of several keys of one namespace, under its current generation. */
  async currentWires(namespace: string, keys: readonly string[]): Promise<string[]> {
    for (const key of keys) this.check({ namespace, key });
    const generation = await this.current(this.generationWire(namespace), (g) => this.generations.set(namespace, g));
    return keys.map((key) => this.wireAt({ namespace, key }, generation, 0));
  }

  /** Makes every entry of the namespace miss, with one atomic increment. */
  async bump(namespace: string): Promise<void> {
    assertNamespace(namespace);
    const wire = this.generationWire(namespace);
    try {
      const next = await this.ops.counter(Opcode.Increment, 'evictAll', wire, 1n, BigInt(freshGeneration()), 0);
      if (next !== null) this.generations.set(namespace, Number(next));
    } catch (error) {
      if (!notACounter(error)) throw error;
      // someone else's bytes at the counter: a fresh generation from the clock is newer than any before
      const fresh = freshGeneration();
      await this.ops.store(Opcode.Set, 'evictAll', wire, this.counterBytes(fresh), 0, 'generations');
      this.generations.set(namespace, fresh);
    }
  }

  /** Makes every variant of `key` miss (a no-op when it never had any). */
  async bumpVariants(namespace: string, key: string): Promise<void> {
    assertNamespace(namespace);
    const wire = this.groupWire(namespace, key);
    try {
      const next = await this.ops.counter(Opcode.Increment, 'evict', wire, 1n, undefined, 0);
      if (next !== null) this.groups.set(wire, Number(next));
    } catch (error) {
      if (!notACounter(error)) throw error;
      // not a counter: without it, the next read starts a fresh one from the clock
      this.groups.delete(wire);
      await this.ops.delete(wire, 'evict');
    }
  }

  /** The wire keys that identify a namespace's current entries, for splitting in-process loads. */
  generationWire(namespace: string): string {
    let wire = this.generationWires.get(namespace);
    if (wire === undefined) this.generationWires.set(namespace, (wire = this.keyspace.generation(namespace)));
    return wire;
  }

  private groupWire(namespace: string, key: string): string {
    return this.keyspace.group(namespace, key);
  }

  /** The wire key of a namespaced target's entry under the given generations. */
  wireAt(target: EntryRef, generation: number, group: number): string {
    return this.keyspace.entry(target, generation, group);
  }

  /**
   * A counter's value as memcached holds it, created from the clock when missing. Something that
   * is not a counter (anyone who can write to memcached can put bytes there) is replaced the same
   * way, under its CAS, so that a namespace is never stuck.
   */
  private async current(wire: string, remember: (value: number) => void): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const item = (await this.ops.read([wire], { counters: 1 }))[0];
      const value = counterValue(item);
      if (value !== undefined) {
        remember(value);
        return value;
      }
      // a lost counter restarts from the clock, never from a value used before
      const fresh = this.counterBytes(freshGeneration());
      if (item.state === 'miss') await this.ops.store(Opcode.Add, 'generation', wire, fresh, 0, 'generations');
      else await this.ops.store(Opcode.Set, 'generation', wire, fresh, 0, 'generations', item.cas);
    }
    throw new MemcachedError('generation', this.ops.router.nodeFor(wire).label, 'SERVER', generationLost());
  }

  /** A counter as memcached increments it: digits, never encrypted. */
  private counterBytes(value: number) {
    return { ...this.ops.encode(value), clear: true };
  }
}

/** Keys are strings: anything else is the caller's mistake, refused before anything is sent. */
function assertKey(key: unknown): void {
  if (typeof key !== 'string') throw new MemcachedUsageError('KEY', keyNotString(key === null ? 'null' : typeof key));
}

/** memcached refused to increment: the key holds something that is not a number. */
function notACounter(error: unknown): boolean {
  return error instanceof MemcachedError && error.code === 'SERVER' && error.status === Status.NonNumeric;
}

function counterValue(item: ItemRead): number | undefined {
  if (item.state !== 'hit') return undefined;
  const value = item.value instanceof RawJson ? Number(item.value.json) : item.value;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}

function freshGeneration(): number {
  return Date.now() * 1000;
}
