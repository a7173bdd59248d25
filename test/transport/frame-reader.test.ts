import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FrameReader, frameOf } from "../../src/transport/frame-reader.js";

const b = (...xs: number[]): Uint8Array => new Uint8Array(xs);

/** Feeds pieces and collects every frame (as arrays of numbers). */
function feed(r: FrameReader, pieces: readonly Uint8Array[]): number[][] {
  const out: number[][] = [];
  for (const p of pieces) {
    r.push(p);
    for (let f = r.next(); f !== undefined; f = r.next()) out.push([...f]);
  }
  return out;
}

describe("FrameReader", () => {
  const stream = new Uint8Array(
    Buffer.concat([frameOf(b(1, 2, 3)), frameOf(b()), frameOf(b(9)), frameOf(b(4, 5))]),
  );
  const want = [[1, 2, 3], [], [9], [4, 5]];

  for (const c of [
    { name: "one piece", cut: (s: Uint8Array) => [s] },
    { name: "byte by byte", cut: (s: Uint8Array) => [...s].map((x) => b(x)) },
    {
      name: "cut inside a length prefix",
      cut: (s: Uint8Array) => [s.subarray(0, 2), s.subarray(2, 9), s.subarray(9)],
    },
    {
      name: "empty pieces in between",
      cut: (s: Uint8Array) => [b(), s.subarray(0, 5), b(), s.subarray(5)],
    },
  ]) {
    it(`returns every frame whole: ${c.name}`, () => {
      const r = new FrameReader(16);
      assert.deepEqual(feed(r, c.cut(stream)), want);
      assert.equal(r.pendingBytes, 0);
    });
  }

  it("waits for the rest of a partial frame and keeps what it has", () => {
    const r = new FrameReader(16);
    assert.deepEqual(feed(r, [frameOf(b(1, 2, 3)).subarray(0, 5)]), []);
    assert.equal(r.pendingBytes, 1);
    assert.deepEqual(feed(r, [b(2, 3)]), [[1, 2, 3]]);
  });

  it("refuses a frame longer than its limit as soon as the prefix is in (TOO_LARGE)", () => {
    const r = new FrameReader(3);
    r.push(b(0, 0, 0, 4));
    assert.throws(() => r.next(), { code: "TOO_LARGE", message: /4 bytes exceeds the limit of 3/ });
    const big = new FrameReader(100);
    big.push(b(0xff, 0xff, 0xff, 0xff));
    assert.throws(() => big.next(), { code: "TOO_LARGE", message: /4294967295 bytes/ });
  });

  it("hands over the bytes after a header frame (a snapshot stream's data), not in the middle of one", () => {
    const r = new FrameReader(16);
    r.push(new Uint8Array(Buffer.concat([frameOf(b(7)), Buffer.from([1, 2])])));
    r.push(b(3));
    assert.deepEqual([...r.next()!], [7]);
    assert.deepEqual(
      r.takeRest().flatMap((p) => [...p]),
      [1, 2, 3],
    );
    assert.equal(r.pendingBytes, 0);
    const mid = new FrameReader(16);
    mid.push(b(0, 0, 0, 5, 1));
    assert.equal(mid.next(), undefined);
    assert.throws(() => mid.takeRest(), { code: "INTERNAL" });
  });

  it("assembles a large frame sent in many small pieces (its cost: npm run bench -- peer-frames)", () => {
    const body = new Uint8Array(8 * 1024 * 1024).fill(5);
    const frame = frameOf(body);
    const r = new FrameReader(body.byteLength);
    let got: Uint8Array | undefined;
    for (let at = 0; at < frame.byteLength; at += 256) {
      r.push(frame.subarray(at, at + 256));
      got ??= r.next();
    }
    assert.equal(got?.byteLength, body.byteLength);
    assert.ok(got!.every((x) => x === 5));
  });
});
