import { fidelityOf } from './value-fidelity.js';
import { compress, inflate } from './inflate.js';

/**
 * pylibmc's flags (pylibmc 1.6, Python 3; pymemcache uses the same values). Integers travel as
 * decimal text, text as UTF-8, bytes as they are; zlib (not raw deflate) for compression. Other
 * JSON values carry `PYLIBMC_JSON`, a flag pylibmc does not define: a pylibmc subclass reads it
 * (see docs/sharing-a-pool.md). Pickles (pylibmc's default for floats, lists and dicts) cannot be read here.
 */
export const PylibmcFlag = { Bytes: 0, Pickle: 1, Integer: 2, Long: 4, Zlib: 8, Text: 16, Json: 0x100 } as const;

const INTEGER = /^-?[0-9]{1,40}$/;
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Thrown for a value the layout cannot keep; the codec turns it into `UnsupportedValueError`. */
export class PylibmcRefusal {
  constructor(
    readonly what: string,
    readonly where: string,
  ) {}
}

/** A value in pylibmc's layout; throws `PylibmcRefusal` for one that would come back changed. */
export function encodePylibmc(value: unknown, compressionThreshold: number): { bytes: Buffer; flags: number } {
  let bytes: Buffer;
  let flags: number;
  if (Buffer.isBuffer(value)) [bytes, flags] = [value, PylibmcFlag.Bytes];
  else if (typeof value === 'string' && value.isWellFormed())
    [bytes, flags] = [Buffer.from(value, 'utf8'), PylibmcFlag.Text];
  else if (typeof value === 'number' && Number.isSafeInteger(value) && !Object.is(value, -0))
    [bytes, flags] = [Buffer.from(String(value), 'latin1'), PylibmcFlag.Long];
  else if (typeof value === 'bigint') {
    // a small BigInt would come back as a number
    if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER))
      throw new PylibmcRefusal('a BigInt within the safe integer range', '');
    [bytes, flags] = [Buffer.from(value.toString(), 'latin1'), PylibmcFlag.Long];
  } else {
    const fidelity = fidelityOf(value);
    if (fidelity.kind === 'unsupported') throw new PylibmcRefusal(fidelity.what, fidelity.where);
    if (fidelity.kind === 'structured') throw new PylibmcRefusal(fidelity.what, '');
    [bytes, flags] = [Buffer.from(JSON.stringify(value), 'utf8'), PylibmcFlag.Json];
  }
  const compressed = compress(bytes, compressionThreshold, true);
  if (compressed !== undefined) return { bytes: compressed, flags: flags | PylibmcFlag.Zlib };
  return { bytes, flags };
}

/** A value pylibmc wrote, or `undefined` when it cannot be read (a pickle, an unknown flag, bad bytes). */
export function decodePylibmc(bytes: Buffer, flags: number): { value: unknown } | undefined {
  try {
    const body = flags & PylibmcFlag.Zlib ? inflate(bytes, true) : bytes;
    switch (flags & ~PylibmcFlag.Zlib) {
      case PylibmcFlag.Bytes:
        return { value: Buffer.from(body) };
      case PylibmcFlag.Text:
        return { value: fatalUtf8.decode(body) };
      case PylibmcFlag.Integer:
      case PylibmcFlag.Long: {
        const text = body.toString('latin1');
        if (!INTEGER.test(text)) return undefined;
        const big = BigInt(text);
        return {
          value: big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big,
        };
      }
      case PylibmcFlag.Json:
        return { value: JSON.parse(fatalUtf8.decode(body)) };
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
