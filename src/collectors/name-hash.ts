// FNV-1a over a table's names as UTF-8 bytes: the schema, a zero byte, the table. Kept to 30 bits
// so that it stays a small integer in V8 (each kept name holds its hash).
const OFFSET = 0x811c9dc5;
const PRIME = 0x01000193;
const BITS = 0x3fffffff;

/** The hash of a table's names given as UTF-8 bytes: bytes[schemaStart, schemaEnd) and bytes[tableStart, tableEnd). */
export function hashNameBytes(bytes: Uint8Array, schemaStart: number, schemaEnd: number, tableStart: number, tableEnd: number): number {
  let hash = OFFSET;
  for (let i = schemaStart; i < schemaEnd; i += 1) hash = Math.imul(hash ^ bytes[i]!, PRIME);
  hash = Math.imul(hash, PRIME);
  for (let i = tableStart; i < tableEnd; i += 1) hash = Math.imul(hash ^ bytes[i]!, PRIME);
  return hash & BITS;
}

/** The same hash of a table's names given as strings. */
export function hashName(schema: string, table: string): number {
  const afterSchema = mixAscii(OFFSET, schema);
  const hash = afterSchema === null ? null : mixAscii(Math.imul(afterSchema, PRIME), table);
  return hash === null ? encodedHash(schema, table) : hash & BITS;
}

/** The hash carried over a string's characters, which are its bytes while it is ASCII; else null. */
function mixAscii(start: number, text: string): number | null {
  let hash = start;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return null;
    hash = Math.imul(hash ^ code, PRIME);
  }
  return hash;
}

// Names that are not ASCII: their characters are not their bytes, so hash their encoding.
function encodedHash(schema: string, table: string): number {
  const bytes = Buffer.from(`${schema}\u0000${table}`, 'utf8');
  const schemaEnd = Buffer.byteLength(schema, 'utf8');
  return hashNameBytes(bytes, 0, schemaEnd, schemaEnd + 1, bytes.length);
}

/** Whether UTF-8 bytes[start, end) spell `text`; makes no string while the bytes are ASCII. */
export function spells(bytes: Uint8Array, start: number, end: number, text: string): boolean {
  for (let i = 0; i < end - start; i += 1) {
    const byte = bytes[start + i]!;
    // Up to here bytes and characters were the same; from a multi-byte character on, decode.
    if (byte >= 0x80) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8', start, end) === text;
    if (byte !== text.charCodeAt(i)) return false;
  }
  return end - start === text.length;
}
