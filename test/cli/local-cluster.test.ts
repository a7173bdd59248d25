/**
 * The newcomer's cluster (`npm start`) with real processes: a node killed (by SIGTERM or SIGKILL)
 * is reported with how it ended while the others go on serving; "restart <n>" starts it again;
 * a second cluster on the same folder is refused by its lock, naming the first's pid.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "nexus-local-cluster-"));
const launched: ChildProcess[] = [];
after(() => {
  for (const c of launched) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Launched {
  proc: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

function launch(raft: number, grpc: number): Launched {
  const proc = spawn(
    process.execPath,
    ["bin/nexus", "local-cluster", "-dir", dir, `-raft-port=${raft}`, `-grpc-port=${grpc}`],
    { stdio: ["pipe", "pipe", "pipe"], detached: true },
  );
  launched.push(proc);
  const l: Launched = { proc, out: "", exited: new Promise((r) => proc.once("exit", (c) => r(c))) };
  proc.stdout!.on("data", (b: Buffer) => (l.out += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (l.out += b.toString()));
  return l;
}

async function until(
  l: Launched,
  re: RegExp,
  what: string,
  ms = 60_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(l.out);
    if (m !== null) return m;
    if (Date.now() > deadline) throw new Error(`no ${what} in ${ms} ms:\n${l.out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function save(grpc: number, sql: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ["bin/repl", `127.0.0.1:${grpc}`, "sqlite", "save", sql], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe("npm start's local cluster", () => {
  it("a killed node leaves the others running, is described, can be restarted; the folder is locked", async () => {
    let cluster: Launched | undefined;
    let raft = 0;
    let grpc = 0;
    for (let attempt = 0; attempt < 5 && cluster === undefined; attempt++) {
      raft = 20000 + Math.floor(Math.random() * 20000);
      grpc = raft + 10;
      const c = launch(raft, grpc);
      const ok = await Promise.race([
        until(c, /Ctrl-C stops the cluster/, "cluster", 90_000).then(() => true),
        c.exited.then(() => false),
      ]);
      if (ok) cluster = c;
    }
    assert.ok(cluster !== undefined, "the cluster did not come up");
    assert.match(cluster.out, /WARNING: the cluster's data .* is under a temporary folder/);
    const pids = [1, 2, 3].map((i) =>
      Number(cluster.out.match(new RegExp(`node ${i}: gRPC .* pid (\\d+)`))![1]),
    );
    assert.equal(save(grpc, "create table kv (k text primary key, v text)").code, 0);

    // Scripts read the cluster as JSON: nexus status -o json and repl listNodes -o json agree.
    const st = spawnSync(
      process.execPath,
      ["bin/nexus", "status", "-o", "json", `127.0.0.1:${grpc + 1}`],
      { encoding: "utf8" },
    );
    assert.equal(st.status, 0, st.stderr);
    const status = JSON.parse(st.stdout) as {
      serving: boolean;
      leader: string;
      members: { id: string }[];
      client: { version: string };
    };
    assert.equal(status.serving, true);
    assert.equal(status.members.length, 3);
    assert.match(status.client.version, /^\d+\.\d+\.\d+/);
    const ln = spawnSync(
      process.execPath,
      ["bin/repl", `127.0.0.1:${grpc}`, "listNodes", "-o", "json"],
      { encoding: "utf8" },
    );
    assert.equal(ln.status, 0, ln.stderr);
    const list = JSON.parse(ln.stdout) as { leader: string; members: { isLeader: boolean }[] };
    assert.equal(list.leader, status.leader);
    assert.equal(list.members.filter((m) => m.isLeader).length, 1);

    // SIGTERM to a node: it stops cleanly, the launcher and the others go on.
    process.kill(pids[1]!, "SIGTERM");
    await until(cluster, /node 2 exited with status 0 .*the others go on/, "node 2's end");
    assert.ok(alive(cluster.proc.pid!) && alive(pids[0]!) && alive(pids[2]!), cluster.out);
    const s1 = save(grpc + 2, "insert into kv values ('a', '1')");
    assert.equal(s1.code, 0, s1.out);

    // Restarted from the launcher's stdin, it serves again and catches up.
    cluster.proc.stdin!.write("restart 2\n");
    await until(cluster, /node 2 is serving again/, "node 2's restart");

    // SIGKILL: described as such.
    process.kill(pids[2]!, "SIGKILL");
    await until(cluster, /node 3 killed by SIGKILL .*the others go on/, "node 3's end");
    assert.ok(alive(cluster.proc.pid!) && alive(pids[0]!));
    const s2 = save(grpc + 1, "insert into kv values ('b', '2')");
    assert.equal(s2.code, 0, s2.out);
    cluster.proc.stdin!.write("restart 9\n");
    await until(cluster, /unknown command "restart 9"/, "a refusal");
    cluster.proc.stdin!.write("restart 3\n");
    await until(cluster, /node 3 is serving again/, "node 3's restart");

    // A second cluster on the same folder, on other ports, is refused by the folder's lock.
    const second = launch(raft + 100, grpc + 100);
    assert.equal(await second.exited, 1);
    assert.match(second.out, new RegExp(`in use by another process \\(pid ${cluster.proc.pid};`));

    // Ctrl-C stops every node, the restarted ones included, cleanly.
    cluster.proc.kill("SIGINT");
    assert.equal(await cluster.exited, 0, cluster.out);
    assert.match(cluster.out, /stopped \(node 1: 0, node 2: 0, node 3: 0\)/);
    for (const p of pids) assert.ok(!alive(p));
  });
});
