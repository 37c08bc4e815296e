// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the
// on-disk records. Same contract as native/crc32c.h: `crc` is a finished
// value (0 for "nothing yet"), so crc32c(b, crc32c(a)) === crc32c(a + b).
//
// Slicing-by-8: eight tables let each step fold 8 bytes with independent
// lookups; several times faster than byte-at-a-time in V8.

const POLY = 0x82f63b78;

// TABLES[k * 256 + b] = CRC of byte b followed by k zero bytes.
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let b = 0; b < 256; b++) {
      const prev = t[(k - 1) * 256 + b];
      t[k * 256 + b] = ((prev >>> 8) ^ t[prev & 0xff]) >>> 0;
    }
  }
  return t;
})();

export function crc32c(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  for (; i < end8; i += 8) {
    const lo = c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    c =
      t[7 * 256 + (lo & 0xff)] ^
      t[6 * 256 + ((lo >>> 8) & 0xff)] ^
      t[5 * 256 + ((lo >>> 16) & 0xff)] ^
      t[4 * 256 + (lo >>> 24)] ^
      t[3 * 256 + data[i + 4]] ^
      t[2 * 256 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
  }
  for (; i < n; i++) c = (c >>> 8) ^ t[(c ^ data[i]) & 0xff];
  return ~c >>> 0;
}
