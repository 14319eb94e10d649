/**
 * Calls `fn(i)` from `concurrency` workers for 300 ms of warm-up and then `seconds`; returns
 * operations per second and this process's CPU microseconds per operation in the measured window.
 */
export async function measure(
  fn: (i: number) => Promise<unknown>,
  concurrency: number,
  seconds: number,
): Promise<{ rate: number; cpuUs: number }> {
  let ops = 0;
  const warmUntil = performance.now() + 300;
  const until = warmUntil + seconds * 1000;
  let measuring = false;
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  const worker = async (w: number) => {
    for (let i = w; ; i += concurrency) {
      const now = performance.now();
      if (now >= until) return;
      if (!measuring && now >= warmUntil) {
        measuring = true;
        cpuAtStart = process.cpuUsage();
      }
      await fn(i);
      if (measuring) ops++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const cpu = process.cpuUsage(cpuAtStart);
  return { rate: ops / seconds, cpuUs: ops === 0 ? 0 : (cpu.user + cpu.system) / ops };
}
