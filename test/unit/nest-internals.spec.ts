import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { nestContract, RouteContext } from '../../lib/nest/nest-internals.js';

const LIB = join(import.meta.dirname, '../../lib');
const ADAPTER = 'nest/nest-internals.ts';

/** Every name of a Nest or Express internal the library has ever relied on. */
const INTERNALS = [
  "'path'",
  '__interceptors__',
  '__routeArguments__',
  '__sse__',
  '__renderTemplate__',
  '__redirect__',
  'microservices:pattern',
  'applicationConfig',
  'IncomingMessage',
  "['serveHttp']",
  'getGlobalRequestInterceptors',
  'etag fn',
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('one adapter owns every framework internal', () => {
  it(`only lib/${ADAPTER} names a Nest or Express internal`, () => {
    const found: string[] = [];
    for (const file of files(LIB)) {
      const name = relative(LIB, file);
      if (name === ADAPTER) continue;
      const text = readFileSync(file, 'utf8');
      for (const internal of INTERNALS) if (text.includes(internal)) found.push(`${name}: ${internal}`);
    }
    expect(found).toStrictEqual([]);
  });

  it('the installed Nest keeps the contract the route-handler path relies on', () => {
    expect(nestContract.check()).toBeUndefined();
  });

  it("a served route's context is the one Nest builds for the call: HTTP, its views over the same arguments", () => {
    const request = new IncomingMessage(new Socket());
    const response = { reply: true };
    const context = new RouteContext(request, response, class Controller {}, () => undefined);
    expect(context.getType()).toBe('http');
    expect(context.switchToHttp().getRequest()).toBe(request);
    expect(context.switchToHttp().getResponse()).toBe(response);
    expect(context.getArgByIndex(1)).toBe(response);
    // as Nest's ExecutionContextHost does on an HTTP route
    expect(context.switchToRpc().getData()).toBe(request);
    expect(context.switchToWs().getClient()).toBe(request);
  });
});
