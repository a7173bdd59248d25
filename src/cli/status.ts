/**
 * `nexus status <host:port>`: whether a node serves, and the members as it sees them.
 */
import { createNexusClient } from "../api/client.js";
import { isNexusError } from "../errors/index.js";
import { CLIENT_SECURITY_FLAGS, clientSecurityOf } from "./client-security-flags.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import { FlagError, bool, describeFlags, int, parseFlags } from "./flags.js";
import { OUTPUT_FLAG, outputFormat } from "./output.js";
import type { Io } from "./serve.js";
import { VERSION_FLAG, packageInfo, versionLine } from "./version.js";

const FLAGS: readonly FlagSpec[] = [
  { name: "timeout", kind: "int", min: 1, default: 10, help: "seconds to wait for an answer" },
  OUTPUT_FLAG,
  VERSION_FLAG,
  ...CLIENT_SECURITY_FLAGS,
];

export const STATUS_USAGE =
  "usage: nexus status [flags] <host:grpcPort>\n\n" +
  "Prints whether the node serves (SERVING or NOT_SERVING) and the cluster's members with their\n" +
  "status as the node sees them, the node's version and this client's. Exit status 0 when it\n" +
  "serves, 1 when not, 3 when unreachable. With -o json, one JSON object (see\n" +
  "docs/configuration.md).\n\n" +
  `flags:\n${describeFlags(FLAGS)}`;

export async function runStatus(argv: readonly string[], io: Io): Promise<number> {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv, FLAGS, { allowPositionals: true });
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`nexus status: ${err.message}\n\n${STATUS_USAGE}`);
    return EXIT.USAGE;
  }
  if (flags.help) {
    io.out(STATUS_USAGE);
    return EXIT.OK;
  }
  if (bool(flags, "version")) {
    io.out(versionLine());
    return EXIT.OK;
  }
  let json: boolean;
  try {
    json = outputFormat(flags) === "json";
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`nexus status: ${err.message}\n\n${STATUS_USAGE}`);
    return EXIT.USAGE;
  }
  if (flags.positionals.length !== 1) {
    io.err(`nexus status: give one address\n\n${STATUS_USAGE}`);
    return EXIT.USAGE;
  }
  let client;
  try {
    client = createNexusClient(flags.positionals[0]!, {
      timeoutMs: int(flags, "timeout")! * 1000,
      ...clientSecurityOf(flags),
    });
  } catch (err) {
    io.err(`nexus status: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  try {
    const health = await client.check();
    const { leader, nodes } = await client.listNodes();
    const own = await client.nodeStatus();
    const address = flags.positionals[0]!.trim();
    const code = health === "SERVING" ? EXIT.OK : EXIT.FAILED;
    if (json) {
      const doc: StatusJson = {
        address,
        health,
        serving: health === "SERVING",
        reason: own.reason,
        leader: leader === "" ? null : leader,
        node: {
          version: own.version === "" ? null : own.version,
          role: own.role,
          term: own.term,
          commit: own.commit,
          applied: own.applied,
          divergedAt: own.divergedAt ?? null,
          divergedReason: own.divergedReason,
        },
        members: nodes.map((n) => ({ id: n.id, url: n.url, status: n.status.toLowerCase() })),
        client: packageInfo(),
      };
      io.out(`${JSON.stringify(doc, null, 2)}\n`);
      return code;
    }
    io.out(`${address}: ${health}\n`);
    // Why it does not serve (a diverged replica says DIVERGED and at which check).
    if (own.reason !== "") io.out(`reason: ${own.reason}\n`);
    io.out(`version: ${own.version === "" ? "unknown (the node does not say)" : own.version}\n`);
    io.out(`leader: ${leader === "" ? "unknown" : leader}\n`);
    io.out("members:\n");
    for (const n of nodes) io.out(`${n.id} => ${n.url} ${n.status.toLowerCase()}\n`);
    io.out(`client: ${versionLine()}`);
    return code;
  } catch (err) {
    if (!isNexusError(err)) throw err;
    io.err(`nexus status: ${err.code}: ${err.message}\n`);
    return exitCodeOf(err.code);
  } finally {
    client.close();
  }
}

/**
 * `nexus status -o json`: field names are stable (documented in docs/configuration.md); new
 * fields may be added, none renamed or removed.
 */
export interface StatusJson {
  /** The address asked, as given. */
  readonly address: string;
  /** "SERVING" or "NOT_SERVING", as Check answers. */
  readonly health: string;
  readonly serving: boolean;
  /** Why it does not serve; "" when it does. */
  readonly reason: string;
  /** The leader's id as this node sees it, null when none is known. */
  readonly leader: string | null;
  /** The answering node's own view. */
  readonly node: {
    /** The version of nexus-raft the node runs; null when it does not say (an older node). */
    readonly version: string | null;
    readonly role: string;
    readonly term: number;
    readonly commit: number;
    readonly applied: number;
    readonly divergedAt: number | null;
    readonly divergedReason: string;
  };
  /** The members as this node sees them; status is the lower-cased member status. */
  readonly members: readonly {
    readonly id: string;
    readonly url: string;
    readonly status: string;
  }[];
  /** The package that printed this: {"name": "nexus-raft", "version": "0.1.0"}. */
  readonly client: { readonly name: string; readonly version: string };
}
