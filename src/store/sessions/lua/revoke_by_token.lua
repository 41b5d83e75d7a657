#!lua
-- Revokes the session a (current or retired) token belongs to.
-- KEYS: token, user index.  ARGV: the user's key tag.  Returns 'session id|user id', or false.
local entry = redis.call('GET', KEYS[1])
if not entry then return false end
local sid = string.match(entry, '^([^|]+)|')
local skey = ARGV[1] .. 'session:' .. sid
local uid = redis.call('HGET', skey, 'uid')
if not uid then return false end
redis.call('DEL', skey)
redis.call('ZREM', KEYS[2], sid)
return sid .. '|' .. uid
