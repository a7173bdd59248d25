/**
 * `nexus status <host:port>`: whether a node serves, and the members as it sees them.
 */
import { createNexusClient } from "../api/client.js";
import { isNexusError } from "../errors/index.js";
import { CLIENT_SECURITY_FLAGS, clientSecurityOf } from "./client-security-flags.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import { FlagError, describeFlags, int, parseFlags } from "./flags.js";
import type { Io } from "./serve.js";

const FLAGS: readonly FlagSpec[] = [
  { name: "timeout", kind: "int", min: 1, default: 10, help: "seconds to wait for an answer" },
  ...CLIENT_SECURITY_FLAGS,
];

export const STATUS_USAGE =
  "usage: nexus status [flags] <host:grpcPort>\n\n" +
  "Prints whether the node serves (SERVING or NOT_SERVING) and the cluster's members with their\n" +
  "status as the node sees them. Exit status 0 when it serves, 1 when not, 3 when unreachable.\n\n" +
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
    io.out(`${flags.positionals[0]!.trim()}: ${health}\n`);
    // Why it does not serve (a diverged replica says DIVERGED and at which check).
    if (own.reason !== "") io.out(`reason: ${own.reason}\n`);
    io.out(`leader: ${leader === "" ? "unknown" : leader}\n`);
    io.out("members:\n");
    for (const n of nodes) io.out(`${n.id} => ${n.url} ${n.status.toLowerCase()}\n`);
    return health === "SERVING" ? EXIT.OK : EXIT.FAILED;
  } catch (err) {
    if (!isNexusError(err)) throw err;
    io.err(`nexus status: ${err.code}: ${err.message}\n`);
    return exitCodeOf(err.code);
  } finally {
    client.close();
  }
}
