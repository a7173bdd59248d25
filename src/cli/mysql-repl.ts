/**
 * `mysql_repl`: the service on MySQL or MariaDB, with the original's flags (`-mysqlConnUrl`,
 * `-grpcPort` and the `-nexus-*` flags).
 */
import { runServe } from "./serve.js";
import { MYSQL } from "./stores.js";

export function main(argv: readonly string[]): Promise<number> {
  return runServe(
    argv,
    { name: "mysql_repl", store: MYSQL },
    {
      out: (s) => void process.stdout.write(s),
      err: (s) => void process.stderr.write(s),
    },
  );
}
