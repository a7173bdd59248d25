/**
 * The status page in a real headless browser (Debian's Chromium, driven by playwright-core): it
 * renders the members of a running 3-node cluster, and a stopped node shows as unreachable within
 * a few seconds. NEXUS_WRITE_SCREENSHOT=1 keeps the page's screenshot as
 * docs/images/status-page.png (otherwise it goes to a temporary folder).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";
import { createNexusClient } from "../../src/api/client.js";
import { freePort } from "../free-port.js";
import type { SqliteNode } from "../e2e/programs.js";
import { ROOT, leaderUrl, sqliteCluster, tempDir, until } from "../e2e/programs.js";

/** Debian's package; CI installs it (apt-get install chromium). */
const CHROMIUM = process.env["NEXUS_CHROMIUM"] ?? "/usr/bin/chromium";

describe("the status page in Chromium", { timeout: 180_000 }, async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set NEXUS_CHROMIUM`,
  );
  const nodes: SqliteNode[] = await sqliteCluster(3, ["-nexus-consistency-check-interval=2s"]);
  const httpPorts = [await freePort(), await freePort(), await freePort()];
  const held: { browser?: Browser } = {};
  after(async () => {
    await held.browser?.close();
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(nodes.map((n, i) => n.start([`-http-port=${httpPorts[i]}`])));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  held.browser = browser;

  it("shows every member, and a stopped node as unreachable within seconds", async () => {
    // A page on a node that stays up, watching a follower that will stop.
    const lead = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (u) => u !== "",
    );
    const pageAt = nodes.findIndex((n) => n.url === lead);
    const victim = nodes.find((n) => n.url !== lead)!;
    // Some load, so the charts have something to show.
    const c = createNexusClient(nodes[pageAt]!.addr, { timeoutMs: 20_000 });
    const enc = new TextEncoder();
    await c.save(enc.encode("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)"));
    for (let i = 0; i < 40; i++) {
      await c.save(enc.encode(`INSERT INTO t (v) VALUES ('v${i}')`));
      if (i % 4 === 0) await c.load(enc.encode("SELECT count(*) FROM t"));
    }
    c.close();

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${httpPorts[pageAt]}/`);
    const row = (url: string): string => `#members tr[data-member="${url}"]`;
    for (const n of nodes) {
      await page.waitForSelector(`${row(n.url)}`, { timeout: 10_000 });
    }
    assert.equal(await page.locator("#members tr").count(), 3);
    await page.waitForSelector(`${row(victim.url)}[data-reachable="true"]`, { timeout: 10_000 });
    assert.match(await page.locator(row(lead)).innerText(), /leader/);
    assert.match(await page.locator("#ready").innerText(), /^ready$/);
    assert.match(await page.locator("#self").innerText(), /Applied index/);
    await page.locator("#check", { hasText: /Index \d+ · complete/ }).waitFor({ timeout: 15_000 });
    // The charts drew lines.
    assert.ok((await page.locator("#save-rate polyline").count()) >= 1);
    const shot =
      process.env["NEXUS_WRITE_SCREENSHOT"] === "1"
        ? join(ROOT, "docs", "images", "status-page.png")
        : join(tempDir("nexus-page-"), "status-page.png");
    mkdirSync(join(shot, ".."), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);

    const stoppedAt = Date.now();
    await victim.stop("SIGKILL");
    await page.waitForSelector(`${row(victim.url)}[data-reachable="false"]`, { timeout: 8000 });
    const seconds = (Date.now() - stoppedAt) / 1000;
    assert.match(await page.locator(row(victim.url)).innerText(), /unreachable/);
    assert.ok(seconds < 8, `unreachable after ${seconds} s`);
    assert.deepEqual(errors, [], "no script errors on the page");
  });
});
