import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** The bus transports' clients, loaded with a dynamic import by lib/bus/transports.ts only. */
const BROKER_CLIENTS = ['@nats-io/transport-node', 'amqplib', 'ioredis'];

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('package.json', () => {
  it('declares every package lib/ imports as a dependency or peer dependency', () => {
    const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
    const imported = new Set<string>();
    for (const file of sourceFiles(join(root, 'lib'))) {
      const text = readFileSync(file, 'utf8');
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm),
        ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
      ];
      for (const match of specifiers) {
        const spec = match[1];
        if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        imported.add(packageName(spec));
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].filter((name) => !declared.has(name))).toStrictEqual([]);
    // and nothing is installed for users that the library does not use
    expect(Object.keys(pkg.dependencies ?? {}).filter((name) => !imported.has(name))).toStrictEqual([]);
  });

  it('imports optional peers (@nestjs/config, prom-client, @nestjs/terminus, @opentelemetry/api) only behind their own entry points', () => {
    const optional = Object.keys(pkg.peerDependenciesMeta ?? {})
      .filter((name) => pkg.peerDependenciesMeta[name].optional)
      .filter((name) => !BROKER_CLIENTS.includes(name));
    // the only files that may import them, each reached only through its subpath export
    const allowed: Record<string, RegExp> = {
      '@nestjs/config': /\/lib\/config\/memcached\.config\.ts$/,
      'prom-client': /\/lib\/prometheus\//,
      '@nestjs/terminus': /\/lib\/terminus\//,
      '@opentelemetry/api': /\/lib\/otel\//,
    };
    const offenders = sourceFiles(join(root, 'lib')).flatMap((file) =>
      optional
        .filter((name) => readFileSync(file, 'utf8').includes(`from '${name}'`) && !allowed[name].test(file))
        .map((name) => `${file}: ${name}`),
    );
    expect(offenders).toStrictEqual([]);
    // and the main entry point does not reach those files
    const index = readFileSync(join(root, 'lib/index.ts'), 'utf8');
    expect(index).not.toMatch(/config\/(index|memcached\.config)|prometheus|terminus|otel/);
    expect(pkg.exports['./config'].import.default).toBe('./dist/esm/config/index.js');
    expect(pkg.exports['./prometheus'].import.default).toBe('./dist/esm/prometheus/index.js');
    expect(pkg.exports['./terminus'].require.default).toBe('./dist/cjs/terminus/index.js');
    expect(pkg.exports['./otel'].import.default).toBe('./dist/esm/otel/index.js');
  });

  it('loads the broker clients (optional peers) only when a bus transport is configured: no static import', () => {
    for (const name of BROKER_CLIENTS) expect(pkg.peerDependenciesMeta[name]?.optional).toBe(true);
    const offenders = sourceFiles(join(root, 'lib')).flatMap((file) => {
      const text = readFileSync(file, 'utf8');
      return BROKER_CLIENTS.filter(
        (name) =>
          new RegExp(`^\\s*import[^;]*from\\s*'${name}'`, 'm').test(text) ||
          (text.includes(`'${name}'`) && !file.endsWith('/lib/bus/transports.ts')),
      ).map((name) => `${file}: ${name}`);
    });
    expect(offenders).toStrictEqual([]);
    const transports = readFileSync(join(root, 'lib/bus/transports.ts'), 'utf8');
    for (const name of BROKER_CLIENTS) expect(transports).toContain(`await load<typeof import('${name}')>('${name}'`);
  });

  it('has exports with types for import and require', () => {
    const main = pkg.exports['.'];
    expect(main.import.types).toMatch(/\.d\.ts$/);
    expect(main.import.default).toMatch(/\.js$/);
    expect(main.require.types).toMatch(/\.d\.ts$/);
    expect(main.require.default).toMatch(/\.js$/);
    // the library, and the pages its README links to (checked against the packed file list in the package e2e)
    expect(pkg.files).toStrictEqual(['dist', 'docs/*.md', 'CHANGELOG.md']);
  });

  it('keeps Nest packages as peers that allow NestJS 11 and 12', () => {
    for (const name of ['@nestjs/common', '@nestjs/core']) {
      expect(pkg.peerDependencies[name]).toMatch(/\^11.*\^12/);
      expect(pkg.dependencies?.[name]).toBeUndefined();
    }
  });
});
