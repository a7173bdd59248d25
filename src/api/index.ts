/**
 * The gRPC service `nexus.api.Nexus` (`nexus-raft/api`): a client of a node's service, and the
 * server that puts a Replicator behind it (what `nexus serve` runs).
 *
 * ```ts
 * import { createNexusClient } from "nexus-raft/api";
 * const client = createNexusClient("127.0.0.1:9121");
 * await client.save(new TextEncoder().encode("insert into kv values ('a', '1')"));
 * client.close();
 * ```
 *
 * `Nexus` is the generated service descriptor, for a client of your own through
 * `@connectrpc/connect`'s `createClient(Nexus, transport)`.
 */
export { createNexusClient, parseServiceAddress } from "./client.js";
export type {
  ClientOptions,
  ConsistencyCheckInfo,
  ListedNode,
  NexusClient,
  NodeStatusInfo,
  RequestOutcomeInfo,
} from "./client.js";
export { createClientSession } from "./client-session.js";
export type { ClientSession } from "./client-session.js";
export { MIN_INDEX_ARG } from "./request-args.js";
export { startApiServer } from "./server.js";
export type { ApiServer, ApiServerLog, ApiServerOptions } from "./server.js";
export { Nexus } from "./gen/nexus_pb.js";
// Security of the service: tokens (-auth-file) and TLS files (-grpc-*-file), for startApiServer.
export { TokenAuth, hashToken, newToken, permissionNeeded } from "../security/auth.js";
export type { AuthDecision, Permission } from "../security/auth.js";
export { ReloadableTls, loadGrpcTls } from "../security/tls.js";
export type { TlsFiles, TlsLog, TlsMaterial } from "../security/tls.js";
