/**
 * The programs' command lines end to end: --help everywhere, bad flags and arguments, an
 * unreachable address, graceful shutdown on SIGTERM with a request in flight, `nexus status`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Nexus } from "../../src/api/gen/nexus_pb.js";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, ROOT, repl, run, sqliteCluster, tempDir, until, leaderUrl } from "./programs.js";
import { freePort } from "../free-port.js";

describe("command lines", () => {
  it("--help on every program and command prints usage and exits 0", async () => {
    for (const [prog, args, want] of [
      ["nexus", ["--help"], /serve .*\n.*repl .*\n.*status/s],
      ["nexus", ["serve", "--help"], /-store <string>[\s\S]*-sqlitePath/],
      ["nexus", ["repl", "-help"], /listNodes/],
      ["nexus", ["status", "-h"], /usage: nexus status/],
      ["nexus", ["local-cluster", "--help"], /-nodes <int>/],
      ["nexus", ["wal", "--help"], /usage: nexus wal repair/],
      ["sqlite_repl", ["--help"], /-nexus-cluster-url <string>[\s\S]*-sqlitePath <string>/],
      ["repl", ["--help"], /^Usage: repl/],
    ] as const) {
      const r = await run(prog, [...args]);
      assert.equal(r.code, 0, `${prog} ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, want, `${prog} ${args.join(" ")}`);
    }
  });

  it("--version on every program prints the package's name and version and exits 0", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      name: string;
      version: string;
      bin: Record<string, string>;
    };
    const programs = Object.keys(pkg.bin).sort();
    assert.deepEqual(programs, [
      "mysql_repl",
      "nexus",
      "nexus-raft",
      "redis_repl",
      "repl",
      "sqlite_repl",
    ]);
    const runs: [string, string[]][] = programs.map((p) => [p, ["--version"]]);
    runs.push(["nexus", ["version"]], ["repl", ["-version"]], ["sqlite_repl", ["-version"]]);
    for (const [prog, args] of runs) {
      const r = await run(prog, args);
      assert.equal(r.code, 0, `${prog} ${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, `nexus-raft ${pkg.version}\n`, `${prog} ${args.join(" ")}`);
    }
  });

  it("bad flags and arguments: a clear error, the usage, exit 2, and no node started", async () => {
    const port = await freePort();
    const node = [
      "-nexus-node-url",
      `http://127.0.0.1:${port}`,
      "-nexus-cluster-url",
      `http://127.0.0.1:${port}`,
    ];
    for (const [prog, args, want] of [
      [
        "sqlite_repl",
        [...node, "-grpcPort", "9121", "-redisPort", "6379"],
        /unknown flag -redisPort/,
      ],
      [
        "sqlite_repl",
        [...node, "-grpcPort=abc"],
        /-grpcPort must be an integer from 1 to 65535, got "abc"/,
      ],
      ["sqlite_repl", [...node], /flag -grpcPort is required/],
      [
        "sqlite_repl",
        ["-grpcPort=9121", "-nexus-cluster-url=http://127.0.0.1:1"],
        /-nexus-node-url is required/,
      ],
      [
        "sqlite_repl",
        ["-grpcPort=9121", "-nexus-node-url=127.0.0.1:1", "-nexus-cluster-url=http://127.0.0.1:1"],
        /127\.0\.0\.1:1/,
      ],
      [
        "sqlite_repl",
        [...node, "-grpcPort=9121", "-nexus-node-state=maybe"],
        /-nexus-node-state must be new, existing or auto/,
      ],
      [
        "sqlite_repl",
        [...node, "-grpcPort=9121", "-nexus-heartbeat-ms=100", "-nexus-election-ms=150"],
        /at least twice/,
      ],
      [
        "nexus",
        ["serve", ...node, "-grpcPort=9121", "-store=oracle"],
        /-store must be one of sqlite, redis, mysql, memory/,
      ],
      ["nexus", ["frobnicate"], /unknown command "frobnicate"/],
      ["repl", [], /give an address and a command/],
      ["repl", ["127.0.0.1:9121"], /give an address and a command/],
      ["repl", ["127.0.0.1", "listNodes"], /no valid port/],
      ["repl", ["127.0.0.1:9121", "dance"], /unknown command "dance"/],
      ["repl", ["127.0.0.1:9121", "addNode"], /<nodeAddr> must be provided/],
      ["repl", ["127.0.0.1:9121", "sqlite", "save"], /takes one SQL expression/],
      ["repl", ["127.0.0.1:9121", "sqlite", "upsert", "x"], /Unknown mode: upsert/],
      [
        "repl",
        ["127.0.0.1:9121", "redis", "save", "return 1"],
        /db.index=<num> and a Lua expression/,
      ],
      [
        "repl",
        ["-consistency=eventual", "127.0.0.1:9121", "sqlite", "load", "select 1"],
        /-consistency must be/,
      ],
      [
        "repl",
        ["-params=[1", "127.0.0.1:9121", "sqlite", "save", "select ?"],
        /-params must be a JSON array or object/,
      ],
    ] as const) {
      const r = await run(prog, [...args]);
      assert.equal(r.code, 2, `${prog} ${args.join(" ")}: exit ${r.code}, ${r.stderr}`);
      assert.match(r.stderr, want, `${prog} ${args.join(" ")}`);
      assert.doesNotMatch(r.stdout, /serving gRPC/);
    }
  });

  it("repl and status at an address where nothing listens: a clear message and exit 3", async () => {
    const addr = `127.0.0.1:${await freePort()}`;
    for (const args of [
      [addr, "listNodes"],
      [addr, "sqlite", "save", "create table t (x)"],
      [addr, "addNode", "http://127.0.0.1:9024"],
    ]) {
      const r = await repl(...args);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot reach the Nexus service at ${addr}.*ECONNREFUSED`));
    }
    const s = await run("nexus", ["status", addr]);
    assert.equal(s.code, 3);
    assert.match(s.stderr, /cannot reach/);
  });

  it("SIGTERM the moment a node says it serves: it stops cleanly and exits 0", async () => {
    // Whoever reads the "serving gRPC" line (a supervisor, a test) may signal at once.
    for (let i = 0; i < 3; i++) {
      const [node] = await sqliteCluster(1);
      await node!.start();
      const code = await node!.stop("SIGTERM");
      assert.equal(code, 0, `attempt ${i + 1}: exit ${String(code)}, ${node!.stderr}`);
      assert.match(
        node!.stderr,
        /SIGTERM: finishing in-flight requests and stopping[\s\S]*stopped/,
      );
    }
  });

  it("SIGTERM: a save in flight finishes, new calls are refused, the node exits 0; status reports the others", async () => {
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    const leader = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (l) => l !== "",
    );
    const target = nodes.find((n) => n.url !== leader)!;
    assert.equal((await repl(target.addr, "sqlite", "save", "create table t (x)")).code, 0);
    // A long statement in flight on the node we stop: a 3-million-row recursive insert, sent
    // through the generated gRPC client so that it is surely in flight when the signal comes.
    const client = createClient(Nexus, createGrpcTransport({ baseUrl: `http://${target.addr}` }));
    const sql =
      "insert into t with recursive c(i) as (select 1 union all select i + 1 from c where i < 3000000) select i from c";
    const t0 = Date.now();
    const inflight = client.save({ data: new TextEncoder().encode(sql), args: {} });
    await new Promise((r) => setTimeout(r, 200));
    const code = await target.stop("SIGTERM");
    const res = await inflight;
    assert.equal(
      new TextDecoder().decode(res.resData),
      '{"rowsAffected":3000000,"lastInsertId":3000000}',
    );
    // The statement was still running when the signal came.
    assert.ok(Date.now() - t0 > 400, `the save took only ${Date.now() - t0} ms`);
    assert.equal(code, 0, target.stderr);
    assert.match(target.stderr, /SIGTERM: finishing in-flight requests and stopping[\s\S]*stopped/);
    const after = await repl(target.addr, "listNodes");
    assert.equal(after.code, 3);

    const other = nodes.find((n) => n !== target)!;
    const st = await run("nexus", ["status", other.addr]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(
      st.stdout,
      new RegExp(
        `^${other.addr}: SERVING\nversion: \\d+\\.\\d+\\.\\d+\\S*\nleader: [0-9a-f]{16}\nmembers:\n`,
      ),
    );
    assert.equal(st.stdout.trimEnd().split("\n").length, 8);
    assert.match(st.stdout, /\nclient: nexus-raft \d+\.\d+\.\d+\S*\n$/);

    // The same as one JSON document for scripts, with the documented field names.
    const js = await run("nexus", ["status", "-o", "json", other.addr]);
    assert.equal(js.code, 0, js.stderr);
    const doc = JSON.parse(js.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc), [
      "address",
      "health",
      "serving",
      "reason",
      "leader",
      "node",
      "members",
      "client",
    ]);
    assert.equal(doc["health"], "SERVING");
    assert.equal(doc["serving"], true);
    assert.match(String(doc["leader"]), /^[0-9a-f]{16}$/);
    assert.equal((doc["members"] as unknown[]).length, 3);
    assert.deepEqual(Object.keys((doc["members"] as Record<string, unknown>[])[0]!), [
      "id",
      "url",
      "status",
    ]);
    assert.equal((doc["client"] as { name: string }).name, "nexus-raft");
    assert.equal(typeof (doc["node"] as { term: unknown }).term, "number");

    // repl listNodes -o json, the flag before the address or after the command.
    for (const args of [
      ["-o", "json", other.addr, "listNodes"],
      [other.addr, "listNodes", "-o", "json"],
    ]) {
      const ln = await repl(...args);
      assert.equal(ln.code, 0, ln.stderr);
      const list = JSON.parse(ln.stdout) as {
        leader: string;
        self: string;
        members: { id: string; url: string; role: string; isLeader: boolean }[];
      };
      assert.equal(list.leader, doc["leader"]);
      assert.equal(list.members.length, 3);
      assert.equal(list.members.filter((m) => m.isLeader).length, 1);
      assert.deepEqual(Object.keys(list.members[0]!), [
        "id",
        "url",
        "role",
        "isLeader",
        "reachable",
        "match",
        "lag",
        "snapshot",
      ]);
    }
    const bad = await repl(other.addr, "listNodes", "-o", "yaml");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /-o must be text or json, got "yaml"/);
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("npm start's nodes stop by themselves when their launcher is killed (SIGKILL), leaving nothing running", async () => {
    const dir = tempDir();
    const raft = 20000 + Math.floor(Math.random() * 20000);
    const grpc = raft + 10;
    const launcher = spawn(
      process.execPath,
      [BIN("nexus"), "local-cluster", "-dir", dir, `-raft-port=${raft}`, `-grpc-port=${grpc}`],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      let out = "";
      await new Promise<void>((resolve, reject) => {
        launcher.stdout!.on("data", (b: Buffer) => {
          out += b.toString();
          if (out.includes("Ctrl-C stops the cluster")) resolve();
        });
        launcher.once("exit", () => reject(new Error(`the cluster did not come up: ${out}`)));
      });
      const addrs = [0, 1, 2].map((i) => `127.0.0.1:${grpc + i}`);
      for (const a of addrs) assert.equal((await run("nexus", ["status", a])).code, 0);
      launcher.kill("SIGKILL");
      for (const a of addrs) {
        await until(
          `the node at ${a} to stop`,
          async () => (await run("nexus", ["status", "-timeout=2", a])).code,
          (code) => code === 3,
          20_000,
        );
      }
    } finally {
      if (launcher.exitCode === null) launcher.kill("SIGKILL");
      // Nodes left behind by a failure: their command lines name the test's folder.
      spawnSync("pkill", ["-KILL", "-f", dir]);
    }
  });
});
