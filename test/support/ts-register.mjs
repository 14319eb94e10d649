// `node --import ./test/support/ts-register.mjs worker.ts`: runs TypeScript test workers in child
// processes, compiled by SWC with the decorator metadata Nest needs (as vitest does).
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
