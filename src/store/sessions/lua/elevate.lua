#!lua
-- Sets the assurance of a live session of the given user (after its second factor).
-- KEYS: session.  ARGV: user id, assurance (acr).  Returns 1 when the session was updated.
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'acr', ARGV[2])
return 1
