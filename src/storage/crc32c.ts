/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven with slicing-by-8: the
 * checksum of every WAL record and snapshot file.
 */

const POLY = 0x82f63b78;
const T = new Uint32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c >>> 0;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c >>> 0;
  }
}

/**
 * Updates a CRC-32C with bytes [start, end) of buf. Start from 0 for a fresh checksum; the
 * result of one call can be passed to the next to checksum data in pieces.
 */
export function crc32c(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  let c = ~crc >>> 0;
  let i = start;
  const n8 = end - ((end - start) & 7);
  while (i < n8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c =
      T[7 * 256 + (a & 0xff)]! ^
      T[6 * 256 + ((a >>> 8) & 0xff)]! ^
      T[5 * 256 + ((a >>> 16) & 0xff)]! ^
      T[4 * 256 + (a >>> 24)]! ^
      T[3 * 256 + (b & 0xff)]! ^
      T[2 * 256 + ((b >>> 8) & 0xff)]! ^
      T[256 + ((b >>> 16) & 0xff)]! ^
      T[b >>> 24]!;
    i += 8;
  }
  while (i < end) {
    c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}
