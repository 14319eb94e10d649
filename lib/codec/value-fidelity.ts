/**
 * How a value can be stored without coming back changed: as JSON, only with structured
 * serialisation (Node's `v8.serialize`, which keeps Date, Map, Set, BigInt, typed arrays,
 * `undefined`, NaN, -0, sparse arrays and cycles), or not at all (class instances, functions,
 * symbols, errors, promises...: their type or their content would be lost). For a refusal, `where` is the path
 * to the first part that decided it, e.g. `.owner.createdAt` or `[3]`.
 */
export type Fidelity =
  { kind: 'json' } | { kind: 'structured'; what: string } | { kind: 'unsupported'; what: string; where: string };

const JSON_OK: Fidelity = { kind: 'json' };
const MAX_DEPTH = 1000;
/** Below this depth no cycle is looked for: one that exists is found past it, at most one lap later. */
const TRACK_FROM_DEPTH = 32;

const STRUCTURED_TYPES: Array<[Function, string]> = [
  [Date, 'a Date'],
  [RegExp, 'a RegExp'],
  [ArrayBuffer, 'an ArrayBuffer'],
  [DataView, 'a DataView'],
  [Number, 'a boxed number'],
  [String, 'a boxed string'],
  [Boolean, 'a boxed boolean'],
];

/** Checks a value before it is stored; see `Fidelity`. */
export function fidelityOf(value: unknown): Fidelity {
  if (isPlainJson(value, 0)) return JSON_OK;
  const state: WalkState = { structured: undefined, ancestors: new Set<object>() };
  const unsupported = walk(value, state, 0);
  if (unsupported !== undefined)
    return { kind: 'unsupported', what: unsupported.what, where: unsupported.path.reverse().join('') };
  return state.structured === undefined ? JSON_OK : { kind: 'structured', what: state.structured };
}

/**
 * The common case in one pass without bookkeeping: true only when every part is a string, a
 * boolean, null, a finite number other than -0, a plain object or an array, within
 * TRACK_FROM_DEPTH levels. False decides nothing; `walk` then finds out why. For-in without an
 * own-key check may also visit enumerable keys inherited from a polluted `Object.prototype`: more
 * to check, never less.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null) return isPlainPart(value, depth);
  if (depth >= TRACK_FROM_DEPTH) return false;
  const proto = Object.getPrototypeOf(value);
  if (proto === Array.prototype) {
    const array = value as unknown[];
    for (let i = 0; i < array.length; i++) {
      if (!isPlainPart(array[i], depth)) return false;
    }
    return true;
  }
  if (proto !== Object.prototype && proto !== null) return false;
  const record = value as Record<string, unknown>;
  for (const key in record) {
    if (!isPlainPart(record[key], depth)) return false;
  }
  return true;
}

/** One element or property of a container at `depth`; most common type first. */
function isPlainPart(item: unknown, depth: number): boolean {
  if (typeof item === 'string') return true;
  if (typeof item === 'number') return item - item === 0 && (item !== 0 || 1 / item > 0);
  if (typeof item === 'object') return item === null || isPlainJson(item, depth + 1);
  return typeof item === 'boolean';
}

interface WalkState {
  /** What first needed structured serialisation. */
  structured: string | undefined;
  ancestors: Set<object>;
}

interface Refusal {
  what: string;
  path: string[];
}

/** Returns a refusal (with the path built while unwinding), or undefined when the value can be kept. */
function walk(value: unknown, state: WalkState, depth: number): Refusal | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      if (!Number.isFinite(value) || Object.is(value, -0))
        needsStructured(state, String(Object.is(value, -0) ? '-0' : value));
      return undefined;
    case 'bigint':
      needsStructured(state, 'a BigInt');
      return undefined;
    case 'undefined':
      needsStructured(state, 'undefined');
      return undefined;
    case 'function':
      return { what: 'a function', path: [] };
    case 'symbol':
      return { what: 'a symbol', path: [] };
  }
  if (value === null) return undefined;
  const obj = value as object;
  if (depth > MAX_DEPTH) return { what: `a structure nested deeper than ${MAX_DEPTH} levels`, path: [] };
  if (depth >= TRACK_FROM_DEPTH && state.ancestors.has(obj)) {
    needsStructured(state, 'a circular reference');
    return undefined;
  }
  const proto = Object.getPrototypeOf(obj);
  if (proto === Object.prototype || proto === null) return walkEntries(obj, state, depth);
  if (proto === Array.prototype) {
    const array = obj as unknown[];
    const track = depth >= TRACK_FROM_DEPTH;
    if (track) state.ancestors.add(obj);
    for (let i = 0; i < array.length; i++) {
      const item = array[i];
      // a hole reads as undefined: only then is it worth asking whether the index exists
      if (item === undefined && !(i in array)) needsStructured(state, 'a sparse array');
      const refusal = walk(item, state, depth + 1);
      if (refusal) return (refusal.path.push(`[${i}]`), refusal);
    }
    if (track) state.ancestors.delete(obj);
    return undefined;
  }
  if (Buffer.isBuffer(obj) || ArrayBuffer.isView(obj)) {
    needsStructured(state, Buffer.isBuffer(obj) ? 'a Buffer' : `a ${obj.constructor.name}`);
    return undefined;
  }
  for (const [type, what] of STRUCTURED_TYPES) {
    if (proto === type.prototype) {
      needsStructured(state, what);
      return undefined;
    }
  }
  if (proto === Map.prototype) {
    needsStructured(state, 'a Map');
    if (depth >= TRACK_FROM_DEPTH) state.ancestors.add(obj);
    try {
      for (const [k, v] of obj as Map<unknown, unknown>) {
        const refusal = walk(k, state, depth + 1) ?? walk(v, state, depth + 1);
        if (refusal) return (refusal.path.push(`.get(${describeKey(k)})`), refusal);
      }
    } finally {
      state.ancestors.delete(obj);
    }
    return undefined;
  }
  if (proto === Set.prototype) {
    needsStructured(state, 'a Set');
    if (depth >= TRACK_FROM_DEPTH) state.ancestors.add(obj);
    try {
      for (const v of obj as Set<unknown>) {
        const refusal = walk(v, state, depth + 1);
        if (refusal) return (refusal.path.push('.values()'), refusal);
      }
    } finally {
      state.ancestors.delete(obj);
    }
    return undefined;
  }
  const name = (obj as { constructor?: { name?: string } }).constructor?.name;
  return {
    what: obj instanceof Error ? `an error (${name || 'Error'})` : `an instance of ${name || 'an anonymous class'}`,
    path: [],
  };
}

/** A plain object's own enumerable string keys (what JSON writes), without an array of them. */
function walkEntries(target: object, s: WalkState, d: number): Refusal | undefined {
  const track = d >= TRACK_FROM_DEPTH;
  if (track) s.ancestors.add(target);
  for (const key in target) {
    if (!Object.hasOwn(target, key)) continue;
    const refusal = walk((target as Record<string, unknown>)[key], s, d + 1);
    if (refusal) return (refusal.path.push(property(key)), refusal);
  }
  if (track) s.ancestors.delete(target);
  return undefined;
}

function needsStructured(state: WalkState, what: string): void {
  state.structured ??= what;
}

function property(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function describeKey(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(key).slice(0, 40) : typeof key;
}
