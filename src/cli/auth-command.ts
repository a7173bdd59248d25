/**
 * `nexus auth`: makes the lines of an auth file (-auth-file, src/security/auth.ts).
 *
 * - `nexus auth new-token <name> <permissions>`: a new random token on stderr, and its auth file
 *   line on stdout (append it: `nexus auth new-token ops read,write,admin >> auth.txt`).
 * - `nexus auth hash-token <name> <permissions>`: the line for a token of your own, read from
 *   stdin (so it is not in the shell's history or `ps`).
 */
import { hashToken, newToken, parseAuthFile } from "../security/auth.js";
import { isNexusError } from "../errors/index.js";
import { EXIT } from "./exit-codes.js";
import type { Io } from "./serve.js";

export const AUTH_USAGE = `usage: nexus auth new-token <name> <permissions>
       nexus auth hash-token <name> <permissions>   (the token on stdin)

Makes a line of the file given to nexus serve -auth-file: "<name> <sha256 hex of the token>
<permissions>", permissions comma-separated from read (Load, Check, ListNodes), write (Save) and
admin (membership, leadership, consistency checks). new-token prints a new random token on stderr
(give it to the client: repl -token or NEXUS_TOKEN) and the line on stdout; hash-token reads your
token from stdin. Then send SIGHUP to the node (or restart it) to load the file.

  nexus auth new-token ops read,write,admin >> auth.txt
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function runAuth(
  argv: readonly string[],
  io: Io,
  stdin: () => Promise<string> = readStdin,
): Promise<number> {
  const [sub, name, perms, ...extra] = argv;
  if (sub === "--help" || sub === "-h" || sub === "-help") {
    io.out(AUTH_USAGE);
    return EXIT.OK;
  }
  if (
    (sub !== "new-token" && sub !== "hash-token") ||
    name === undefined ||
    perms === undefined ||
    extra.length > 0
  ) {
    io.err(`nexus auth: give new-token or hash-token, a name and permissions\n\n${AUTH_USAGE}`);
    return EXIT.USAGE;
  }
  let token: string;
  if (sub === "new-token") token = newToken();
  else {
    token = (await stdin()).trim();
    if (token === "" || /\s/.test(token)) {
      io.err("nexus auth hash-token: give the token on stdin, one word without spaces\n");
      return EXIT.USAGE;
    }
  }
  const line = `${name} ${hashToken(token)} ${perms}`;
  try {
    parseAuthFile(line, "(the line made)");
  } catch (err) {
    if (!isNexusError(err, "BAD_CONFIG")) throw err;
    io.err(`nexus auth: ${err.message}\n`);
    return EXIT.USAGE;
  }
  if (sub === "new-token")
    io.err(`token for ${name} (keep it secret; it is not stored): ${token}\n`);
  io.out(`${line}\n`);
  return EXIT.OK;
}
