/** The MySQL / MariaDB store (SQL statements). */
export { MySqlStore } from "./mysql-store.js";
export type { MySqlStoreOptions } from "./mysql-store.js";
export type { MySqlStoreFaults } from "./ddl-protocol.js";
export { refusalOf } from "./statement-classifier.js";
export { parseMySqlDsn } from "./dsn.js";
export type { MySqlDsn } from "./dsn.js";
