// What keeping a value's type costs: the value codec's encode + decode (no network), side by side
// with plain JSON.stringify + JSON.parse, for the shapes a cache holds.
// Run: npm run bench:values   (BENCH_ROUNDS, BENCH_MS per cell)
import { ValueCodec } from '../lib/codec/value.codec.js';
import { catalog100k, user1k } from './support/payloads.js';
import { cell, interleave, machineNotes, table } from './support/report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CELL_MS = Number(process.env.BENCH_MS ?? 1000);

/** A database row as drivers return it: timestamps as Dates. */
function row1k(): Record<string, unknown> {
  return { ...user1k(), createdAt: new Date(1_700_000_000_000), updatedAt: new Date(1_700_000_500_000) };
}

function rows100k(): Record<string, unknown> {
  const catalog = catalog100k() as { items: Array<Record<string, unknown>> };
  return {
    ...catalog,
    items: catalog.items.map((item, i) => ({ ...item, updatedAt: new Date(1_700_000_000_000 + i) })),
  };
}

const shapes = {
  '1 KB plain object': user1k(),
  '1 KB row with Dates': row1k(),
  '100 KB plain object': catalog100k(),
  '100 KB rows with Dates': rows100k(),
};

const auto = new ValueCodec({ compressionThreshold: 0, mode: 'auto' });
const structured = new ValueCodec({ compressionThreshold: 0, mode: 'structured' });

type Variant = { name: string; run(value: unknown): unknown };
const variants: Variant[] = [
  { name: 'JSON.stringify + JSON.parse (changes Dates to strings)', run: (v) => JSON.parse(JSON.stringify(v)) },
  {
    name: "codec, serializer 'auto'",
    run: (v) => {
      const e = auto.encode(v);
      return auto.decode(e.bytes, e.flags);
    },
  },
  {
    name: "codec, serializer 'structured'",
    run: (v) => {
      const e = structured.encode(v);
      return structured.decode(e.bytes, e.flags);
    },
  },
  {
    name: 'decode only (a hit), auto',
    run: (() => {
      const cache = new Map<unknown, { bytes: Buffer; flags: number }>();
      return (v: unknown) => {
        let e = cache.get(v);
        if (!e) cache.set(v, (e = auto.encode(v)));
        return auto.decode(e.bytes, e.flags);
      };
    })(),
  },
];

function measure(variant: Variant, value: unknown): number {
  for (let i = 0; i < 200; i++) variant.run(value);
  let ops = 0;
  const started = performance.now();
  while (performance.now() - started < CELL_MS) {
    for (let i = 0; i < 50; i++) variant.run(value);
    ops += 50;
  }
  return ((performance.now() - started) * 1000) / ops;
}

const results = new Map<string, number[]>();
for (const [shape, value] of Object.entries(shapes)) {
  await interleave(variants, ROUNDS, async (variant) => {
    const key = `${shape}\u0000${variant.name}`;
    results.set(key, [...(results.get(key) ?? []), measure(variant, value)]);
  });
}

const rows: string[][] = [];
for (const shape of Object.keys(shapes)) {
  const base = results.get(`${shape}\u0000${variants[0].name}`)!;
  for (const variant of variants) {
    const us = results.get(`${shape}\u0000${variant.name}`)!;
    rows.push([
      shape,
      variant.name,
      cell(us, 1),
      cell(
        us.map((x, i) => x / base[i]),
        2,
      ),
    ]);
  }
}
console.log(
  `# Value codec cost\n\n${machineNotes()}; ${ROUNDS} rounds x ${CELL_MS} ms per cell, variants rotated each round; median [min–max].\n`,
);
console.log(table(['value', 'variant', 'µs per encode + decode', 'vs JSON'], rows));
