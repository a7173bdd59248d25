#!/usr/bin/env node
// Summarises V8 CPU profiles (`node --cpu-prof`, e.g. `npm run bench -- vs-etcd --cpu-prof D`):
//
//   node scripts/cpu-profile-summary.mjs <file.cpuprofile | folder> [--top N] [--last S]
//
// A folder is searched for main-thread profiles (CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile; the
// other threads, such as tsx's module loader, are skipped). --last S keeps the samples of the S
// seconds before the profile's last 0.3 s (the load, without start-up and shutdown). For each
// profile: idle and busy time, self time by area (src/<room>, node_modules/<package>, node:
// internals, native), the top functions by self and by inclusive time, and busy time by entry:
// the first src/ frame from the root (what of the project's code a sample ran under).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function usage() {
  process.stderr.write(
    "usage: node scripts/cpu-profile-summary.mjs <file.cpuprofile | folder> [--top N] [--last S]\n",
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let target;
let top = 25;
let lastS = 0;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--top") top = Number(args[++i]);
  else if (args[i] === "--last") lastS = Number(args[++i]);
  else if (target === undefined) target = args[i];
  else usage();
}
if (target === undefined || !(top > 0) || !(lastS >= 0)) usage();

function profilesUnder(path) {
  if (!statSync(path).isDirectory()) return [path];
  const out = [];
  for (const name of readdirSync(path).sort()) {
    const p = join(path, name);
    if (statSync(p).isDirectory()) out.push(...profilesUnder(p));
    else if (/^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(name)) out.push(p);
  }
  return out;
}

function frameKey(f) {
  const url = f.url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|src|bench)\//, "$1/");
  return `${f.functionName || "(anonymous)"} ${url}${url === "" ? "" : `:${f.lineNumber + 1}`}`;
}

function areaOf(f) {
  if (f.url === "") return f.functionName.startsWith("(") ? f.functionName : "native";
  const m = f.url.match(/\/(node_modules\/(?:@[^/]+\/)?[^/]+|src\/[^/]+)/);
  if (m) return m[1];
  if (f.url.startsWith("node:")) return f.url.split("/")[0].replace(/:internal$/, ":internal");
  return "other";
}

const pct = (us, total) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;

function summarise(file) {
  const p = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const times = [];
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) times.push((t += p.timeDeltas[i]));
  const end = times[times.length - 1] ?? p.startTime;
  const from = lastS > 0 ? end - 300_000 - lastS * 1e6 : -Infinity;
  const to = lastS > 0 ? end - 300_000 : Infinity;
  const selfById = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    if (times[i] < from || times[i] > to) continue;
    const us = p.timeDeltas[i + 1] ?? 0;
    selfById.set(p.samples[i], (selfById.get(p.samples[i]) ?? 0) + us);
  }
  let total = 0;
  let idle = 0;
  const self = new Map();
  const incl = new Map();
  const area = new Map();
  const entry = new Map();
  const add = (m, k, us) => m.set(k, (m.get(k) ?? 0) + us);
  for (const [id, us] of selfById) {
    total += us;
    const node = byId.get(id);
    if (node.callFrame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    add(self, frameKey(node.callFrame), us);
    add(area, areaOf(node.callFrame), us);
    const chain = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur))
      chain.push(byId.get(cur).callFrame);
    const seen = new Set();
    for (const f of chain) {
      const k = frameKey(f);
      if (!seen.has(k)) add(incl, k, us);
      seen.add(k);
    }
    chain.reverse();
    const src = chain.find((f) => f.url.includes("/src/"));
    const first = chain[1] ?? chain[0];
    add(entry, src !== undefined ? frameKey(src) : `[${frameKey(first)}]`, us);
  }
  const busy = total - idle;
  const lines = [
    `${file}: ${(total / 1e6).toFixed(1)} s sampled, idle ${pct(idle, total)}, busy ${(busy / 1e6).toFixed(2)} s (percentages below are of busy time)`,
  ];
  const list = (title, m, n) => {
    lines.push(`-- ${title}`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      lines.push(`${pct(us, busy)} ${k}`);
    }
  };
  list("self time by area", area, 15);
  list("self time", self, top);
  list("inclusive time", incl, top);
  list("busy time by entry (first src/ frame from the root)", entry, top);
  return lines.join("\n");
}

const files = profilesUnder(target);
if (files.length === 0) {
  process.stderr.write(`no main-thread .cpuprofile under ${target}\n`);
  process.exit(1);
}
process.stdout.write(files.map(summarise).join("\n\n") + "\n");
