#!lua
-- Presents a refresh token: rotates it, replays the successor within grace, or detects reuse.
-- KEYS: presented token, successor token.  ARGV: sealed successor, ttl ms, grace ms,
-- user agent, ip, the user's key tag, remember-expired ms.
-- Returns {outcome, session id, user id, sealed successor, assurance (acr)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entry = redis.call('GET', KEYS[1])
if not entry then return {'invalid'} end
local sid, exp = string.match(entry, '^([^|]+)|(%d+)$')
if now >= tonumber(exp) then return {'expired'} end
local skey = ARGV[6] .. 'session:' .. sid
local s = redis.call('HMGET', skey, 'uid', 'cur', 'prev', 'sealed', 'retired', 'abs_exp', 'acr')
local uid = s[1]
if not uid then return {'invalid'} end
local presented = string.sub(KEYS[1], -64)
local acr = s[7] or 'aal1'
local ukey = ARGV[6] .. 'sessions'
if s[2] == presented then
  local abs_exp = tonumber(s[6])
  local expires = math.min(now + tonumber(ARGV[2]), abs_exp)
  redis.call('HSET', skey, 'cur', string.sub(KEYS[2], -64), 'prev', presented, 'sealed', ARGV[1],
    'retired', now, 'used', now, 'idle_exp', now + tonumber(ARGV[2]), 'ua', ARGV[4], 'ip', ARGV[5])
  redis.call('PEXPIREAT', skey, expires)
  redis.call('SET', KEYS[2], sid .. '|' .. expires, 'PXAT', expires + tonumber(ARGV[7]))
  return {'rotated', sid, uid, '', acr}
end
if s[3] == presented and now - tonumber(s[5]) <= tonumber(ARGV[3]) then
  return {'grace', sid, uid, s[4], acr}
end
redis.call('DEL', skey)
redis.call('ZREM', ukey, sid)
return {'reused', sid, uid}
