// `npm run docs:options`: writes the option reference into docs/configuration.md, between its
// markers, from lib/config/option-table.ts (a unit test fails while the two disagree).
import { readFileSync, writeFileSync } from 'node:fs';
import { optionReference } from '../lib/config/option-table.js';

const path = new URL('../docs/configuration.md', import.meta.url);
const START = '<!-- option reference: written by npm run docs:options -->';
const END = '<!-- end of the option reference -->';
const text = readFileSync(path, 'utf8');
const from = text.indexOf(START);
const to = text.indexOf(END);
if (from < 0 || to < from) throw new Error(`docs/configuration.md lacks the markers ${START} ... ${END}`);
writeFileSync(path, `${text.slice(0, from + START.length)}\n${optionReference()}\n${text.slice(to)}`);
console.log('docs/configuration.md: option reference written');
