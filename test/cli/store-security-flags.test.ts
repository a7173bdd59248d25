import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagError, parseFlags } from "../../src/cli/flags.js";
import {
  REDIS_GUARD_FLAGS,
  SQLITE_GUARD_FLAGS,
  redisGuardOptions,
  sqliteGuardOptions,
} from "../../src/cli/store-security-flags.js";
import { DEFAULT_REDIS_STEP_BUDGET } from "../../src/store/redis/lua-sandbox.js";
import { DEFAULT_SQLITE_STEP_BUDGET } from "../../src/store/sqlite/sqlite-store.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-flags-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const redis = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  redisGuardOptions(parseFlags(argv, REDIS_GUARD_FLAGS), env);

describe("store security flags", () => {
  it("each store has its own default step budget; -apply-step-budget sets it, 0 included", () => {
    assert.equal(
      sqliteGuardOptions(parseFlags([], SQLITE_GUARD_FLAGS)).applyStepBudget,
      DEFAULT_SQLITE_STEP_BUDGET,
    );
    assert.equal(redis([]).applyStepBudget, DEFAULT_REDIS_STEP_BUDGET);
    assert.equal(redis(["-apply-step-budget=0"]).applyStepBudget, 0);
    const s = sqliteGuardOptions(
      parseFlags(
        [
          "-apply-step-budget",
          "5",
          "-load-max-rows=7",
          "--load-max-bytes",
          "99",
          "-load-timeout-ms=100",
        ],
        SQLITE_GUARD_FLAGS,
      ),
    );
    assert.deepEqual(s, {
      applyStepBudget: 5,
      loadMaxRows: 7,
      loadMaxBytes: 99,
      loadTimeoutMs: 100,
    });
    assert.throws(() => parseFlags(["-apply-step-budget=-1"], SQLITE_GUARD_FLAGS), FlagError);
  });

  it("the Redis password comes from the flag, a file, or NEXUS_REDIS_PASSWORD, and only once", () => {
    const file = join(dir, "pw");
    writeFileSync(file, "from-file\nignored\n");
    assert.equal(redis([]).password, undefined);
    assert.equal(redis([], { NEXUS_REDIS_PASSWORD: "from-env" }).password, "from-env");
    assert.equal(
      redis(["-redisPassword", "from-flag"], { NEXUS_REDIS_PASSWORD: "from-env" }).password,
      "from-flag",
    );
    assert.equal(
      redis([`-redisPasswordFile=${file}`], { NEXUS_REDIS_PASSWORD: "from-env" }).password,
      "from-file",
    );
    assert.throws(() => redis(["-redisPassword=x", `-redisPasswordFile=${file}`]), FlagError);
    assert.throws(
      () => redis([`-redisPasswordFile=${join(dir, "missing")}`]),
      (e: unknown) => e instanceof FlagError && /ENOENT/.test(e.message),
    );
  });

  it("TLS is on with -redisTls or any TLS file; the files are read, and cert and key go together", () => {
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, "CA PEM");
    assert.equal(redis([]).tls, undefined);
    assert.deepEqual(redis(["-redisTls"]).tls, {});
    assert.equal(redis([`-redisTlsCa=${ca}`]).tls?.ca?.toString(), "CA PEM");
    assert.throws(() => redis([`-redisTlsCert=${ca}`]), FlagError);
    assert.throws(
      () => redis([`-redisTlsCa=${join(dir, "nope.pem")}`]),
      (e: unknown) => e instanceof FlagError && e.message.includes("-redisTlsCa"),
    );
  });
});
