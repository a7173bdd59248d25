/**
 * The one script RedisStore sends with EVAL (saves) and EVAL_RO (loads). It never changes: the
 * user's snippet travels as an argument, already rewritten by lua-instrument.ts, and is compiled
 * by the script as a chunk of its own (loadstring), so no text of the user's can end the
 * wrapper's code, and Redis caches one script instead of one per snippet.
 *
 * ARGV: 1 mode ("save" or "load"), 2 metadata database, 3 user database (db.index), 4 index,
 * 5 term, 6 the rewritten snippet, 7 step budget (0: none), 8 seed for math.random, and for a
 * save with a request record key (src/store/request-records.ts) 9 request id, 10 payload hash,
 * 11 the record's keptFromMs ("" or absent: no record).
 *
 * What it does, in order:
 * 1. (save) Reads the applied index from the metadata database; an entry at or below it was
 *    applied already: `{'skip'}`.
 * 2. Selects the user database and compiles the snippet (a compile error is the result).
 * 3. Runs it with an environment of its own: Lua's libraries as copies (the snippet cannot
 *    change what the wrapper or later scripts use), a seeded math.random (the same numbers on
 *    every replica; Redis's own is not reset between scripts), no loadstring, load,
 *    collectgarbage or gcinfo, and a `redis` table whose call and pcall refuse what would leave
 *    the user database or change the server: SELECT, SWAPDB, MOVE, COPY ... DB, MIGRATE,
 *    FLUSHALL, scripting, administration; in a save also the commands whose results differ
 *    between servers (TIME, RANDOMKEY, SRANDMEMBER, SPOP, HRANDFIELD, ZRANDMEMBER).
 * 4. The step function counts the budget down at each loop iteration, function call and
 *    redis.call or redis.pcall; past zero it raises "apply budget exceeded". A snippet that catches that error gains nothing:
 *    every later step raises again, and the entry's result is the budget error all the same.
 * 5. (save) Selects the metadata database and records the index and term, whatever happened.
 * 6. Answers `{'ok', value}` (value copied to plain strings, numbers and arrays, read without
 *    metamethods) or `{'err', message}`; with a request id, records the result in the metadata
 *    database (hash `nexus:request:<id>`, sorted set `nexus:requests` by keptFromMs) in the same
 *    script, and answers `{'rec', '1' or '0', text}`: the result rendered as RedisStore renders
 *    replies (renderRedisReply), so the first answer and every retry's are the same text.
 *
 * The wrapper's own state lives in its locals, which no user code can name or reach (Redis's
 * Lua has no debug library).
 */

/**
 * Steps (loop iterations, function calls, redis.call) a snippet may take, by default: about
 * 0.15 s of plain Lua, or 3 s of a loop calling Redis at each turn. Here rather than in
 * redis-store.ts so that the command line can show it without loading the Redis driver.
 */
export const DEFAULT_REDIS_STEP_BUDGET = 5_000_000;

/** The budget error, also matched by RedisStore. */
export const BUDGET_EXCEEDED = "apply budget exceeded";

export const SANDBOX_SCRIPT = `
local mode, meta, udb, index, term = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local code, budget, seed = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local rid, rhash, rkept = ARGV[9], ARGV[10], ARGV[11]
local rcall, rpcall, error_reply = redis.call, redis.pcall, redis.error_reply
local type, tostring, tonumber, pcall, error, rawget, select = type, tostring, tonumber, pcall, error, rawget, select
local setmetatable, getmetatable, pairs, loadstring, floor = setmetatable, getmetatable, pairs, loadstring, math.floor
local lower, upper = string.lower, string.upper

if mode == 'save' then
  rcall('SELECT', meta)
  local applied = tonumber(rcall('HGET', 'nexus:applied', 'index') or '0')
  if applied >= tonumber(index) then return {'skip'} end
end

local function record()
  if mode == 'save' then
    rcall('SELECT', meta)
    rcall('HSET', 'nexus:applied', 'index', index, 'term', term)
  end
end

local left, exceeded = budget, false
local BUDGET = '${BUDGET_EXCEEDED}: the script ran more than ' .. budget ..
  ' steps (loop iterations, function calls and redis.call; the apply step budget, flag ' ..
  '-apply-step-budget). '
if mode == 'save' then
  BUDGET = BUDGET .. 'Writes it made before that stay, the same on every replica: Redis does ' ..
    'not roll back. Split the work, or raise -apply-step-budget on every node'
else
  BUDGET = BUDGET .. 'Loads have the same budget: make the script cheaper, or raise it'
end
local step
if budget > 0 then
  step = function()
    left = left - 1
    if left < 0 then
      exceeded = true
      error(BUDGET, 0)
    end
  end
else
  step = function() end
end

local DENIED = {}
for _, c in pairs({'select', 'swapdb', 'move', 'migrate', 'flushall', 'config', 'debug', 'shutdown',
    'script', 'function', 'fcall', 'fcall_ro', 'eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'client',
    'acl', 'module', 'replicaof', 'slaveof', 'save', 'bgsave', 'bgrewriteaof', 'failover', 'cluster',
    'monitor', 'sync', 'psync', 'latency', 'slowlog', 'auth', 'hello', 'reset', 'quit', 'multi',
    'exec', 'discard', 'watch', 'unwatch', 'wait', 'waitaof', 'subscribe', 'psubscribe',
    'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'readonly', 'readwrite', 'asking',
    'lastsave', 'info', 'memory', 'object'}) do
  DENIED[c] = true
end
local VARYING = {time = true, randomkey = true, srandmember = true, spop = true, hrandfield = true,
  zrandmember = true}

local function refusal(cmd, ...)
  if type(cmd) ~= 'string' then return nil end
  local c = lower(cmd)
  if DENIED[c] then
    return upper(c) .. ' is not allowed in a Nexus script: a script works in its own database ' ..
      '(db.index) and does not change the server'
  end
  if mode == 'save' and VARYING[c] then
    return upper(c) .. ' gives different results on different replicas; compute the value in ' ..
      'the client and pass it in the script'
  end
  if c == 'copy' then
    for i = 3, select('#', ...) do
      local a = select(i, ...)
      if type(a) == 'string' and lower(a) == 'db' then
        return 'COPY ... DB is not allowed in a Nexus script: a script works in its own database (db.index)'
      end
    end
  end
  return nil
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- math.random: the Park-Miller generator (exact in doubles), seeded by the entry.
local state = 1
local function reseed(x)
  state = floor(tonumber(x) or 0) % 2147483646 + 1
  -- The first outputs of a small seed are small: stir.
  for _ = 1, 4 do state = (state * 16807) % 2147483647 end
end
reseed(seed)
local function random(m, n)
  state = (state * 16807) % 2147483647
  local r = (state - 1) / 2147483646
  if m == nil then return r end
  if n == nil then m, n = 1, m end
  m, n = floor(m), floor(n)
  if m > n then error('bad argument to random (interval is empty)', 2) end
  return m + floor(r * (n - m + 1))
end

local lib = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type,
  unpack = unpack, xpcall = xpcall, _VERSION = _VERSION,
  getmetatable = function(x)
    if type(x) == 'string' then return nil end
    return getmetatable(x)
  end,
  string = copy(string), table = copy(table), math = copy(math), bit = copy(bit),
  cjson = copy(cjson), struct = copy(struct), cmsgpack = copy(cmsgpack),
  coroutine = copy(coroutine), KEYS = {}, ARGV = {},
  redis = {
    call = function(...)
      step()
      local why = refusal(...)
      if why then error({err = 'ERR ' .. why}) end
      return rcall(...)
    end,
    pcall = function(...)
      step()
      local why = refusal(...)
      if why then return error_reply('ERR ' .. why) end
      return rpcall(...)
    end,
    error_reply = redis.error_reply, status_reply = redis.status_reply,
    sha1hex = redis.sha1hex, log = redis.log, LOG_DEBUG = redis.LOG_DEBUG,
    LOG_VERBOSE = redis.LOG_VERBOSE, LOG_NOTICE = redis.LOG_NOTICE, LOG_WARNING = redis.LOG_WARNING,
  },
}
lib.math.random = random
lib.math.randomseed = reseed
local env = {}
lib._G = env
setmetatable(env, {
  __index = function(_, k)
    local v = lib[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function(_, k)
    error("Script attempted to create global variable '" .. tostring(k) .. "'", 2)
  end,
  __metatable = false,
})

-- A reply as Redis would convert it, read without metamethods, and bounded in depth.
local function plain(v, depth)
  local t = type(v)
  if t == 'string' or t == 'number' or t == 'boolean' then return v end
  if t ~= 'table' then return nil end
  if depth > 64 then error('the reply is nested more than 64 levels deep', 0) end
  local e = rawget(v, 'err')
  if type(e) == 'string' then return {err = e} end
  local ok = rawget(v, 'ok')
  if type(ok) == 'string' then return {ok = ok} end
  local out, i = {}, 1
  while true do
    local x = rawget(v, i)
    if x == nil then break end
    out[i] = plain(x, depth + 1)
    if out[i] == nil then out[i] = false end
    i = i + 1
  end
  return out
end

local function message(e)
  if exceeded then return BUDGET end
  local t = type(e)
  if t == 'string' then return e end
  if t == 'number' then return tostring(e) end
  if t == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' then return m end
    return 'the script raised an error that is a table without err'
  end
  return 'the script raised an error of type ' .. t
end

rcall('SELECT', udb)
local chunk, compileError = loadstring(code, '=user_script')
local answer
if chunk == nil then
  answer = {'err', 'Error compiling script: ' .. tostring(compileError)}
else
  local ran, result = pcall(chunk, env, step)
  if ran and not exceeded then
    local converted, reply = pcall(plain, result, 0)
    if not converted then
      answer = {'err', message(reply)}
    elseif reply == nil then
      answer = {'ok'}
    else
      answer = {'ok', reply}
    end
  else
    answer = {'err', message(result)}
  end
end
record()
if mode == 'save' and rid ~= nil and rid ~= '' then
  local concat, format = table.concat, string.format
  -- A reply as RedisStore's renderRedisReply shows it after Redis's conversion.
  local function render(v)
    local t = type(v)
    if t == 'string' then return v end
    if t == 'number' then return format('%d', v) end
    if t == 'boolean' then return v and '1' or '' end
    if t ~= 'table' then return '' end
    if v.err ~= nil then return 'ReplyError: ' .. v.err end
    if v.ok ~= nil then return v.ok end
    local parts = {}
    for i = 1, #v do parts[i] = render(v[i]) end
    return '[' .. concat(parts, ' ') .. ']'
  end
  local ok, text = '0', answer[2]
  if answer[1] == 'ok' then
    ok = '1'
    if answer[2] == nil then text = '' else text = render(answer[2]) end
  end
  rcall('HSET', 'nexus:request:' .. rid, 'hash', rhash, 'ok', ok, 'result', text, 'index', index,
    'kept', rkept)
  rcall('ZADD', 'nexus:requests', rkept, rid)
  return {'rec', ok, text}
end
return answer
`;
