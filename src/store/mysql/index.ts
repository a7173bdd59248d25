/** The MySQL / MariaDB store (SQL statements). */
export { MySqlStore } from "./mysql-store.js";
export type { MySqlStoreOptions } from "./mysql-store.js";
export type { MySqlTlsOptions } from "./tls.js";
export type { MySqlStoreFaults } from "./ddl-protocol.js";
export { refusalOf } from "./statement-classifier.js";
export { parseMySqlDsn, redactMySqlDsn } from "./dsn.js";
export type { MySqlDsn } from "./dsn.js";
export { MYSQL_PASSWORD_ENV, readMySqlSecrets } from "./secrets.js";
export type { MySqlSecretSources, MySqlSecrets } from "./secrets.js";
