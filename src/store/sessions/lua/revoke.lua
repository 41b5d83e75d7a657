#!lua
-- Revokes one session if it belongs to the user.  KEYS: session, user index.
-- ARGV: user id, session id.  Returns 1 if revoked.
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
