import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { freePort } from "./free-port.js";

const ephemeralStart = Number(
  readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
);

describe("freePort", () => {
  it("hands out distinct bindable ports below the ephemeral range, skipping ports in use", async () => {
    const servers: Server[] = [];
    try {
      const seen = new Set<number>();
      for (let i = 0; i < 20; i++) {
        const p = await freePort();
        assert.ok(p >= 20_000 && p < ephemeralStart, `${p} is outside [20000, ${ephemeralStart})`);
        assert.ok(!seen.has(p), `${p} was handed out twice`);
        assert.ok(!seen.has(p - 1), `${p} is in use (occupied after ${p - 1} was handed out)`);
        seen.add(p);
        // Occupy it, and the port after it: the next call must not return either.
        for (const q of [p, p + 1]) {
          const s = createServer();
          await new Promise<void>((res) => {
            s.once("error", () => res());
            s.listen(q, "127.0.0.1", () => res());
          });
          servers.push(s);
        }
      }
      const p = await freePort();
      assert.ok(!seen.has(p) && !seen.has(p - 1), `${p} is next to or equal to a port in use`);
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  });
});
