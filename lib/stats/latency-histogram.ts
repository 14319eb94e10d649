/** Upper bounds of the latency buckets, in milliseconds (Prometheus reports them in seconds). */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

export interface LatencySnapshot {
  count: number;
  sumMs: number;
  /**
   * Cumulative counts per upper bound in ms, smallest bound first, as Prometheus histograms
   * report them; everything above the last bound is in `count` only.
   */
  buckets: Array<{ le: number; count: number }>;
}

/** A fixed-bucket latency histogram: cheap to record, snapshot on demand. */
export class LatencyHistogram {
  /** Per bucket, not cumulative; the last slot counts what is above every bound. */
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  count = 0;
  sum = 0;

  observe(ms: number): void {
    this.count++;
    this.sum += ms;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]) i++;
    this.counts[i]++;
  }

  snapshot(): LatencySnapshot {
    return snapshotOf([this]);
  }

  /** Adds another histogram's counts to this one. */
  add(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
  }
}

/** One snapshot of several histograms taken together (the outcomes of one namespace). */
export function snapshotOf(histograms: readonly LatencyHistogram[]): LatencySnapshot {
  let count = 0;
  let sum = 0;
  for (const h of histograms) {
    count += h.count;
    sum += h.sum;
  }
  let cumulative = 0;
  const buckets = LATENCY_BUCKETS_MS.map((le, i) => {
    for (const h of histograms) cumulative += h.counts[i];
    return { le, count: cumulative };
  });
  return { count, sumMs: roundMs(sum), buckets };
}

/** Milliseconds to the microsecond, as every duration the library reports. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
