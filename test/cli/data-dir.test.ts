import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LockedError, acquireLock, dataPaths, underTempDir } from "../../src/cli/data-dir.js";
import { freePort } from "../free-port.js";

const root = mkdtempSync(join(tmpdir(), "nexus-cli-data-"));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

/** A pid that is not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

describe("data folders", () => {
  it("one -data-dir holds the WAL and snapshots; the original's flags win when given", () => {
    const p = dataPaths({ dataDir: "/srv/n1" }, "00000000000000ff");
    assert.equal(p.logDir, "/srv/n1/wal");
    assert.equal(p.snapDir, "/srv/n1/snap");
    assert.equal(p.lockFile, "/srv/n1/wal/node_255.lock");
    const q = dataPaths({ dataDir: "/srv/n1", logDir: "/a/logs" }, "00000000000000ff");
    assert.equal(q.logDir, "/a/logs");
    assert.equal(q.snapDir, "/srv/n1/snap");
    assert.equal(
      dataPaths({}, "00000000000000ff").dataDir,
      join(process.cwd(), "nexus-data", "00000000000000ff"),
    );
  });

  it("knows a temporary folder, also through a path not created yet", () => {
    assert.ok(underTempDir("/tmp/logs"));
    assert.ok(underTempDir("/var/tmp/x/y"));
    assert.ok(underTempDir(join(tmpdir(), "a", "b")));
    assert.ok(!underTempDir("/srv/nexus"));
    assert.ok(!underTempDir("/tmpfoo/x"));
  });

  it("a lock held by a live process refuses another, naming its pid; a dead one's is taken over", () => {
    const file = join(root, "locks", "node_1.lock");
    mkdirSync(join(root, "locks"), { recursive: true });
    // Held by a live process (this test's parent shell, say: pid 1 is always alive).
    writeFileSync(file, `${process.ppid}\n`);
    assert.throws(
      () => acquireLock(file, "the data"),
      (e: unknown) =>
        e instanceof LockedError &&
        e.holder === process.ppid &&
        e.message.includes(`pid ${process.ppid}`),
    );
    // Left by a process that is gone: taken over, and released.
    writeFileSync(file, `${deadPid()}\n`);
    const l = acquireLock(file, "the data");
    assert.equal(readFileSync(file, "utf8").split("\n")[0], String(process.pid));
    l.release();
    assert.ok(!existsSync(file));
    assert.ok(existsSync(join(root, "locks")), "a folder that was there stays");
    // Folders made for the lock go again when nothing else was written in them.
    const deep = join(root, "fresh", "a", "wal", "node_1.lock");
    acquireLock(deep, "the data").release();
    assert.ok(!existsSync(join(root, "fresh")));
  });
});

interface Node {
  proc: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

function startNode(args: string[], cwd: string): Node {
  const proc = spawn(process.execPath, [join(process.cwd(), "bin/sqlite_repl"), ...args], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  const n: Node = { proc, out: "", exited: new Promise((r) => proc.once("exit", (c) => r(c))) };
  proc.stdout!.on("data", (b: Buffer) => (n.out += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (n.out += b.toString()));
  return n;
}

async function serving(n: Node): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!n.out.includes("serving gRPC")) {
    if (n.proc.exitCode !== null) throw new Error(`exited ${n.proc.exitCode}: ${n.out}`);
    if (Date.now() > deadline) throw new Error(`not serving in 30 s: ${n.out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a node's data folder, with real processes", () => {
  it("defaults to ./nexus-data/<id>, warns under a temp folder, refuses a second process, and a SIGKILLed holder's lock is taken over", async () => {
    const cwd = join(root, "cwd");
    mkdirSync(cwd, { recursive: true });
    const raft = await freePort();
    const flags = (grpc: number): string[] => [
      `-nexus-node-url=http://127.0.0.1:${raft}`,
      `-nexus-cluster-url=http://127.0.0.1:${raft}`,
      `-grpcPort=${grpc}`,
      "-grpcHost=127.0.0.1",
      "-log-level=warn",
    ];
    const first = startNode(flags(await freePort()), cwd);
    await serving(first);
    // Everything in ./nexus-data/<id>: WAL, snapshots, SQLite file and the lock.
    const ids = readdirSync(join(cwd, "nexus-data"));
    assert.equal(ids.length, 1);
    assert.match(ids[0]!, /^[0-9a-f]{16}$/);
    const dir = join(cwd, "nexus-data", ids[0]!);
    assert.deepEqual(
      readdirSync(dir)
        // SQLite's own files, and the store's temporary copy while a snapshot is taken (the node
        // takes one at start, its membership being new).
        .filter((f) => !/^store\.db-(wal|shm)$/.test(f) && !/^\.nexus-\w+-\d+-\d+\.db$/.test(f))
        .sort(),
      ["snap", "store.db", "wal"],
    );
    const lockName = readdirSync(join(dir, "wal")).find((f) => f.endsWith(".lock"));
    assert.ok(lockName !== undefined);
    assert.equal(
      readFileSync(join(dir, "wal", lockName), "utf8").split("\n")[0],
      String(first.proc.pid),
    );
    // Under the temp folder: the loud warning.
    assert.match(first.out, /WARNING: this node's data is under a temporary folder \(WAL .*\/wal/);
    // Logged too: stderr is a pipe, so JSON lines, with the level's name and an ISO time.
    assert.match(
      first.out,
      /\{"level":"warn","time":"\d{4}-\d\d-\d\dT[\d:.]+Z",.*"msg":"WARNING: this node's data/,
    );

    // wal repair refuses the WAL of a running node.
    const repair = spawnSync(
      process.execPath,
      ["bin/nexus", "wal", "repair", join(dir, "wal", lockName.replace(/\.lock$/, ""))],
      { encoding: "utf8" },
    );
    assert.equal(repair.status, 1, repair.stderr);
    assert.match(repair.stderr, new RegExp(`in use by another process \\(pid ${first.proc.pid};`));

    // A second process on the same folder is refused, naming the holder's pid.
    const second = startNode(flags(await freePort()), cwd);
    assert.equal(await second.exited, 1);
    assert.match(second.out, new RegExp(`in use by another process \\(pid ${first.proc.pid};`));
    assert.ok(!second.out.includes("serving gRPC"));

    // The holder dies without cleaning up: its stale lock is taken over by the next one.
    first.proc.kill("SIGKILL");
    await first.exited;
    assert.ok(existsSync(join(dir, "wal", lockName)));
    const third = startNode(flags(await freePort()), cwd);
    await serving(third);
    third.proc.kill("SIGTERM");
    assert.equal(await third.exited, 0);
    // A clean stop removes the lock.
    assert.ok(!existsSync(join(dir, "wal", lockName)), third.out);
  });

  it("the original's flags keep working and win: -nexus-log-dir, -nexus-snap-dir, -sqlitePath", async () => {
    const cwd = join(root, "cwd2");
    mkdirSync(cwd, { recursive: true });
    const raft = await freePort();
    const n = startNode(
      [
        `-nexus-node-url=http://127.0.0.1:${raft}`,
        `-nexus-cluster-url=http://127.0.0.1:${raft}`,
        `-grpcPort=${await freePort()}`,
        "-grpcHost=127.0.0.1",
        "-data-dir=d",
        `-nexus-log-dir=${join(cwd, "L")}`,
        `-sqlitePath=${join(cwd, "S", "x.db")}`,
        "-log-level=warn",
      ],
      cwd,
    );
    await serving(n);
    n.proc.kill("SIGTERM");
    assert.equal(await n.exited, 0, n.out);
    assert.match(readdirSync(join(cwd, "L")).join(","), /node_\d+/);
    assert.ok(existsSync(join(cwd, "S", "x.db")));
    assert.deepEqual(readdirSync(join(cwd, "d")), ["snap"]);
  });
});
