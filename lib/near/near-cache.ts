import { LRUCache } from 'lru-cache';

/** What the near cache holds for one entry: what a hit needs, without a network round trip. */
export interface NearEntry {
  /** The logical key the entry belongs to (all its variants share it): what an eviction names. */
  family: string;
  /** A decoder's input (bytes + flags), or an immutable value (an HTTP entry's JSON text). */
  held: unknown;
  /** Bytes counted against `maxBytes`. */
  size: number;
  /** An HTTP entry's recorded metadata. */
  meta?: unknown;
  /** The names of its tags (`changeNames.tagName`): an invalidation of one drops it. */
  tags?: readonly string[];
}

export interface NearCacheOptions {
  /** Bytes of values held, at most. */
  maxBytes: number;
  /** Seconds an entry is served from memory at most (shorter than the memcached TTL). */
  ttl: number;
}

export interface NearCacheStats {
  hits: number;
  misses: number;
  /** Entries held now, and their bytes. */
  entries: number;
  bytes: number;
  /** Entries dropped by an invalidation (this process's or another's). */
  invalidations: number;
  /** Whole-tier drops: a sequence gap, a lost or silent bus, a source restart. */
  flushes: number;
  /** Values read before an invalidation arrived, therefore not kept. */
  refusedFills: number;
  /** True while the bus vouches for the tier (otherwise every read goes to memcached). */
  active: boolean;
}

const KNOWN_NAMESPACES = 10_000;
const KNOWN_GROUPS = 50_000;
const MARKS = 100_000;
/** Bytes the marks and the learned variant groups may take (their keys are names from the bus or from reads). */
const MARK_BYTES = 16 * 1024 * 1024;
const GROUP_BYTES = 16 * 1024 * 1024;
/** A string key's bytes in memory, roughly, with the entry's own overhead. */
const keyBytes = (_: unknown, key: string) => key.length * 2 + 64;

/**
 * The in-process tier (L1) in front of memcached. It serves an entry only while the invalidation
 * bus vouches for it (`active`), holds the namespace generations it learned from validated reads
 * (so a hit needs no request at all), and refuses a value whose read began before an
 * invalidation of its key, namespace or tags arrived: every read takes an epoch first
 * (`begin()`), every invalidation marks its key, namespace or tag with a newer epoch, and `store`
 * checks the marks. Marks are bounded; when one is forgotten, reads that began before it are
 * refused too. Key families, namespace names and tag names are the keyspace's (`changeNames`),
 * which never meet, so one map marks all three.
 */
export class NearCache {
  private readonly entries: LRUCache<string, NearEntry>;
  private readonly families = new Map<string, Set<string>>();
  /** Tag name -> wires of the entries carrying it. */
  private readonly tagged = new Map<string, Set<string>>();
  private readonly generations = new LRUCache<string, number>({ max: KNOWN_NAMESPACES });
  private readonly groups = new LRUCache<string, number>({
    max: KNOWN_GROUPS,
    maxSize: GROUP_BYTES,
    sizeCalculation: keyBytes,
  });
  private readonly marks: LRUCache<string, number>;
  private epoch = 0;
  private forgotten = 0;
  private flushedAt = 0;
  private isActive = false;
  readonly counters = { hits: 0, misses: 0, invalidations: 0, flushes: 0, refusedFills: 0 };

  constructor(readonly options: NearCacheOptions) {
    this.entries = new LRUCache<string, NearEntry>({
      maxSize: options.maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      ttl: options.ttl * 1000,
      ttlAutopurge: false,
      updateAgeOnGet: false,
      dispose: (entry, wire) => {
        this.unindex(this.families, entry.family, wire);
        if (entry.tags !== undefined) for (const tag of entry.tags) this.unindex(this.tagged, tag, wire);
      },
    });
    this.marks = new LRUCache<string, number>({
      max: MARKS,
      maxSize: MARK_BYTES,
      sizeCalculation: keyBytes,
      disposeAfter: (epoch, _key, reason) => {
        if (reason === 'evict' && epoch > this.forgotten) this.forgotten = epoch;
      },
    });
  }

  /** True while the bus vouches for the tier. */
  get active(): boolean {
    return this.isActive;
  }

  /** The bus is healthy (`true`), or not: then every entry is dropped and reads bypass the tier. */
  setActive(active: boolean): void {
    if (active === this.isActive) return;
    // either way, a read that began before the change may have missed an invalidation
    this.flush();
    this.isActive = active;
  }

  /** Taken before a memcached read whose result may be kept: the invalidations it must not miss. */
  begin(): number {
    return this.epoch;
  }

  /** The namespace's generation as last validated, or undefined (then memcached must be asked). */
  generation(namespace: string): number | undefined {
    return this.isActive ? this.generations.get(namespace) : undefined;
  }

  /** The variant group of a key as last validated. */
  group(family: string): number | undefined {
    return this.isActive ? this.groups.get(family) : undefined;
  }

  get(wire: string): NearEntry | undefined {
    if (!this.isActive) return undefined;
    const entry = this.entries.get(wire);
    if (entry === undefined) this.counters.misses++;
    else this.counters.hits++;
    return entry;
  }

  /**
   * Keeps a value read from memcached (and the generations it was validated against), unless an
   * invalidation of its key or namespace, or a flush, came after `start`. Returns whether it was kept.
   */
  store(
    start: number,
    wire: string,
    entry: NearEntry,
    learned: { namespace?: string; generation?: number; group?: number },
    ttlSeconds?: number,
  ): boolean {
    if (!this.isActive) return false;
    if (!this.admits(start, entry.family, learned.namespace, entry.tags)) {
      this.counters.refusedFills++;
      return false;
    }
    if (learned.namespace !== undefined && learned.generation !== undefined)
      this.generations.set(learned.namespace, learned.generation);
    if (learned.group !== undefined) this.groups.set(entry.family, learned.group);
    if (entry.size > this.options.maxBytes) return false;
    this.entries.set(
      wire,
      entry,
      ttlSeconds !== undefined && ttlSeconds < this.options.ttl ? { ttl: Math.max(1, ttlSeconds * 1000) } : undefined,
    );
    index(this.families, entry.family, wire);
    if (entry.tags !== undefined) for (const tag of entry.tags) index(this.tagged, tag, wire);
    return true;
  }

  /** A tag got a new version: drop every entry carrying it and refuse reads that began before. */
  invalidateTag(name: string): void {
    this.marks.set(name, ++this.epoch);
    const wires = this.tagged.get(name);
    if (wires === undefined) return;
    for (const wire of [...wires]) {
      if (this.entries.delete(wire)) this.counters.invalidations++;
    }
    this.tagged.delete(name);
  }

  /** A key (every variant of it) changed: drop what is held and refuse reads that began before. */
  invalidateKey(family: string): void {
    this.marks.set(family, ++this.epoch);
    this.groups.delete(family);
    const wires = this.families.get(family);
    if (wires === undefined) return;
    for (const wire of [...wires]) {
      if (this.entries.delete(wire)) this.counters.invalidations++;
    }
    this.families.delete(family);
  }

  /** A namespace got a new generation: forget the one held (its entries become unreachable). */
  invalidateNamespace(namespace: string): void {
    this.marks.set(namespace, ++this.epoch);
    if (this.generations.delete(namespace)) this.counters.invalidations++;
  }

  /** Drops everything: after a sequence gap, a source restart, a lost or silent bus. */
  flush(): void {
    this.flushedAt = ++this.epoch;
    if (this.entries.size > 0 || this.generations.size > 0) this.counters.flushes++;
    // clearing an LRU walks its whole capacity: an empty one is left as it is (a flood of flushes)
    if (this.entries.size > 0) this.entries.clear();
    if (this.families.size > 0) this.families.clear();
    if (this.tagged.size > 0) this.tagged.clear();
    if (this.generations.size > 0) this.generations.clear();
    if (this.groups.size > 0) this.groups.clear();
  }

  stats(): NearCacheStats {
    return { ...this.counters, entries: this.entries.size, bytes: this.entries.calculatedSize, active: this.isActive };
  }

  private admits(
    start: number,
    family: string,
    namespace: string | undefined,
    tags: readonly string[] | undefined,
  ): boolean {
    if (start < this.flushedAt || start < this.forgotten) return false;
    if ((this.marks.get(family) ?? 0) > start) return false;
    if (tags !== undefined && tags.some((tag) => (this.marks.get(tag) ?? 0) > start)) return false;
    return namespace === undefined || (this.marks.get(namespace) ?? 0) <= start;
  }

  private unindex(index: Map<string, Set<string>>, name: string, wire: string): void {
    const wires = index.get(name);
    if (wires === undefined) return;
    wires.delete(wire);
    if (wires.size === 0) index.delete(name);
  }
}

function index(map: Map<string, Set<string>>, name: string, wire: string): void {
  let wires = map.get(name);
  if (wires === undefined) map.set(name, (wires = new Set()));
  wires.add(wire);
}
