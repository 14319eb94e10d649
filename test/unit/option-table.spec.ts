import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { MEMCACHED_ENV_VARIABLES } from '../../lib/config/memcached-env.js';
import { passwordOf, resolveOptions } from '../../lib/config/memcached-options.js';
import { OPTION_TABLE, type OptionRow, optionReference } from '../../lib/config/option-table.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('the option table is the one source of the options', () => {
  it("docs/configuration.md shows the table's reference (npm run docs:options writes it)", () => {
    const docs = read('docs/configuration.md');
    const start = '<!-- option reference: written by npm run docs:options -->\n';
    const section = docs.slice(
      docs.indexOf(start) + start.length,
      docs.indexOf('\n<!-- end of the option reference -->'),
    );
    expect(section).toBe(optionReference());
  });

  it("each option's documentation states the default its row applies", () => {
    const source = read('lib/config/option-table.ts');
    const table = source.slice(source.indexOf('export const OPTION_TABLE = {'));
    for (const [name, row] of Object.entries(OPTION_TABLE as Record<string, OptionRow>)) {
      const at = table.search(new RegExp(`\\n  ${name}: \\{`));
      expect(at, `${name} has a row`).toBeGreaterThan(0);
      const doc = table.slice(table.lastIndexOf('/**', at), at);
      expect(doc, `${name} is documented`).toMatch(/\*\//);
      if (row.default === undefined) continue;
      // the last "Default x." of the comment ("Default TTL in seconds ... Default 60.")
      const stated = [...doc.replace(/\s+\*\s+/g, ' ').matchAll(/\bDefault `?([^`\s]*?)`?[.,:]?(?=\s|$)/g)].at(-1)?.[1];
      expect(stated, `${name}'s documented default`).toBe(row.default === '' ? "''" : String(row.default));
    }
  });

  it('every variable names its option, and every option with variables is read from them', () => {
    for (const [variable, option] of Object.entries(MEMCACHED_ENV_VARIABLES)) {
      expect(variable).toMatch(/^MEMCACHED_[A-Z_]+$/);
      expect((OPTION_TABLE as Record<string, OptionRow>)[option].env).toContain(variable);
    }
  });

  // a value each kind accepts that is not its default, so a plain option that is validated but not
  // carried to the client (or carried under another name) fails here
  const other = (row: OptionRow): unknown => {
    switch (row.kind.type) {
      case 'number':
        return row.default === row.kind.bound.max ? row.kind.bound.min : row.kind.bound.max;
      case 'boolean':
        return !row.default;
      case 'choice':
        return row.kind.choices.find((c) => c !== row.default);
      case 'text':
        return 'x';
      case 'structured':
        return undefined;
    }
  };

  it('every plain option given reaches the resolved options; left out, its default does', () => {
    const plain = Object.entries(OPTION_TABLE as Record<string, OptionRow>).filter(
      ([, row]) => row.kind.type !== 'structured',
    );
    expect(plain.length).toBeGreaterThan(10);
    const defaults = resolveOptions({}) as unknown as Record<string, unknown>;
    for (const [name, row] of plain) {
      const value = other(row);
      const resolved = resolveOptions({ [name]: value }) as unknown as Record<string, unknown>;
      if (name === 'password') {
        expect(passwordOf(resolved as never)).toBe(value);
        expect(resolved).not.toHaveProperty('password');
        continue;
      }
      // ttl is rounded up to whole seconds; its bounds are whole
      expect(resolved[name], name).toBe(value);
      if (row.default !== undefined && name !== 'connectTimeout') expect(defaults[name], name).toBe(row.default);
    }
  });

  it('false turns compression off; other options refuse false', () => {
    expect(resolveOptions({ compressionThreshold: false }).compressionThreshold).toBe(0);
    expect(() => resolveOptions({ maxItemSize: false as never })).toThrow(/maxItemSize.*false/);
    expect(() => resolveOptions({ ttl: false as never })).toThrow(/ttl.*false/);
  });

  it("an editor shows each option's JSDoc on MemcachedModuleOptions", () => {
    // the public type is mapped from the table; a mapping that is not over `keyof` drops the docs
    const file = fileURLToPath(new URL('../../lib/interfaces/memcached-module-options.interface.ts', import.meta.url));
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    const source = program.getSourceFile(file)!;
    const alias = source.statements.find(
      (s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === 'MemcachedModuleOptions',
    )!;
    const type = checker.getTypeAtLocation(alias.name);
    const names = type.getProperties().map((p) => p.name);
    expect(names.sort()).toEqual(Object.keys(OPTION_TABLE).sort());
    for (const property of type.getProperties()) {
      const doc = ts.displayPartsToString(property.getDocumentationComment(checker));
      expect(doc.length, `${property.name} has its JSDoc`).toBeGreaterThan(10);
    }
  });
});
