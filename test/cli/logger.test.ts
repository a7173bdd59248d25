import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCliLogger, defaultLogFormat, textLine } from "../../src/cli/logger.js";

const root = mkdtempSync(join(tmpdir(), "nexus-cli-logger-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Lines a logger in `format` writes for one info and one warn call, through a real file. */
function written(format: "json" | "text"): string[] {
  const file = join(root, `${format}.log`);
  const fd = openSync(file, "w");
  const log = createCliLogger("info", { node: "http://127.0.0.1:9021" }, format, fd);
  log.info({ term: 3, leader: "ab12" }, "became leader");
  log.warn({ error: "connection refused" }, "store down");
  log.debug({ x: 1 }, "not shown at info");
  closeSync(fd);
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "");
}

describe("the programs' log lines", () => {
  it("JSON: level names and ISO times, fields kept", () => {
    const lines = written("json").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!["level"], "info");
    assert.equal(lines[1]!["level"], "warn");
    assert.match(String(lines[0]!["time"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(lines[0]!["msg"], "became leader");
    assert.equal(lines[0]!["term"], 3);
    assert.equal(lines[0]!["node"], "http://127.0.0.1:9021");
  });

  it("text: time, level name, message, then the fields as key=value", () => {
    const lines = written("text");
    assert.equal(lines.length, 2);
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}became leader node=http:\/\/127\.0\.0\.1:9021 term=3 leader=ab12$/,
    );
    assert.match(lines[1]!, / WARN {2}store down .*error="connection refused"$/);
    assert.ok(!lines.join("\n").includes("pid="), "the pid is left out of text lines");
  });

  it("text on a terminal, JSON otherwise", () => {
    assert.equal(defaultLogFormat(true), "text");
    assert.equal(defaultLogFormat(false), "json");
  });

  it("a line that is not JSON passes through", () => {
    assert.equal(textLine("plain"), "plain\n");
  });
});
