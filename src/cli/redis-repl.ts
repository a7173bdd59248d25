/**
 * `redis_repl`: the service on Redis, with the original's flags (`-redisHost`, `-redisPort`,
 * `-metadataDB`, `-grpcPort` and the `-nexus-*` flags).
 */
import { runServe } from "./serve.js";
import { REDIS } from "./stores.js";

export function main(argv: readonly string[]): Promise<number> {
  return runServe(
    argv,
    { name: "redis_repl", store: REDIS },
    {
      out: (s) => void process.stdout.write(s),
      err: (s) => void process.stderr.write(s),
    },
  );
}
