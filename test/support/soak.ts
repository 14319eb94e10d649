/** What a soak worker prints: its reads and writes on the machine-wide monotonic clock, and its counters. */
export interface Result {
  reads: Array<[number, number, number]>;
  writes: Array<[number, number, number]>;
  stats: Record<string, number>;
}

/**
 * Reads that started after an eviction of their row returned, yet saw an older version; `lag` is
 * how long after the first eviction that version missed had returned.
 */
export function staleReads(
  results: Result[],
): Array<{ row: number; startedAt: number; saw: number; evictedVersion: number; lag: number }> {
  const writesByRow = new Map<number, Array<[number, number]>>();
  for (const r of results)
    for (const [at, row, version] of r.writes)
      (writesByRow.get(row) ?? writesByRow.set(row, []).get(row)!).push([at, version]);
  for (const list of writesByRow.values()) list.sort((a, b) => a[0] - b[0]);
  const stale = [];
  for (const r of results) {
    for (const [startedAt, row, saw] of r.reads) {
      let evictedVersion = 0;
      let firstMissed = Number.POSITIVE_INFINITY;
      for (const [at, version] of writesByRow.get(row) ?? []) {
        if (at >= startedAt) break;
        evictedVersion = Math.max(evictedVersion, version);
        if (version > saw) firstMissed = Math.min(firstMissed, at);
      }
      if (saw < evictedVersion) stale.push({ row, startedAt, saw, evictedVersion, lag: startedAt - firstMissed });
    }
  }
  return stale;
}
