import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

  it('ships dist with ESM and CommonJS entry points and their types, and no sources or tests', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const f of ['esm/index.js', 'esm/index.d.ts', 'cjs/index.js', 'cjs/index.d.ts', 'cjs/package.json']) {
      expect(files).toContain(`package/dist/${f}`);
    }
    expect(files.some((f) => f.startsWith('package/lib/') || f.startsWith('package/test/'))).toBe(false);
  });

  it('type-checks strictly: library, tests, sample app, and the decorators\' typed key functions', () => {
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  }, 120_000);

  it('works from a NestJS 11 CommonJS app and its Jest tests', () => {
    npm(['install', '--no-audit', '--no-fund', '--no-save', tarball], compat);
    const jest = spawnSync('npx', ['jest', '--ci'], {
      cwd: compat,
      env: { ...process.env, MEMCACHED_SERVERS: daemon.address, MEMCACHED_KEY_PREFIX: 'nest11:' },
      encoding: 'utf8',
    });
    expect(jest.stderr).toMatch(/Tests:\s+1 passed, 1 total/);
    expect(jest.status).toBe(0);
    const installed = JSON.parse(readFileSync(join(compat, 'node_modules/@nestjs/common/package.json'), 'utf8'));
    expect(installed.version).toMatch(/^11\./);
  }, 300_000);
});
