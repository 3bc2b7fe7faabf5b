/**
 * The Lua scripts of the Redis session store (RedisSessionStore documents the keys). Each runs
 * atomically in Redis, so gateways sharing one Redis never see half a create, update or logout.
 * Times (`now`) come from the gateway's clock; Redis's own expiry (PEXPIRE, relative) only
 * collects what the gateway already treats as ended.
 */

/** Shared by the scripts: `drop` ends one session and takes it out of every index. */
const PRELUDE = `
local function drop(prefix, h)
  local k = prefix .. ':s:' .. h
  local f = redis.call('HMGET', k, 'sk', 'dk')
  if f[1] then redis.call('ZREM', f[1], h) end
  if f[2] and f[2] ~= '' then redis.call('SREM', f[2], h) end
  redis.call('ZREM', prefix .. ':live', h)
  redis.call('DEL', prefix .. ':lock:' .. h)
  return redis.call('DEL', k)
end
local function extend(k, ms)
  if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
end
`;

/**
 * KEYS: session. ARGV: prefix, id digest, now, idleMs. The sealed record, or nil when there is
 * none or it ended (then it is dropped); slides the idle deadline, capped by the absolute end.
 */
export const GET_SCRIPT = `${PRELUDE}
local f = redis.call('HMGET', KEYS[1], 'r', 'e', 'u')
if not f[1] then return false end
local now, idle = tonumber(ARGV[3]), tonumber(ARGV[4])
local e = tonumber(f[2])
if now >= e or now >= tonumber(f[3]) + idle then drop(ARGV[1], ARGV[2]); return false end
local left = math.min(idle, e - now)
redis.call('HSET', KEYS[1], 'u', ARGV[3])
redis.call('PEXPIRE', KEYS[1], left)
redis.call('ZADD', ARGV[1] .. ':live', now + left, ARGV[2])
return f[1]
`;

/**
 * KEYS: session. ARGV: prefix, id digest, now, idleMs, sealed record, version, createdAt,
 * expiresAt, subject index, sid index ('' for none), maxSessions, maxSessionsPerSubject,
 * verifier. 'full' or 'created'.
 */
export const CREATE_SCRIPT = `${PRELUDE}
local prefix, h = ARGV[1], ARGV[2]
local now, idle = tonumber(ARGV[3]), tonumber(ARGV[4])
local e = tonumber(ARGV[8])
local sk, dk = ARGV[9], ARGV[10]
local live = prefix .. ':live'
if redis.call('EXISTS', KEYS[1]) == 1 then drop(prefix, h) end
-- Past their deadline in the count: dropped when ended, scored again when a longer idle timeout
-- (a reload) keeps them alive; beyond the first 100 they only leave the count until their next use.
for _, g in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', now, 'LIMIT', 0, 100)) do
  local f = redis.call('HMGET', prefix .. ':s:' .. g, 'e', 'u')
  if f[1] and now < tonumber(f[1]) and now < tonumber(f[2]) + idle then
    redis.call('ZADD', live, math.min(tonumber(f[1]), tonumber(f[2]) + idle), g)
  else
    drop(prefix, g)
  end
end
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
if redis.call('ZCARD', live) >= tonumber(ARGV[11]) then return 'full' end
local left = math.min(idle, e - now)
if left <= 0 then return 'created' end
redis.call('HSET', KEYS[1], 'r', ARGV[5], 'v', ARGV[6], 'c', ARGV[7], 'e', ARGV[8], 'u', ARGV[3], 'sk', sk, 'dk', dk, 'w', ARGV[13])
redis.call('PEXPIRE', KEYS[1], left)
redis.call('ZADD', live, now + left, h)
extend(live, e - now)
if dk ~= '' then
  redis.call('SADD', dk, h)
  extend(dk, e - now)
end
local count = 1
for _, o in ipairs(redis.call('ZRANGE', sk, 0, -1)) do
  local f = redis.call('HMGET', prefix .. ':s:' .. o, 'e', 'u')
  if not f[1] then redis.call('ZREM', sk, o)
  elseif now >= tonumber(f[1]) or now >= tonumber(f[2]) + idle then drop(prefix, o)
  else count = count + 1 end
end
redis.call('ZADD', sk, ARGV[7], h)
extend(sk, e - now)
local cap = tonumber(ARGV[12])
if count > cap then
  for _, o in ipairs(redis.call('ZRANGE', sk, 0, -1)) do
    if count <= cap then break end
    if o ~= h then
      drop(prefix, o)
      count = count - 1
    end
  end
end
return 'created'
`;

/**
 * KEYS: session. ARGV: prefix, id digest, now, idleMs, sealed record, new version, expected
 * version, createdAt, expiresAt, subject index, sid index, verifier. 1 when replaced; 0 when
 * the session ended, another writer got there first, or the record is not the same login's.
 */
export const UPDATE_SCRIPT = `${PRELUDE}
local f = redis.call('HMGET', KEYS[1], 'v', 'c', 'e', 'u', 'sk', 'dk', 'w')
if not f[1] then return 0 end
local now, idle = tonumber(ARGV[3]), tonumber(ARGV[4])
local e = tonumber(f[3])
if now >= e or now >= tonumber(f[4]) + idle then
  drop(ARGV[1], ARGV[2])
  return 0
end
if f[1] ~= ARGV[7] or f[2] ~= ARGV[8] or f[3] ~= ARGV[9] or f[5] ~= ARGV[10] or f[6] ~= ARGV[11] or f[7] ~= ARGV[12] then return 0 end
local left = math.min(idle, e - now)
redis.call('HSET', KEYS[1], 'r', ARGV[5], 'v', ARGV[6], 'u', ARGV[3])
redis.call('PEXPIRE', KEYS[1], left)
redis.call('ZADD', ARGV[1] .. ':live', now + left, ARGV[2])
return 1
`;

/** KEYS: none. ARGV: prefix, id digest. Ends one session. */
export const DELETE_SCRIPT = `${PRELUDE}
return drop(ARGV[1], ARGV[2])
`;

/** KEYS: index. ARGV: prefix, 'sid' (a set) or 'sub' (a sorted set). Ends every session in the index; how many there were. */
export const DELETE_WHERE_SCRIPT = `${PRELUDE}
local members
if ARGV[2] == 'sid' then members = redis.call('SMEMBERS', KEYS[1]) else members = redis.call('ZRANGE', KEYS[1], 0, -1) end
local n = 0
for _, m in ipairs(members) do n = n + drop(ARGV[1], m) end
redis.call('DEL', KEYS[1])
return n
`;

/** KEYS: lock. ARGV: token. Deletes the lock only when it still holds this token (a lapsed holder never frees a newer one's). */
export const UNLOCK_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS: lock. ARGV: token, now, ttlMs. The lock's value is `<token>:<until>`, its end on the
 * gateways' clock (the one every other deadline of the store is on), so a lock lapses when that
 * clock says, not Redis's; PEXPIRE, with a margin, only collects what a crashed holder left. A
 * value without an end (not written here) counts as held. 1 when taken, 0 when held.
 */
export const LOCK_SCRIPT = `
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[1])
if v then
  local u = tonumber(string.match(v, ':(%d+)$'))
  if u == nil or u > now then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. (now + ttl), 'PX', ttl + 60000)
return 1
`;

/**
 * KEYS: names (a sorted set, score the time a name may be forgotten). ARGV: name digest, until,
 * now, maxNames. 1 the first time; 0 for a replay, or when full of names not yet due.
 */
export const ONCE_SCRIPT = `
local now, untilMs = tonumber(ARGV[3]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if untilMs <= now then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], untilMs, ARGV[1])
if redis.call('PTTL', KEYS[1]) < untilMs - now then redis.call('PEXPIRE', KEYS[1], untilMs - now) end
return 1
`;
