// A flood on the invalidation bus: a publisher without the keys sends BENCH_RATE messages a second
// (default 100,000) for BENCH_SECONDS (default 10) on the NATS subject a victim process listens
// to, and the victim reports its longest event-loop stall, its p99, the CPU it spent and its heap
// after GC. Kinds: forged (signed with a wrong key, victim with keys), unsigned new sources and
// malformed bytes (victim without keys).
// Run: npm run bench:bus-flood   (BENCH_RATE, BENCH_SECONDS, BENCH_KINDS=forged,sources,malformed)
import { connect } from '@nats-io/transport-node';
import { randomBytes, randomUUID } from 'node:crypto';
import { BusCodec } from '../lib/bus/bus-message.js';
import { MemcachedDaemon } from '../test/support/memcached-daemon.js';
import { startNats } from '../test/support/servers.js';
import { startWorker } from '../test/support/workers.js';
import { machineNotes, table } from './support/report.js';

const RATE = Number(process.env.BENCH_RATE ?? 100_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const KINDS = (process.env.BENCH_KINDS ?? 'forged,sources,malformed').split(',');
const KEY = { id: 1, key: Buffer.alloc(32, 0x21).toString('base64') };
const WRONG = new BusCodec([{ id: 1, key: Buffer.alloc(32, 0x66) }]);
const PLAIN = new BusCodec();

interface Report {
  maxStallMs: number;
  p99StallMs: number;
  longestGcMs: number;
  cpuMs: number;
  heapBefore: number;
  heapAfter: number;
  after: { bus?: { forged: number; malformed: number; dropped: number; newSources: number } };
}

const message: Record<string, (i: number) => string> = {
  forged: (i) => WRONG.encode({ source: `f${i % 1000}`, seq: i + 1, type: 'h', changes: [], at: Date.now() }),
  sources: (i) => PLAIN.encode({ source: `s${i}`, seq: 1, type: 'h', changes: [], at: Date.now() }),
  malformed: (i) => randomBytes(40 + (i % 80)).toString('latin1'),
};

async function run(kind: string, daemon: MemcachedDaemon, natsUrl: string): Promise<string[]> {
  const channel = `flood-${randomUUID()}`;
  const keys = kind === 'forged' ? [KEY] : undefined;
  const victim = startWorker(
    new URL('../test/e2e/workers/bus-victim.ts', import.meta.url),
    { servers: daemon.address, transport: 'nats', url: natsUrl, channel, keys, primed: 50 },
    ['--expose-gc'],
  );
  const nc = await connect({ servers: natsUrl });
  try {
    await victim.waitFor('ready');
    victim.send('attack');
    await victim.waitFor('watching');
    const make = message[kind];
    const started = performance.now();
    let sent = 0;
    // every 10 ms, what the rate asks for since the start
    while (performance.now() - started < SECONDS * 1000) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      while (sent < due) nc.publish(channel, make(sent++));
      await new Promise((r) => setTimeout(r, 10));
    }
    await nc.flush();
    const elapsed = (performance.now() - started) / 1000;
    victim.send('done');
    const report = (await victim.result) as Report;
    const window = elapsed * 1000 + 1500;
    const bus = report.after.bus!;
    return [
      kind,
      keys ? 'on' : 'off',
      `${Math.round(sent / elapsed).toLocaleString('en')}`,
      `${report.maxStallMs.toFixed(1)} ms`,
      `${report.p99StallMs.toFixed(1)} ms`,
      `${report.longestGcMs.toFixed(1)} ms`,
      `${((report.cpuMs / window) * 100).toFixed(0)}%`,
      `${((report.heapAfter - report.heapBefore) / 2 ** 20).toFixed(1)} MB`,
      `${bus.forged} / ${bus.malformed} / ${bus.newSources} / ${bus.dropped}`,
    ];
  } finally {
    await nc.drain().catch(() => undefined);
    victim.child.kill();
  }
}

const [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
try {
  const rows: string[][] = [];
  for (const kind of KINDS) rows.push(await run(kind, daemon, nats.url));
  console.log(`\n### Bus flood: ${RATE.toLocaleString('en')} messages/s for ${SECONDS} s at one victim (NATS)\n`);
  console.log(
    table(
      [
        'flood',
        'keys',
        'sent/s',
        'longest stall',
        'p99 stall',
        'longest GC',
        'victim CPU',
        'heap after GC',
        'forged / malformed / new sources / dropped',
      ],
      rows,
    ),
  );
  console.log(`\n${machineNotes()}`);
} finally {
  await Promise.all([daemon.stop(), nats.stop()]);
}
