/** Upper bounds of the latency buckets, in milliseconds. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

export interface LatencySnapshot {
  count: number;
  sumMs: number;
  /** Cumulative counts per upper bound (ms), as Prometheus histograms report them; `+Inf` = count. */
  buckets: Record<string, number>;
}

/** A fixed-bucket latency histogram: cheap to record, snapshot on demand. */
export class LatencyHistogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length).fill(0);
  private count = 0;
  private sum = 0;

  observe(ms: number): void {
    this.count++;
    this.sum += ms;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
      if (ms <= LATENCY_BUCKETS_MS[i]) {
        this.counts[i]++;
        return;
      }
    }
  }

  snapshot(): LatencySnapshot {
    const buckets: Record<string, number> = {};
    let cumulative = 0;
    LATENCY_BUCKETS_MS.forEach((bound, i) => {
      cumulative += this.counts[i];
      buckets[String(bound)] = cumulative;
    });
    buckets['+Inf'] = this.count;
    return { count: this.count, sumMs: Math.round(this.sum * 1000) / 1000, buckets };
  }
}
