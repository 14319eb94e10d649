// `node --import ./scripts/ts-register.mjs file.ts`: runs TypeScript test workers and benchmarks in child
// processes, compiled by SWC with the decorator metadata Nest needs (as vitest does).
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
