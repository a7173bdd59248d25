/**
 * Which server errors are an entry's result and which are conditions of the server.
 *
 * A deterministic error of the user's statement (bad SQL, a missing column, a duplicate key) is
 * the same on every replica, so it is the entry's result. A condition of the server or its
 * configuration (connection lost, deadlock, lock wait timeout, disk full, access denied, read-only)
 * may be met by one replica and not another: it is never a result; the batch is rolled back and
 * retried as StoreUnavailableError.
 */

/** The fields of a mysql2 error that matter here. */
export interface MySqlError {
  readonly errno?: number;
  readonly code?: string;
  readonly sqlMessage?: string;
  readonly message: string;
  readonly fatal?: boolean;
}

/** Server error numbers that are conditions of the server, never an entry's result. */
const SERVER_CONDITIONS = new Set([
  1015, 1016, 1017, 1020, 1021, 1030, 1034, 1035, 1036, 1037, 1038, 1040, 1041, 1044, 1045, 1053,
  1114, 1135, 1142, 1143, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1180, 1194,
  1195, 1203, 1205, 1206, 1213, 1226, 1227, 1290, 1317, 1370, 1412, 1615, 1637, 1712, 1792, 1836,
  1877, 1927, 1969, 2006, 2013, 3024, 4031,
]);

/** Whether `err` is a deterministic error of the user's statement (the same on every replica). */
export function isStatementError(err: unknown): err is MySqlError {
  const e = err as MySqlError;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.errno === "number" &&
    typeof e.sqlMessage === "string" &&
    e.fatal !== true &&
    !SERVER_CONDITIONS.has(e.errno)
  );
}

/** The server's message of `err` (mysql2's `sqlMessage`), else its message. */
export function messageOf(err: unknown): string {
  const e = err as MySqlError;
  return e.sqlMessage ?? e.message ?? String(err);
}
