/**
 * The README's walkthroughs must keep working: its library example (the TypeScript block that
 * calls createReplicator) runs with its import pointed at the source tree, the Raft core example
 * (moved to docs/raft-core.md) runs, and the newcomer's repl commands give the outputs shown.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { freePort } from "./free-port.js";

describe("README", () => {
  it("the library example runs against a single-node cluster", async () => {
    const readme = readFileSync("README.md", "utf8");
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const lib = blocks.find((b) => b.includes("createReplicator"));
    assert.ok(lib !== undefined, "README has no library example");
    const dir = mkdtempSync(join(tmpdir(), "nexus-readme-lib-"));
    try {
      const port = await freePort();
      const entry = pathToFileURL(resolve("src/index.ts")).href;
      const code = lib
        .replace('"nexus-raft"', JSON.stringify(entry))
        .replaceAll("19021", String(port))
        .replaceAll("/tmp/nexus-example", dir);
      const file = join(dir, "example.mts");
      writeFileSync(file, code);
      const res = spawnSync(process.execPath, ["--import", "tsx", file], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(res.status, 0, `example failed: ${res.stderr}`);
      assert.match(res.stdout, /\[\{"k":"hello","v":"world"\}\]/);
      assert.match(res.stdout, /\[\{"v":"there"\}\] true/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the Raft core example (docs/raft-core.md) runs and elects its single node", () => {
    const page = readFileSync("docs/raft-core.md", "utf8");
    const block = [...page.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((x) => x[1]!)
      .find((b) => b.includes("new RawNode"));
    assert.ok(block !== undefined, "docs/raft-core.md has no Raft core example");
    const m = [block, block] as const;
    const raftEntry = pathToFileURL(resolve("src/raft/index.ts")).href;
    const code =
      m[1]!.replace('"nexus-raft/raft"', JSON.stringify(raftEntry)) +
      '\nif (node.raft.state !== "leader") { console.error("not leader"); process.exit(3); }\n';
    const dir = mkdtempSync(join(tmpdir(), "nexus-readme-"));
    try {
      const file = join(dir, "example.ts");
      writeFileSync(file, code);
      const res = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8" });
      assert.equal(res.status, 0, `example failed: ${res.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the newcomer's path: npm start's cluster answers the README's repl commands as shown", async () => {
    const readme = readFileSync("README.md", "utf8");
    const at = readme.indexOf("<!-- newcomer-commands");
    assert.ok(at >= 0, "README has no newcomer commands");
    const block = /```console\n([\s\S]*?)```/.exec(readme.slice(at))![1]!;
    // "$ command" lines, each followed by its output.
    const steps: { cmd: string; out: string }[] = [];
    // Blank lines inside an output are part of it (listNodes prints one before its table).
    for (const line of block.replace(/\n$/, "").split("\n")) {
      if (line.startsWith("$ ")) steps.push({ cmd: line.slice(2), out: "" });
      else steps[steps.length - 1]!.out += `${line}\n`;
    }
    assert.ok(steps.length >= 5);

    const dir = mkdtempSync(join(tmpdir(), "nexus-readme-start-"));
    let cluster: ReturnType<typeof spawn> | undefined;
    try {
      // npm start's command on free ports (the README's 9021-9023 and 9121-9123 may be taken).
      let raft = 0;
      let grpc = 0;
      let out = "";
      for (let attempt = 0; attempt < 5 && cluster === undefined; attempt++) {
        raft = 20000 + Math.floor(Math.random() * 20000);
        grpc = raft + 10;
        out = "";
        const c = spawn(
          process.execPath,
          ["bin/nexus", "local-cluster", "-dir", dir, `-raft-port=${raft}`, `-grpc-port=${grpc}`],
          // Its own process group, so that a failed test kills its nodes too, not only it.
          { stdio: ["ignore", "pipe", "pipe"], detached: true },
        );
        const ok = await new Promise<boolean>((res) => {
          c.stdout!.on("data", (b: Buffer) => {
            out += b.toString();
            if (out.includes("Ctrl-C stops the cluster")) res(true);
          });
          c.stderr!.on("data", (b: Buffer) => (out += b.toString()));
          c.once("exit", () => res(false));
        });
        if (ok) cluster = c;
      }
      assert.ok(cluster !== undefined, `npm start's cluster did not come up: ${out}`);
      assert.match(out, new RegExp(`node 1: gRPC 127\\.0\\.0\\.1:${grpc}`));

      const norm = (t: string): string =>
        t
          .replace(/[0-9a-f]{16}/g, "<id>")
          .replace(/127\.0\.0\.1:\d+/g, "<addr>")
          .replace(/ \(leader\)/g, "")
          // nexus status ends with the client's version, which changes with every release.
          .replace(/^client: nexus-raft \S+\n/m, "")
          .replace(/ (leader|follower)$/gm, " <role>")
          // The index a request committed at depends on the elections before it.
          .replace(/ committed at index \d+,/g, " committed at index <n>,")
          // The role and progress table: which node leads, and the indexes, vary.
          .replace(
            /^(<id>) +(leader|follower|learner) +(yes|no|-) +(\d+|-) +(\d+|-)$/gm,
            "$1 <row>",
          )
          .replace(
            /^\(progress unknown: only the leader tracks it, and no leader answered\)\n/m,
            "",
          );
      for (const step of steps) {
        const cmd = step.cmd
          .replace(/127\.0\.0\.1:912(\d)/g, (_, d: string) => `127.0.0.1:${grpc + Number(d) - 1}`)
          .replace(/127\.0\.0\.1:902(\d)/g, (_, d: string) => `127.0.0.1:${raft + Number(d) - 1}`);
        const r = spawnSync("bash", ["-c", `${cmd} 2>&1`], { encoding: "utf8", timeout: 60_000 });
        assert.equal(norm(r.stdout), norm(step.out), `README step: ${step.cmd}`);
        assert.equal(r.status === 0, !step.out.includes("error"), `exit status of ${step.cmd}`);
        if (step.cmd.includes("listNodes"))
          assert.equal((r.stdout.match(/\(leader\)/g) ?? []).length, 1);
      }

      // Ctrl-C stops every node cleanly.
      const exited = new Promise<number | null>((res) => cluster!.once("exit", (c) => res(c)));
      cluster.kill("SIGINT");
      assert.equal(await exited, 0);
      assert.match(out, /stopped \(node 1: 0, node 2: 0, node 3: 0\)/);
    } finally {
      if (cluster?.pid !== undefined) {
        try {
          process.kill(-cluster.pid, "SIGKILL");
        } catch {
          // The group is gone: every node exited.
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
