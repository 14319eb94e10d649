import { MAX_NAMESPACE_LENGTH } from '../codec/key.codec.js';
import { LatencyHistogram, type LatencySnapshot } from './latency-histogram.js';

/** Counters of one namespace since the application started (`MemcachedCache.stats()`). */
export interface NamespaceStats {
  /** Reads served from the cache, stale ones included. */
  hits: number;
  /** Of the hits, those served stale while one caller refreshed (stale-while-revalidate). */
  stale: number;
  /**
   * Reads answered with an entry past its freshness because the source failed or passed its
   * deadline (grace); not hits, not misses.
   */
  graced: number;
  misses: number;
  fills: number;
  evictions: number;
  bypasses: number;
  errors: number;
  /** Misses that waited for another caller's lease. */
  leaseWaits: number;
  /** Latency of reads (hits and misses; a miss includes the source), ms. */
  latency: LatencySnapshot;
}

/** Where reads of keys without a namespace are counted. */
export const NO_NAMESPACE = '(none)';
/**
 * In `stats()`, the namespaces no longer counted one by one; as a metric label, the families past
 * `metrics.families`, or a family the rule could not name.
 */
export const OTHER_NAMESPACES = '(other)';
/** Default of `metrics.namespaces`: namespaces not named in code counted one by one. */
export const MAX_NAMESPACES = 500;
/** Default of `metrics.families`: labels given to families of namespaces not named in code. */
export const MAX_FAMILIES = 50;
/** The longest family name a rule may give; a longer one counts under `(other)`. */
export const MAX_FAMILY_LENGTH = 100;
/**
 * What one namespace's counters keep in memory besides its name (three latency histograms and the
 * counts), as charged against the bound: measured with V8's heap statistics, rounded up.
 */
export const NAMESPACE_ENTRY_BYTES = 800;
/** Namespace names are charged at this length at least, so the byte bound holds for short names too. */
const CHARGED_NAME_LENGTH = 64;

/** How per-namespace counting is bounded (the module's `metrics` option, resolved). */
export interface NamespaceLimits {
  /** Namespaces not named in code counted one by one, least recently used folded first. */
  namespaces: number;
  /** Distinct family labels for namespaces not named in code; the rest are `(other)`. */
  families: number;
  /** A namespace's family: the label its counts are reported under. */
  family: (namespace: string) => string;
}

/**
 * The default family rule: the namespace's leading letters (`user-7`, `user.7`, `user_7` and
 * `user7` are all `user`); a name that does not start with a letter is `(other)`.
 */
export function leadingLetters(namespace: string): string {
  const match = /^[A-Za-z]+/.exec(namespace);
  return match === null ? OTHER_NAMESPACES : match[0].slice(0, MAX_FAMILY_LENGTH);
}

export const DEFAULT_NAMESPACE_LIMITS: NamespaceLimits = {
  namespaces: MAX_NAMESPACES,
  families: MAX_FAMILIES,
  family: leadingLetters,
};

/** One namespace's counters; latency per outcome (`HIT`, `STALE`, `MISS`), so exporters can label it. */
export type NamespaceCounters = Omit<NamespaceStats, 'latency'> & {
  latency: Record<'HIT' | 'STALE' | 'MISS', LatencyHistogram>;
};

/**
 * Per-namespace counters, bounded by count and bytes whatever the number of namespaces a service
 * meets: namespaces named in code are kept one by one; the others while they are among the
 * `limits.namespaces` most recently used, then folded into their family's sum, so totals stay
 * exact. The one place `stats()`, Prometheus and any other exporter read namespaces from.
 */
export class NamespaceTable {
  /** Oldest used first among the namespaces not declared; the declared ones are never folded. */
  private readonly counters = new Map<string, Tally>();
  private readonly declared = new Set<string>([NO_NAMESPACE]);
  /** Undeclared namespaces counted one by one, and the bytes charged for them. */
  private undeclared = 0;
  private undeclaredBytes = 0;
  /** Undeclared namespaces folded away, summed per family (at most `limits.families` + `(other)`). */
  private readonly folded = new Map<string, NamespaceCounters>();
  /** The family labels given so far (at most `limits.families`). */
  private readonly familyNames = new Set<string>();
  private readonly maxBytes: number;

  constructor(private readonly limits: NamespaceLimits = DEFAULT_NAMESPACE_LIMITS) {
    this.maxBytes = limits.namespaces * (NAMESPACE_ENTRY_BYTES + 2 * CHARGED_NAME_LENGTH);
  }

  /**
   * A namespace named in code: always counted, and labelled, by itself. What it was counted before
   * (as a namespace not named in code) stays in its family, so no reported count ever goes down.
   */
  declare(namespace: string): void {
    if (this.declared.has(namespace)) return;
    this.declared.add(namespace);
    const stats = this.counters.get(namespace);
    if (stats === undefined) return;
    this.fold(namespace, stats);
  }

  /** Per namespace: those kept one by one, then `(other)` (the folded ones summed) if any. */
  *namespaces(): IterableIterator<[string, NamespaceCounters]> {
    yield* this.counters.entries();
    if (this.folded.size === 0) return;
    const other = emptyCounters();
    for (const counters of this.folded.values()) addCounters(other, counters);
    yield [OTHER_NAMESPACES, other];
  }

  /** Per label: declared namespaces by name, the others summed by family. */
  families(): IterableIterator<[string, NamespaceCounters]> {
    // a label with one source is that source's counters; only a label with several is summed anew
    const labels = new Map<string, NamespaceCounters>();
    const sums = new Set<string>();
    const add = (label: string, counters: NamespaceCounters) => {
      const seen = labels.get(label);
      if (seen === undefined) return void labels.set(label, counters);
      if (sums.has(label)) return addCounters(seen, counters);
      const sum = emptyCounters();
      addCounters(sum, seen);
      addCounters(sum, counters);
      labels.set(label, sum);
      sums.add(label);
    };
    for (const [name, tally] of this.counters) add(tally.declared ? name : this.labelOf(tally.family), tally);
    for (const [family, counters] of this.folded) add(this.labelOf(family), counters);
    return labels.entries();
  }

  /** The counters of `namespace`, made (and the least recently used folded) as needed. */
  of(namespace: string): NamespaceCounters {
    // a name no read could use (its call failed on it) is not kept: it could be anything, of any length
    if (typeof namespace !== 'string' || namespace.length > MAX_NAMESPACE_LENGTH)
      return this.foldedOf(OTHER_NAMESPACES);
    let stats = this.counters.get(namespace);
    if (stats !== undefined) {
      if (!stats.declared) {
        // most recently used last: the first undeclared one is the one to fold
        this.counters.delete(namespace);
        this.counters.set(namespace, stats);
      }
      return stats;
    }
    const declared = this.declared.has(namespace);
    stats = emptyCounters() as Tally;
    stats.declared = declared;
    stats.family = declared ? namespace : this.familyOf(namespace);
    this.counters.set(namespace, stats);
    if (!declared) {
      this.undeclared++;
      this.undeclaredBytes += chargeOf(namespace);
      while (this.undeclared > this.limits.namespaces || this.undeclaredBytes > this.maxBytes) {
        if (!this.foldOldest()) break;
      }
      // with no room even for this one (a bound of 0), it was folded at once
      if (!this.counters.has(namespace)) return this.foldedOf(stats.family);
    }
    return stats;
  }

  /** The family of an undeclared namespace: the rule's answer while families are left, else `(other)`. */
  private familyOf(namespace: string): string {
    let family: unknown;
    try {
      family = this.limits.family(namespace);
    } catch {
      return OTHER_NAMESPACES; // a rule's bug must not fail the call being counted
    }
    if (typeof family !== 'string' || family.length === 0 || family.length > MAX_FAMILY_LENGTH) return OTHER_NAMESPACES;
    if (family === OTHER_NAMESPACES || this.familyNames.has(family)) return family;
    if (this.familyNames.size >= this.limits.families) return OTHER_NAMESPACES;
    this.familyNames.add(family);
    return family;
  }

  /**
   * A family's label: its name, unless a namespace named in code has that name (`users` declared,
   * `users-42` of family `users`): then `users*`, so a declared namespace's label is its own.
   */
  private labelOf(family: string): string {
    return this.declared.has(family) ? `${family}*` : family;
  }

  /** The folded counts of a family, made as needed. */
  private foldedOf(family: string): NamespaceCounters {
    let into = this.folded.get(family);
    if (into === undefined) this.folded.set(family, (into = emptyCounters()));
    return into;
  }

  /** Adds an undeclared namespace's counts to its family's folded counts and forgets it. */
  private fold(name: string, stats: Tally): void {
    addCounters(this.foldedOf(stats.family), stats);
    this.counters.delete(name);
    this.undeclared--;
    this.undeclaredBytes -= chargeOf(name);
  }

  /** Folds the least recently used undeclared namespace; false when there is none. */
  private foldOldest(): boolean {
    for (const [name, stats] of this.counters) {
      if (stats.declared) continue;
      this.fold(name, stats);
      return true;
    }
    return false;
  }
}

/** One namespace's counters and the label they are reported under. */
interface Tally extends NamespaceCounters {
  family: string;
  /** Named in code: never folded (kept here so a hit needs no lookup in `declared`). */
  declared: boolean;
}

/** What a namespace's counters are charged against the byte bound. */
function chargeOf(namespace: string): number {
  return NAMESPACE_ENTRY_BYTES + 2 * Math.max(namespace.length, CHARGED_NAME_LENGTH);
}

function emptyCounters(): NamespaceCounters {
  return {
    hits: 0,
    stale: 0,
    graced: 0,
    misses: 0,
    fills: 0,
    evictions: 0,
    bypasses: 0,
    errors: 0,
    leaseWaits: 0,
    latency: { HIT: new LatencyHistogram(), STALE: new LatencyHistogram(), MISS: new LatencyHistogram() },
  };
}

function addCounters(into: NamespaceCounters, from: NamespaceCounters): void {
  into.hits += from.hits;
  into.stale += from.stale;
  into.graced += from.graced;
  into.misses += from.misses;
  into.fills += from.fills;
  into.evictions += from.evictions;
  into.bypasses += from.bypasses;
  into.errors += from.errors;
  into.leaseWaits += from.leaseWaits;
  for (const outcome of ['HIT', 'STALE', 'MISS'] as const) into.latency[outcome].add(from.latency[outcome]);
}
