/**
 * The flags of the client programs (repl, nexus status) for a secured gRPC service: TLS
 * (`-cacert`, `-cert`, `-key`, as curl names them) and a bearer token (`-token` or NEXUS_TOKEN).
 */
import { readFileSync } from "node:fs";
import type { ClientOptions } from "../api/client.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, str } from "./flags.js";

export const CLIENT_SECURITY_FLAGS: readonly FlagSpec[] = [
  {
    name: "cacert",
    kind: "string",
    help: "connect with TLS, trusting the CA certificate(s) in this PEM file (the node's -grpc-cert-file issuer)",
  },
  {
    name: "cert",
    kind: "string",
    help: "client certificate (PEM), for a node with -grpc-trusted-ca-file; with -key",
  },
  { name: "key", kind: "string", help: "the private key of -cert (PEM)" },
  {
    name: "token",
    kind: "string",
    help: "bearer token for a node with -auth-file (default: the NEXUS_TOKEN environment variable)",
  },
];

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FlagError(`flag -${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The client options these flags give. Throws FlagError naming the flag. */
export function clientSecurityOf(
  f: ParsedFlags,
  env: NodeJS.ProcessEnv = process.env,
): Pick<ClientOptions, "tls" | "token"> {
  const [cacert, cert, key] = ["cacert", "cert", "key"].map((n) => {
    const v = str(f, n)?.trim();
    return v === undefined || v === "" ? undefined : v;
  });
  if ((cert === undefined) !== (key === undefined)) {
    throw new FlagError("a client certificate needs both -cert and -key");
  }
  const token = (str(f, "token") ?? env["NEXUS_TOKEN"])?.trim();
  if (token !== undefined && token !== "" && /\s/.test(token)) {
    throw new FlagError("the token (-token or NEXUS_TOKEN) must not contain spaces");
  }
  const tls =
    cacert === undefined && cert === undefined
      ? undefined
      : {
          ...(cacert === undefined ? {} : { ca: readPem("cacert", cacert) }),
          ...(cert === undefined ? {} : { cert: readPem("cert", cert), key: readPem("key", key!) }),
        };
  return {
    ...(tls === undefined ? {} : { tls }),
    ...(token === undefined || token === "" ? {} : { token }),
  };
}
