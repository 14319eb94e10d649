import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const lib = new URL('../../lib/', import.meta.url).pathname;

/**
 * The layers of lib/, bottom first (docs/architecture.md). A file may import its own layer or
 * any layer below it, never one above.
 */
const LAYERS: Array<[number, RegExp]> = [
  [0, /^(utils|interfaces|codec|config|stats|tracing)\/|^memcached\.(messages|errors)\.ts$/],
  [1, /^transport\//],
  [2, /^(cluster|near|bus)\//],
  [3, /^client\//],
  [4, /^cache\//],
  [5, /^(decorators|interceptors|explorers|nest)\/|^memcached\.constants\.ts$/],
  [6, /^(testing|prometheus|terminus|otel)\/|^memcached\.(module|module-definition|providers)\.ts$|^index\.ts$/],
];

function layerOf(file: string): number {
  const found = LAYERS.find(([, pattern]) => pattern.test(file));
  if (!found) throw new Error(`${file} is in no layer: add it to LAYERS and docs/architecture.md`);
  return found[0];
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('lib/ layers', () => {
  it('no file imports from a layer above its own (type-only imports included)', () => {
    const upward: string[] = [];
    for (const path of files(lib)) {
      const from = relative(lib, path);
      const text = readFileSync(path, 'utf8');
      for (const [, spec] of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"](\.[^'"]+)['"]/g)) {
        const to = relative(lib, resolve(dirname(path), spec.replace(/\.js$/, '.ts')));
        if (layerOf(to) > layerOf(from)) upward.push(`${from} -> ${to}`);
      }
    }
    expect(upward).toStrictEqual([]);
  });

  // counted in Prettier-formatted lines (120 columns), which wraps what used to run past the margin
  it('no file in lib/ is longer than 500 lines', () => {
    const long = files(lib)
      .map((path) => [relative(lib, path), readFileSync(path, 'utf8').split('\n').length] as const)
      .filter(([, lines]) => lines > 500);
    expect(long).toStrictEqual([]);
  });
});
