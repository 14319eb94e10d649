import { execFileSync, spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedDaemon } from '../support/memcached-daemon.js';

const root = new URL('../../', import.meta.url).pathname;
const compat = join(root, 'test/compat/nest11');
/**
 * A command's exit status and output, run without blocking this test process: vitest's worker
 * must keep answering its runner while a build or an install runs for a minute.
 */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = options.timeout ? setTimeout(() => child.kill('SIGKILL'), options.timeout) : undefined;
    child.once('error', reject);
    child.once('close', (status) => {
      if (timer) clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function npm(args: string[], cwd: string): Promise<string> {
  const result = await run('npm', args, { cwd });
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

describe('the published package', () => {
  let daemon: MemcachedDaemon;
  let packDir: string;
  let tarball: string;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    await npm(['run', 'build'], root);
    packDir = mkdtempSync(join(tmpdir(), 'nestjs-memcached-pack-'));
    const out = await npm(['pack', '--json', '--pack-destination', packDir], root);
    tarball = join(packDir, JSON.parse(out)[0].filename);
  }, 120_000);
  afterAll(async () => {
    await daemon?.kill();
    if (packDir) rmSync(packDir, { recursive: true, force: true });
  });

  it('ships only the library: dist/esm and dist/cjs with their types, the README, its docs pages and package.json', async () => {
    // the sample app's build (npm run start:sample) goes elsewhere, so it never lands in dist
    await npm(['run', 'build:sample'], root);
    const out = await npm(['pack', '--dry-run', '--json'], root);
    const files = (JSON.parse(out)[0].files as Array<{ path: string }>).map((f) => f.path);
    for (const entry of ['', 'config/', 'prometheus/', 'terminus/', 'otel/']) {
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
      (f) =>
        !/^dist\/(esm|cjs)\//.test(f) &&
        !/^docs\/[a-z-]+\.md$/.test(f) &&
        !['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'].includes(f),
    );
    expect(strays).toStrictEqual([]);
    expect(files.some((f) => /^dist\/.*(sample|\.spec\.|\/test\/)/.test(f))).toBe(false);
    // every page the README links to is in the package, so its links work where it is installed
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const linked = [...readme.matchAll(/\]\((docs\/[a-z-]+\.md)(?:#[^)]*)?\)/g)].map(([, page]) => page);
    expect(linked.length).toBeGreaterThan(5);
    for (const page of new Set(linked)) expect(files).toContain(page);
  }, 120_000);

  it("type-checks strictly: library, tests, sample app, and the decorators' typed key functions", async () => {
    const tsc = await run(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'],
      {
        cwd: root,
      },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  }, 120_000);

  it('compiles every TypeScript example in the README and docs/*.md against the packed package', async () => {
    // every ```ts block is a whole program a reader can paste: each compiles as its own file
    const sources = [
      'README.md',
      ...readdirSync(join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ];
    const examples = sources.flatMap((source) =>
      [...readFileSync(join(root, source), 'utf8').matchAll(/^( *)```ts\n([\s\S]*?)^\1```/gm)].map(
        ([, indent, body], i) => ({
          file: `${source.replace(/\.md$/, '').replace(/\W+/g, '-')}-${i + 1}.ts`,
          body: body
            .split('\n')
            .map((line) => line.slice(indent.length))
            .join('\n'),
        }),
      ),
    );
    expect(examples.filter((e) => e.file.startsWith('README-')).length).toBeGreaterThanOrEqual(4);
    expect(examples.length).toBeGreaterThanOrEqual(30);
    // inside the repository, so the peers (Nest, rxjs, prom-client, ...) resolve from its node_modules;
    // nestjs-memcached itself resolves to the unpacked tarball
    const dir = mkdtempSync(join(root, '.readme-check-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      execFileSync('tar', ['-xzf', tarball, '-C', join(dir, 'node_modules')]);
      renameSync(join(dir, 'node_modules/package'), join(dir, 'node_modules/nestjs-memcached'));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      for (const { file, body } of examples) writeFileSync(join(dir, file), body);
      const compilerOptions = {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        // each example is a module of its own, so a missing import is an error, not a global
        moduleDetection: 'force',
        skipLibCheck: true,
        noEmit: true,
        types: ['node'],
      };
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }));
      const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], {});
      expect(tsc.stdout + tsc.stderr).toBe('');
      expect(tsc.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a missing optional peer fails at startup, naming the package and the install command', async () => {
    // outside the repository, so that nothing resolves from its node_modules but what is linked here
    const dir = mkdtempSync(join(tmpdir(), 'nestjs-memcached-peers-'));
    try {
      const modules = join(dir, 'node_modules');
      mkdirSync(join(modules, '@nestjs'), { recursive: true });
      execFileSync('tar', ['-xzf', tarball, '-C', modules]);
      renameSync(join(modules, 'package'), join(modules, 'nestjs-memcached'));
      for (const pkg of ['@nestjs/common', '@nestjs/core', 'rxjs', 'reflect-metadata', 'lru-cache']) {
        symlinkSync(join(root, 'node_modules', pkg), join(modules, pkg));
      }
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      const app = (imports: string, module: string) =>
        [
          "import 'reflect-metadata';",
          "import { Module } from '@nestjs/common';",
          "import { NestFactory } from '@nestjs/core';",
          imports,
          'class App {}',
          `Module({ imports: [${module}] })(App);`,
          'await NestFactory.createApplicationContext(App, { logger: false, abortOnError: false });',
          "console.log('started');",
        ].join('\n');
      const start = (file: string, source: string) => {
        writeFileSync(join(dir, file), source);
        return run(process.execPath, [file], { cwd: dir, timeout: 60_000 });
      };
      const servers = JSON.stringify(daemon.address);
      const bus = await start(
        'bus.mjs',
        app(
          "import { MemcachedModule } from 'nestjs-memcached';",
          `MemcachedModule.forRoot({ servers: ${servers}, logger: false, bus: { transport: 'nats' } })`,
        ),
      );
      expect(bus.stdout).not.toContain('started');
      expect(bus.status).not.toBe(0);
      expect(bus.stderr).toContain('needs the package @nats-io/transport-node');
      expect(bus.stderr).toContain('npm install @nats-io/transport-node');
      const metrics = await start(
        'metrics.mjs',
        app(
          "import { MemcachedModule } from 'nestjs-memcached';\n" +
            "import { MemcachedPrometheusModule } from 'nestjs-memcached/prometheus';",
          `MemcachedModule.forRoot({ servers: ${servers}, logger: false, isGlobal: true }), MemcachedPrometheusModule.forRoot()`,
        ),
      );
      expect(metrics.stdout).not.toContain('started');
      expect(metrics.status).not.toBe(0);
      expect(metrics.stderr).toContain('nestjs-memcached/prometheus needs the package prom-client');
      expect(metrics.stderr).toContain('npm install prom-client');
      // the same app with nothing optional configured starts
      const plain = await start(
        'plain.mjs',
        app(
          "import { MemcachedModule } from 'nestjs-memcached';",
          `MemcachedModule.forRoot({ servers: ${servers}, logger: false })`,
        ),
      );
      expect(plain.stderr).toBe('');
      expect(plain.stdout).toContain('started');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('works from a NestJS 11 CommonJS app and its Jest tests', async () => {
    await npm(['install', '--no-audit', '--no-fund', '--no-save', tarball], compat);
    const jest = await run('npx', ['jest', '--ci'], {
      cwd: compat,
      env: { ...process.env, MEMCACHED_SERVERS: daemon.address, MEMCACHED_KEY_PREFIX: 'nest11:' },
    });
    expect(jest.stderr).toMatch(/Tests:\s+3 passed, 3 total/);
    expect(jest.status).toBe(0);
    const installed = JSON.parse(readFileSync(join(compat, 'node_modules/@nestjs/common/package.json'), 'utf8'));
    expect(installed.version).toMatch(/^11\./);
  }, 300_000);
});
