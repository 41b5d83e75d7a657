#!lua
-- Opens a session and evicts the user's oldest beyond the limit, atomically.
-- KEYS: session, token, user index.  ARGV: session id, user id, ttl ms, lifetime ms,
-- max sessions, user agent, ip, the user's key tag, remember-expired ms, assurance (acr).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle_exp = now + tonumber(ARGV[3])
local abs_exp = now + tonumber(ARGV[4])
local expires = math.min(idle_exp, abs_exp)
redis.call('HSET', KEYS[1], 'uid', ARGV[2], 'cur', string.sub(KEYS[2], -64), 'created', now, 'used', now,
  'idle_exp', idle_exp, 'abs_exp', abs_exp, 'ua', ARGV[6], 'ip', ARGV[7], 'acr', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. expires, 'PXAT', expires + tonumber(ARGV[9]))
-- Drop index entries whose session has expired or been revoked, then add this one.
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('EXISTS', ARGV[8] .. 'session:' .. sid) == 0 then redis.call('ZREM', KEYS[3], sid) end
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
local evicted = 0
while redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[3])
  redis.call('DEL', ARGV[8] .. 'session:' .. oldest[1])
  evicted = evicted + 1
end
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]))
return evicted
