#!lua
-- Revokes every session of a user except ARGV[2] (empty: all), in one step, so a session
-- created meanwhile cannot slip between a listing and the revocations.
-- KEYS: user index.  ARGV: the user's key tag, the session id to keep.  Returns the count
-- revoked.
local count = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    count = count + redis.call('DEL', ARGV[1] .. 'session:' .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
end
return count
