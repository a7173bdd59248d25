/** The MySQL / MariaDB store (SQL statements). */
export { MySqlStore, refusalOf } from "./mysql-store.js";
export type { MySqlStoreFaults, MySqlStoreOptions } from "./mysql-store.js";
export { parseMySqlDsn } from "./dsn.js";
export type { MySqlDsn } from "./dsn.js";
