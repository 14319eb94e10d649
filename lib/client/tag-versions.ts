import { LRUCache } from 'lru-cache';
import { type EntryRef, flightNames, tagWire } from '../codec/keyspace.js';
import { freshTagVersion, type TagStamp } from '../codec/tags.js';
import { RawJson } from '../codec/value.codec.js';
import { tagVersionLost } from '../memcached.messages.js';
import { MemcachedError } from '../transport/memcached.error.js';
import { Opcode } from '../transport/protocol.js';
import type { Loader } from './lease.js';
import type { ItemRead, Operations } from './operations.js';
import { backgroundTimer } from '../utils/background.js';

const NO_TAGS: readonly string[] = [];
const KNOWN_TAG_WIRES = 10_000;
/** Entries whose stamps held tags beyond those asked for (tags learned from values). */
const LEARNED_ENTRIES = 10_000;
/** Tag invalidations this process heard of, remembered for loads running meanwhile. */
const HEARD_TAGS = 10_000;
/** Most owed tag invalidations held; past it every tagged read skips memcached until all are paid. */
export const MAX_TAG_DEBTS = 10_000;

/** Hears owed tag invalidations taken and paid (the counters, the log). */
export interface TagDebtObserver {
  owed(tags: readonly string[], local: boolean): void;
  paid(count: number): void;
}

/** Versions read for tags: a number, or undefined (missing, or bytes that are not a version). */
export type TagVersionsRead = Map<string, number | undefined>;

/**
 * The versions of tags, in their own keyspace (`tagPrefix`, shared by the services that share
 * tags). A tag's version is a random number at `<tagPrefix><tag>#tag`; an entry records the
 * versions of its tags (its stamps), and any difference with what is read beside it makes it a
 * miss. Invalidating a tag writes a new random version; a missing version (never set, or evicted
 * by memcached) is created afresh, so it can never match an entry stamped before.
 */
export class TagVersions {
  private readonly wires = new LRUCache<string, string>({ max: KNOWN_TAG_WIRES });
  private readonly learned = new LRUCache<string, string[]>({ max: LEARNED_ENTRIES });
  private readonly heardAt: LRUCache<string, number>;
  private tick = 0;
  private forgotten = 0;
  /**
   * Tags whose new version memcached did not confirm (or another process told of so): until a
   * new version lands, entries carrying them read as misses and nothing is stored under them,
   * so the old version cannot vouch for an invalidated entry when the node answers again.
   */
  private readonly owedTags = new Map<string, number>();
  /** More were owed than `MAX_TAG_DEBTS`: every tagged read skips memcached until all are paid. */
  private owedOverflow = false;
  private payTimer?: NodeJS.Timeout;
  private payDelay = 0;
  private closed = false;

  constructor(
    private readonly ops: Operations,
    readonly tagPrefix: string,
    /** Longest pause between attempts to pay an owed invalidation, ms. */
    private readonly maxPayDelay = 1000,
    private readonly observer?: TagDebtObserver,
  ) {
    this.heardAt = new LRUCache<string, number>({
      max: HEARD_TAGS,
      disposeAfter: (at, _tag, reason) => {
        if (reason === 'evict' && at > this.forgotten) this.forgotten = at;
      },
    });
  }

  /** The wire key of a tag's version. */
  wireOf(tag: string): string {
    let wire = this.wires.get(tag);
    if (wire === undefined) this.wires.set(tag, (wire = tagWire(this.tagPrefix, tag)));
    return wire;
  }

  /** The tags read with an entry: those asked for, and those its value carried last time it was read here. */
  toRead(target: EntryRef, declared: readonly string[]): readonly string[] {
    if (this.learned.size === 0) return declared;
    const learned = this.learned.get(flightNames.ofEntry(target));
    if (learned === undefined) return declared;
    const out = [...declared];
    for (const tag of learned) if (!out.includes(tag)) out.push(tag);
    return out;
  }

  /**
   * Checks an entry's stamps against the versions read with it: `true` when every stamp matches
   * and every declared tag is stamped, `false` when one differs (or is missing: a version
   * memcached lost counts as changed), or the stamped tags whose versions were not read.
   */
  check(
    target: EntryRef,
    stamps: readonly TagStamp[] | undefined,
    declared: readonly string[],
    read: TagVersionsRead,
  ): boolean | string[] {
    for (const tag of declared) {
      if (stamps === undefined || !stamps.some((stamp) => stamp[0] === tag)) return false;
    }
    if (stamps === undefined) return true;
    let unread: string[] | undefined;
    for (const [tag, version] of stamps) {
      if (!read.has(tag)) {
        (unread ??= []).push(tag);
        continue;
      }
      if (read.get(tag) !== version) return false;
    }
    if (unread === undefined) return true;
    // read with the entry from now on
    this.learned.set(flightNames.ofEntry(target), unread);
    return unread;
  }

  /**
   * Whether an entry's stamps hold against the versions read with it (`check`); stamped tags
   * that were not read with it (learned from its value, the first read here) are read now.
   * Counts a stale one in `tagMisses`.
   */
  async verify(
    target: EntryRef,
    stamps: readonly TagStamp[] | undefined,
    declared: readonly string[],
    read: TagVersionsRead,
  ): Promise<boolean> {
    let verdict = this.owesStamped(stamps) ? false : this.check(target, stamps, declared, read);
    if (Array.isArray(verdict)) {
      await this.read(verdict, read);
      verdict = this.check(target, stamps, declared, read);
    }
    if (verdict !== true) this.ops.stats.count('tagMisses');
    return verdict === true;
  }

  /** The entry at `wire` read with its tags' versions: stamped under versions that changed, it reads as unreadable. */
  async reread(
    target: EntryRef,
    wire: string,
    declared: readonly string[],
    readTags: readonly string[],
    rawJson: boolean,
  ): Promise<ItemRead> {
    const items = await this.ops.read([...readTags.map((tag) => this.wireOf(tag)), wire], {
      rawJson,
      counters: readTags.length,
    });
    const item = items[readTags.length];
    if (item.state !== 'hit') return item;
    if (await this.verify(target, item.tags, declared, this.versionsOf(readTags, items))) return item;
    return { state: 'unreadable', cas: item.cas };
  }

  /** Whether a hit read without its tags' versions is still valid under them (read now, when it carries any). */
  async current(item: ItemRead): Promise<boolean> {
    if (item.state !== 'hit') return false;
    return item.tags === undefined || !(await this.staleOf([item.tags]))[0];
  }

  /**
   * Which entries, by the stamps they carry (undefined: untagged), were stored under a tag version
   * that has changed: every stamped tag's version read in one multi-get. Versions that cannot be
   * read vouch for nothing: every tagged entry is then stale.
   */
  async staleOf(stamps: ReadonlyArray<readonly TagStamp[] | undefined>): Promise<boolean[]> {
    const tags = new Set<string>();
    for (const list of stamps) if (list !== undefined) for (const [tag] of list) tags.add(tag);
    if (tags.size === 0) return stamps.map(() => false);
    let versions: TagVersionsRead;
    try {
      versions = await this.read([...tags]);
    } catch {
      return stamps.map((list) => list !== undefined);
    }
    return stamps.map((list) => {
      const stale =
        list !== undefined && (this.owesStamped(list) || list.some(([tag, version]) => versions.get(tag) !== version));
      if (stale) this.ops.stats.count('tagMisses');
      return stale;
    });
  }

  /**
   * A read's loader, its fills stamped with the versions of the entry's tags: those read before
   * the load (`stamps`, or the versions read, for a reload of an entry that is still valid), and
   * those of the tags the value carries (`resultTags`), read after it. A value carrying a tag
   * heard invalidated since `start` (here, or told on the bus) is not stored.
   */
  stamped<T>(
    request: { load: Loader<T>; tags?: readonly string[] },
    readTags: readonly string[],
    versions: TagVersionsRead | undefined,
    start: number,
    stamps?: TagStamp[],
  ): Loader<T> {
    return async (how) => {
      const loaded = await request.load(how);
      const extra = loaded.resultTags ?? NO_TAGS;
      if (loaded.fill === undefined || (readTags.length === 0 && extra.length === 0)) return loaded;
      const before = stamps ?? (readTags.length === 0 ? [] : await this.stamps(readTags, versions!));
      // tags learned before the load that this value no longer carries are not stamped
      const declared = request.tags ?? NO_TAGS;
      const kept = before.filter(([tag]) => declared.includes(tag) || extra.includes(tag));
      const late = extra.filter((tag) => !kept.some((stamp) => stamp[0] === tag));
      if (late.length > 0) {
        if (this.changedSince(start, late)) {
          this.ops.stats.count('splitFlights');
          return { ...loaded, fill: undefined };
        }
        kept.push(...(await this.stamps(late, await this.read(late))));
      }
      // an owed invalidation: the version read is not the one the entry must be stored under
      if (this.owesStamped(kept)) return { ...loaded, fill: undefined };
      return { ...loaded, fill: { ...loaded.fill, tags: kept } };
    };
  }

  /** The versions of tags, in one multi-get (a missing one: undefined). */
  async read(tags: readonly string[], into: TagVersionsRead = new Map()): Promise<TagVersionsRead> {
    if (tags.length === 0) return into;
    const items = await this.ops.read(
      tags.map((tag) => this.wireOf(tag)),
      { counters: tags.length },
    );
    this.ops.stats.count('tagReads', tags.length);
    for (let i = 0; i < tags.length; i++) into.set(tags[i], versionOf(items[i]));
    return into;
  }

  /** Versions as read with an entry (`items` in the order of `tags`). */
  versionsOf(tags: readonly string[], items: readonly ItemRead[]): TagVersionsRead {
    const read: TagVersionsRead = new Map();
    for (let i = 0; i < tags.length; i++) read.set(tags[i], versionOf(items[i]));
    this.ops.stats.count('tagReads', tags.length);
    return read;
  }

  /**
   * The stamps of `tags` given the versions read: a missing version is created (an `add` of a new
   * random one; when another process's add came first, its version is read instead).
   */
  async stamps(tags: readonly string[], read: TagVersionsRead): Promise<TagStamp[]> {
    const stamps: TagStamp[] = [];
    const missing: string[] = [];
    for (const tag of tags) {
      const version = read.get(tag);
      if (version === undefined) missing.push(tag);
      else stamps.push([tag, version]);
    }
    if (missing.length > 0) stamps.push(...(await Promise.all(missing.map((tag) => this.create(tag)))));
    return stamps;
  }

  private async create(tag: string): Promise<TagStamp> {
    const wire = this.wireOf(tag);
    for (let attempt = 0; attempt < 3; attempt++) {
      const version = freshTagVersion();
      const outcome = await this.ops.store(Opcode.Add, 'tag', wire, this.versionBytes(version), 0, 'tags');
      if (outcome === 'stored') return [tag, version];
      const [item] = await this.ops.read([wire], { counters: 1 });
      const current = versionOf(item);
      if (current !== undefined) return [tag, current];
      // bytes that are not a version (anyone can write to memcached): replaced under their CAS
      if (item.state !== 'miss')
        await this.ops.store(Opcode.Set, 'tag', wire, this.versionBytes(version), 0, 'tags', item.cas);
    }
    throw new MemcachedError('tag', this.ops.router.nodeFor(wire).label, 'SERVER', tagVersionLost());
  }

  /**
   * New versions for `tags`: every entry stamped with the old ones misses, in every service sharing
   * them. Those memcached did not take are owed (see `owedTags`) and the first error is rethrown.
   */
  async invalidate(tags: readonly string[]): Promise<void> {
    this.heard(tags);
    const settled = await Promise.allSettled(tags.map((tag) => this.renew(tag)));
    const failed = tags.filter((_, i) => settled[i].status === 'rejected');
    this.ops.stats.count('tagInvalidations', tags.length - failed.length);
    if (failed.length === 0) return;
    this.owe(failed, true);
    throw (settled.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason;
  }

  private renew(tag: string): Promise<unknown> {
    return this.ops.store(
      Opcode.Set,
      'invalidateTags',
      this.wireOf(tag),
      this.versionBytes(freshTagVersion()),
      0,
      'tags',
    );
  }

  /** Whether an invalidation of one of `tags` is owed: an entry carrying one is not read or stored. */
  owes(tags: readonly string[]): boolean {
    if (this.owedTags.size === 0 && !this.owedOverflow) return false;
    return this.owedOverflow ? tags.length > 0 : tags.some((tag) => this.owedTags.has(tag));
  }

  /** Whether one of an entry's stamped tags is owed. */
  owesStamped(stamps: readonly TagStamp[] | undefined): boolean {
    if (stamps === undefined || (this.owedTags.size === 0 && !this.owedOverflow)) return false;
    return this.owedOverflow || stamps.some(([tag]) => this.owedTags.has(tag));
  }

  /** Holds tag invalidations memcached did not confirm (`local`: this process's; else told on the bus) until paid. */
  owe(tags: readonly string[], local: boolean): void {
    for (const tag of tags) {
      if (!this.owedTags.has(tag) && this.owedTags.size >= MAX_TAG_DEBTS) this.owedOverflow = true;
      else this.owedTags.set(tag, (this.owedTags.get(tag) ?? 0) + 1);
    }
    this.observer?.owed(tags, local);
    this.schedulePayment();
  }

  /** Owed tag invalidations held now (`client.stats().owed.tags`). */
  get owedCount(): number {
    return this.owedTags.size;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.payTimer);
  }

  private schedulePayment(): void {
    if (this.closed || this.payTimer !== undefined) return;
    this.payDelay = Math.min(Math.max(this.payDelay * 2, 10), this.maxPayDelay);
    this.payTimer = backgroundTimer(() => {
      this.payTimer = undefined;
      void this.pay();
    }, this.payDelay);
  }

  /** Writes a new version of every owed tag; one that lands is paid (unless owed again meanwhile). */
  private async pay(): Promise<void> {
    const round = [...this.owedTags];
    let paid = 0;
    await Promise.all(
      round.map(async ([tag, times]) => {
        try {
          await this.renew(tag);
        } catch {
          return;
        }
        if (this.owedTags.get(tag) === times) {
          this.owedTags.delete(tag);
          paid++;
        }
      }),
    );
    if (paid > 0) {
      this.heard(round.map(([tag]) => tag));
      this.observer?.paid(paid);
    }
    if (this.owedTags.size === 0 && this.owedOverflow && paid === round.length) this.owedOverflow = false;
    if (this.owedTags.size === 0 && !this.owedOverflow) this.payDelay = 0;
    else this.schedulePayment();
  }

  /** Where a load starts on the clock of invalidations heard here. */
  begin(): number {
    return this.tick;
  }

  /** Tags invalidated, here or (told on the bus) elsewhere: loads running now must not store under them. */
  heard(tags: readonly string[]): void {
    for (const tag of tags) this.heardAt.set(tag, ++this.tick);
  }

  /** Whether one of `tags` was heard invalidated after `start` (or may have been: the record was forgotten). */
  changedSince(start: number, tags: readonly string[]): boolean {
    if (start < this.forgotten) return true;
    return tags.some((tag) => (this.heardAt.get(tag) ?? 0) > start);
  }

  /** A version as memcached increments counters: digits, never encrypted. */
  private versionBytes(version: number) {
    return { ...this.ops.encode(version), clear: true };
  }
}

/** A tag version as read: a safe integer, else undefined (missing, or not ours: treated as changed). */
function versionOf(item: ItemRead): number | undefined {
  if (item.state !== 'hit') return undefined;
  const value = item.value instanceof RawJson ? Number(item.value.json) : item.value;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}
