/**
 * A sha256 fed through a 64 KiB buffer: digests frame every value (a tag byte, lengths before
 * bytes) and make millions of small writes, which one hash update per value would make slow.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";

/** Buffers small writes into one hash update per 64 KiB; `hex()` ends it. */
export class HashSink {
  private readonly buf = Buffer.allocUnsafe(64 * 1024);
  private n = 0;
  private readonly hash: Hash = createHash("sha256");

  private room(k: number): void {
    if (this.n + k > this.buf.length) this.flush();
  }
  /** Hands the buffered bytes to the hash. */
  flush(): void {
    if (this.n > 0) this.hash.update(this.buf.subarray(0, this.n));
    this.n = 0;
  }
  /** Flushes and returns the hash in lowercase hex. */
  hex(): string {
    this.flush();
    return this.hash.digest("hex");
  }
  /** One ASCII character: a frame's kind. */
  tag(ch: string): void {
    this.room(1);
    this.buf[this.n++] = ch.charCodeAt(0);
  }
  /** Big-endian fixed-size numbers. */
  u32(x: number): void {
    this.room(4);
    this.n = this.buf.writeUInt32BE(x, this.n);
  }
  i64(x: bigint): void {
    this.room(8);
    this.n = this.buf.writeBigInt64BE(x, this.n);
  }
  f64(x: number): void {
    this.room(8);
    this.n = this.buf.writeDoubleBE(x, this.n);
  }
  /** Bytes, after their length (u32). */
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    if (b.length > this.buf.length / 4) {
      this.flush();
      this.hash.update(b);
      return;
    }
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  /** A string's UTF-8 bytes, after their length (u32). */
  text(s: string): void {
    const len = Buffer.byteLength(s, "utf8");
    this.u32(len);
    if (len > this.buf.length / 4) {
      this.flush();
      this.hash.update(s, "utf8");
      return;
    }
    this.room(len);
    this.n += this.buf.write(s, this.n, "utf8");
  }
}
