/** NexusBackup.Restore replaces the whole replicated state: it needs the admin permission. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { permissionNeeded } from "../../src/security/auth.js";
import { NexusBackup } from "../../src/api/gen/nexus_backup_pb.js";

describe("NexusBackup.Restore permission", () => {
  it("needs admin (read and write tokens are refused)", () => {
    assert.equal(NexusBackup.method.restore.name, "Restore");
    assert.equal(permissionNeeded(NexusBackup.typeName, "Restore"), "admin");
  });
});
