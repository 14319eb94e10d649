import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '../..');
const ENTRY_POINTS = [
  'lib/index.ts',
  'lib/config/index.ts',
  'lib/prometheus/index.ts',
  'lib/terminus/index.ts',
  'lib/otel/index.ts',
];

function exportsOf(files: string[]): string[] {
  const program = ts.createProgram(
    files.map((f) => join(ROOT, f)),
    {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      experimentalDecorators: true,
      noResolve: false,
    },
  );
  const checker = program.getTypeChecker();
  return files.flatMap((file) => {
    const symbol = checker.getSymbolAtLocation(program.getSourceFile(join(ROOT, file))!)!;
    return checker.getExportsOfModule(symbol).map((s) => s.name);
  });
}

describe('the public API', () => {
  it('every export has a line in docs/api.md saying why a user reaches for it, and nothing else is listed', () => {
    const exported = new Set(exportsOf(ENTRY_POINTS));
    const rows = [...readFileSync(join(ROOT, 'docs/api.md'), 'utf8').matchAll(/^\| `([A-Za-z_]+)` \| (.+) \|$/gm)];
    const documented = new Map(rows.map(([, name, why]) => [name, why.trim()]));
    expect([...exported].filter((name) => !documented.has(name))).toStrictEqual([]);
    expect([...documented.keys()].filter((name) => !exported.has(name))).toStrictEqual([]);
    for (const [name, why] of documented) expect(why.length, name).toBeGreaterThan(10);
  });
});
