import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedDaemon } from '../support/memcached-daemon.js';

const root = new URL('../../', import.meta.url).pathname;
const compat = join(root, 'test/compat/nest11');
const npm = (args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) =>
  execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('the published package', () => {
  let daemon: MemcachedDaemon;
  let packDir: string;
  let tarball: string;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    npm(['run', 'build'], root);
    packDir = mkdtempSync(join(tmpdir(), 'nestjs-memcached-pack-'));
    const out = npm(['pack', '--json', '--pack-destination', packDir], root);
    tarball = join(packDir, JSON.parse(out)[0].filename);
  }, 120_000);
  afterAll(async () => {
    await daemon?.kill();
    if (packDir) rmSync(packDir, { recursive: true, force: true });
  });

  it('ships only the library: dist/esm and dist/cjs with their types, the README and package.json', () => {
    // the sample app's build (npm run start:sample) goes elsewhere, so it never lands in dist
    npm(['run', 'build:sample'], root);
    const out = npm(['pack', '--dry-run', '--json'], root);
    const files = (JSON.parse(out)[0].files as Array<{ path: string }>).map((f) => f.path);
    for (const entry of ['', 'config/', 'prometheus/', 'terminus/']) {
      for (const f of [
        `esm/${entry}index.js`,
        `esm/${entry}index.d.ts`,
        `cjs/${entry}index.js`,
        `cjs/${entry}index.d.ts`,
      ]) {
        expect(files).toContain(`dist/${f}`);
      }
    }
    expect(files).toContain('dist/cjs/package.json');
    const strays = files.filter(
      (f) => !/^dist\/(esm|cjs)\//.test(f) && !['package.json', 'README.md', 'LICENSE'].includes(f),
    );
    expect(strays).toStrictEqual([]);
    expect(files.some((f) => /sample|\.spec\.|\/test\//.test(f))).toBe(false);
  }, 120_000);

  it("type-checks strictly: library, tests, sample app, and the decorators' typed key functions", () => {
    const tsc = spawnSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  }, 120_000);

  it('compiles every TypeScript example in the README against the packed package', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/^( *)```ts\n([\s\S]*?)^\1```/gm)].map(([, indent, body]) =>
      body
        .split('\n')
        .map((line) => line.slice(indent.length))
        .join('\n'),
    );
    expect(blocks.length).toBeGreaterThanOrEqual(9);
    // inside the repository, so the peers (Nest, rxjs, prom-client, ...) resolve from its node_modules;
    // nestjs-memcached itself resolves to the unpacked tarball
    const dir = mkdtempSync(join(root, '.readme-check-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      execFileSync('tar', ['-xzf', tarball, '-C', join(dir, 'node_modules')]);
      renameSync(join(dir, 'node_modules/package'), join(dir, 'node_modules/nestjs-memcached'));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      blocks.forEach((block, i) => writeFileSync(join(dir, `example-${i + 1}.ts`), block));
      const compilerOptions = {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        skipLibCheck: true,
        noEmit: true,
        types: ['node'],
      };
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }));
      const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], {
        encoding: 'utf8',
      });
      expect(tsc.stdout + tsc.stderr).toBe('');
      expect(tsc.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('works from a NestJS 11 CommonJS app and its Jest tests', () => {
    npm(['install', '--no-audit', '--no-fund', '--no-save', tarball], compat);
    const jest = spawnSync('npx', ['jest', '--ci'], {
      cwd: compat,
      env: { ...process.env, MEMCACHED_SERVERS: daemon.address, MEMCACHED_KEY_PREFIX: 'nest11:' },
      encoding: 'utf8',
    });
    expect(jest.stderr).toMatch(/Tests:\s+2 passed, 2 total/);
    expect(jest.status).toBe(0);
    const installed = JSON.parse(readFileSync(join(compat, 'node_modules/@nestjs/common/package.json'), 'utf8'));
    expect(installed.version).toMatch(/^11\./);
  }, 300_000);
});
