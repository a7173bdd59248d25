/*
 * The step budget: bounds how much work one SQL statement may do, deterministically. Nexus
 * compiles this file at the end of SQLite's amalgamation (scripts/build-sqlite.mjs), in a build of
 * better-sqlite3 whose SQLite has progress callbacks (better-sqlite3's own build leaves them out
 * with SQLITE_OMIT_PROGRESS_CALLBACK), and registers it on every connection through
 * SQLITE_EXTRA_INIT and sqlite3_auto_extension.
 *
 * SQLite calls a progress handler every STEP_BUDGET_GRANULARITY virtual-machine instructions of a
 * running statement; this one counts those calls while armed and, once the budget is spent,
 * returns nonzero, which makes SQLite stop the statement with SQLITE_INTERRUPT. The count depends
 * only on the statement's bytecode and the data it reads (the same SQLite, schema, data and
 * statistics give the same query plan and the same instructions), never on time: every replica
 * stops the same statement at the same instruction.
 *
 * SQL functions (SQLITE_DIRECTONLY: only in top-level statements, never from a trigger, a view
 * or the schema; Nexus refuses user statements that name anything containing "_nexus_"):
 *   _nexus_step_budget_arm(n)     starts counting, with a budget of n instructions (0: count
 *                                 only, never stop). Returns NULL.
 *   _nexus_step_budget_disarm()   stops counting; returns the instructions counted since the arm
 *                                 (a multiple of the granularity). More than n: the budget was
 *                                 spent and the statement running then was stopped.
 *   _nexus_step_budget_granularity()  STEP_BUDGET_GRANULARITY.
 *   _nexus_deadline_arm(ms)       for loads, which need no determinism: stops the statements that
 *                                 run after ms milliseconds from now (monotonic clock) with
 *                                 SQLITE_INTERRUPT (0: no deadline). Returns NULL.
 *   _nexus_deadline_disarm()      removes the deadline; returns 1 if it stopped a statement.
 *
 * SQLite keeps each prepared statement's instruction counter across runs and places the progress
 * calls on multiples of it: the caller prepares the statement it arms for (and the arm and disarm
 * statements, which run far fewer instructions than the granularity) afresh, so that the count
 * depends on nothing but the statement.
 */
#define STEP_BUDGET_GRANULARITY 1000

#ifdef _WIN32
#include <windows.h>
static sqlite3_int64 nexusMonotonicMs(void) { return (sqlite3_int64)GetTickCount64(); }
#else
#include <time.h>
static sqlite3_int64 nexusMonotonicMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif

typedef struct NexusStepBudget {
  int armed;                /* counting */
  sqlite3_int64 limit;      /* instructions allowed since the arm; 0: no limit */
  sqlite3_int64 used;       /* instructions counted since the arm */
  sqlite3_int64 deadlineMs; /* monotonic ms after which statements stop; 0: none */
  int deadlinePassed;       /* the deadline stopped a statement */
} NexusStepBudget;

static int nexusStepBudgetProgress(void *arg) {
  NexusStepBudget *b = (NexusStepBudget *)arg;
  /* Nonzero: SQLite stops the statement with SQLITE_INTERRUPT. */
  if (b->deadlineMs > 0 && nexusMonotonicMs() >= b->deadlineMs) {
    b->deadlinePassed = 1;
    return 1;
  }
  if (!b->armed) return 0;
  b->used += STEP_BUDGET_GRANULARITY;
  return b->limit > 0 && b->used > b->limit;
}

static void nexusStepBudgetArm(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NexusStepBudget *b = (NexusStepBudget *)sqlite3_user_data(ctx);
  (void)argc;
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0) {
    sqlite3_result_error(ctx, "_nexus_step_budget_arm takes an integer >= 0", -1);
    return;
  }
  b->limit = sqlite3_value_int64(argv[0]);
  b->used = 0;
  b->armed = 1;
  sqlite3_result_null(ctx);
}

static void nexusStepBudgetDisarm(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NexusStepBudget *b = (NexusStepBudget *)sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  b->armed = 0;
  sqlite3_result_int64(ctx, b->used);
}

static void nexusStepBudgetGranularity(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_int(ctx, STEP_BUDGET_GRANULARITY);
}

static void nexusDeadlineArm(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NexusStepBudget *b = (NexusStepBudget *)sqlite3_user_data(ctx);
  (void)argc;
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0) {
    sqlite3_result_error(ctx, "_nexus_deadline_arm takes an integer >= 0", -1);
    return;
  }
  b->deadlineMs = sqlite3_value_int64(argv[0]) == 0 ? 0
                                                     : nexusMonotonicMs() + sqlite3_value_int64(argv[0]);
  b->deadlinePassed = 0;
  sqlite3_result_null(ctx);
}

static void nexusDeadlineDisarm(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NexusStepBudget *b = (NexusStepBudget *)sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  b->deadlineMs = 0;
  sqlite3_result_int(ctx, b->deadlinePassed);
}

/* Registered with sqlite3_auto_extension: runs on every connection as it opens. */
static int nexusStepBudgetInit(sqlite3 *db, char **pzErrMsg, const void *pApi) {
  NexusStepBudget *b;
  int rc;
  const int flags = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  (void)pApi;
  b = (NexusStepBudget *)sqlite3_malloc(sizeof(NexusStepBudget));
  if (b == 0) return SQLITE_NOMEM;
  b->armed = 0;
  b->limit = 0;
  b->used = 0;
  b->deadlineMs = 0;
  b->deadlinePassed = 0;
  /* The first function owns the state: SQLite frees it when the connection closes. */
  rc = sqlite3_create_function_v2(db, "_nexus_step_budget_arm", 1, flags, b, nexusStepBudgetArm,
                                  0, 0, sqlite3_free);
  if (rc != SQLITE_OK) {
    sqlite3_free(b);
  } else {
    rc = sqlite3_create_function_v2(db, "_nexus_step_budget_disarm", 0, flags, b,
                                    nexusStepBudgetDisarm, 0, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "_nexus_step_budget_granularity", 0, flags, b,
                                    nexusStepBudgetGranularity, 0, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "_nexus_deadline_arm", 1, flags, b, nexusDeadlineArm, 0, 0,
                                    0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "_nexus_deadline_disarm", 0, flags, b,
                                    nexusDeadlineDisarm, 0, 0, 0);
  }
  if (rc != SQLITE_OK) {
    if (pzErrMsg != 0) *pzErrMsg = sqlite3_mprintf("could not register the step budget functions");
    return rc;
  }
  sqlite3_progress_handler(db, STEP_BUDGET_GRANULARITY, nexusStepBudgetProgress, b);
  return SQLITE_OK;
}

/* SQLITE_EXTRA_INIT: called at the end of sqlite3_initialize(). */
int nexus_extra_init(const char *unused) {
  (void)unused;
  return sqlite3_auto_extension((void (*)(void))nexusStepBudgetInit);
}
