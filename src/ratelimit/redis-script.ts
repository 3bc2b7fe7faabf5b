/**
 * The one Lua script every Redis-held limit runs: read the state, apply the algorithm, write the
 * state with its expiry, all in one atomic round trip. It mirrors algorithms.ts statement for
 * statement (allowed test, new state, ttl), expires the key when its state would be as good as
 * none (PXAT on the script's own clock), and returns the state it found and the time it used,
 * from which the caller recomputes the full verdict with the same pure function.
 *
 * KEYS[1] the state key. ARGV: algorithm, limit, windowMs, burst, now (ms; negative: Redis TIME,
 * so every gateway instance shares one clock). Returns {found, seen, a, b, now, allowed}.
 */
export const DECIDE_SCRIPT = `
local alg = ARGV[1]
local limit = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if now < 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local found, s0, s1, s2 = 0, 0, 0, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local a, b, c = string.match(raw, '^(%d+):(%d+):(%d+)$')
  if a then found, s0, s1, s2 = 1, tonumber(a), tonumber(b), tonumber(c) end
end
local t = now
if found == 1 and s0 > now then t = s0 end
local allowed, n1, n2, ttl
if alg == 'fixed-window' then
  local index = math.floor(t / w)
  local count = 0
  if found == 1 and math.floor(s0 / w) == index then count = s1 end
  allowed = count < limit
  if allowed then count = count + 1 end
  n1, n2 = count, 0
  ttl = (index + 1) * w - t
elseif alg == 'sliding-window' then
  local index = math.floor(t / w)
  local current, previous = 0, 0
  if found == 1 then
    local seen = math.floor(s0 / w)
    if seen == index then current, previous = s1, s2
    elseif seen == index - 1 then previous = s1 end
  end
  local elapsed = t - index * w
  allowed = previous * (w - elapsed) + (current + 1) * w <= limit * w
  if allowed then current = current + 1 end
  n1, n2 = current, previous
  ttl = (index + 1) * w - t + w
elseif alg == 'token-bucket' then
  local capacity = burst * w
  local units = capacity
  if found == 1 then
    local idle = math.min(t - s0, math.ceil(capacity / limit))
    units = math.min(capacity, s1 + idle * limit)
  end
  allowed = units >= w
  if allowed then units = units - w end
  n1, n2 = units, 0
  ttl = math.ceil((capacity - units) / limit)
elseif alg == 'gcra' then
  local stepMs = math.floor(w / limit)
  local stepFrac = w % limit
  local tatMs, tatFrac = t, 0
  if found == 1 and (s1 > t or (s1 == t and s2 > 0)) then tatMs, tatFrac = s1, s2 end
  local nextMs, nextFrac = tatMs + stepMs, tatFrac + stepFrac
  if nextFrac >= limit then nextFrac, nextMs = nextFrac - limit, nextMs + 1 end
  allowed = (nextMs - t) * limit + nextFrac <= burst * w
  if allowed then tatMs, tatFrac = nextMs, nextFrac end
  n1, n2 = tatMs, tatFrac
  ttl = math.ceil(((tatMs - t) * limit + tatFrac) / limit)
else
  return redis.error_reply('unknown algorithm ' .. tostring(alg))
end
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.0f:%.0f:%.0f', t, n1, n2), 'PXAT', string.format('%.0f', t + ttl))
return {found, s0, s1, s2, now, allowed and 1 or 0}
`;

/**
 * Counts one use of a quota in a period when fewer than the limit are counted. KEYS[1] the period's
 * counter; ARGV: limit, period end (ms since the epoch; the key expires then). Returns {allowed, used}.
 */
export const QUOTA_SCRIPT = `
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= limit then return {0, used} end
used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return {1, used}
`;
