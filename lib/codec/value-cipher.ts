import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { EncodedValue } from './value.codec.js';
import { FLAGS_MAGIC } from './value.codec.js';

/** The item is encrypted: its body is `ValueCipher`'s envelope, its real flags are inside. */
export const FLAG_ENCRYPTED = 0x00001000;

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** version, key id, IV; then the ciphertext of (flags, body); then the tag. */
const HEADER_BYTES = 2 + IV_BYTES;
const AAD_LABEL = Buffer.from('nestjs-memcached:v1:', 'latin1');

export interface CipherKey {
  id: number;
  key: Buffer;
}

/**
 * AES-256-GCM for stored values. The body becomes `[1][key id][12-byte IV][ciphertext][16-byte
 * tag]`, where the plaintext is the item's flags followed by its body, so a reader learns neither
 * the type nor the layout. The associated data is the wire key and the stored flags: a ciphertext
 * copied to another key, or flags changed, fail authentication. The first key encrypts, every key
 * decrypts (rotation). IVs are random (96 bits), so one key should encrypt at most 2^32 values
 * (NIST SP 800-38D): at 1,000 writes a second, rotate within 7 weeks.
 */
export class ValueCipher {
  private readonly current: CipherKey;
  private readonly byId = new Map<number, Buffer>();

  constructor(keys: readonly CipherKey[]) {
    this.current = keys[0];
    for (const { id, key } of keys) this.byId.set(id, key);
  }

  seal(wire: string, encoded: EncodedValue): EncodedValue {
    const flags = (FLAGS_MAGIC | FLAG_ENCRYPTED) >>> 0;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(associatedData(wire, flags));
    const inner = Buffer.allocUnsafe(4);
    inner.writeUInt32BE(encoded.flags >>> 0, 0);
    const head = cipher.update(inner);
    const body = cipher.update(encoded.bytes);
    const tail = cipher.final();
    const out = Buffer.allocUnsafe(HEADER_BYTES + head.length + body.length + tail.length + TAG_BYTES);
    out[0] = VERSION;
    out[1] = this.current.id;
    iv.copy(out, 2);
    let at = HEADER_BYTES;
    at += head.copy(out, at);
    at += body.copy(out, at);
    at += tail.copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return { bytes: out, flags };
  }

  /** The item's real flags and body, or undefined when it is not ours to trust (not encrypted, unknown key, tampered). */
  open(wire: string, bytes: Buffer, flags: number): EncodedValue | undefined {
    if (flags >>> 0 !== (FLAGS_MAGIC | FLAG_ENCRYPTED) >>> 0) return undefined;
    if (bytes.length < HEADER_BYTES + 4 + TAG_BYTES || bytes[0] !== VERSION) return undefined;
    const key = this.byId.get(bytes[1]);
    if (key === undefined) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(2, HEADER_BYTES));
      decipher.setAAD(associatedData(wire, flags));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      const plain = decipher.update(bytes.subarray(HEADER_BYTES, bytes.length - TAG_BYTES));
      // GCM's final() checks the tag and returns no bytes
      decipher.final();
      return { flags: plain.readUInt32BE(0), bytes: plain.subarray(4) };
    } catch {
      return undefined;
    }
  }
}

function associatedData(wire: string, flags: number): Buffer {
  const out = Buffer.allocUnsafe(AAD_LABEL.length + 4 + Buffer.byteLength(wire, 'utf8'));
  AAD_LABEL.copy(out, 0);
  out.writeUInt32BE(flags, AAD_LABEL.length);
  out.write(wire, AAD_LABEL.length + 4, 'utf8');
  return out;
}
