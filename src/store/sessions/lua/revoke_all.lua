-- Revokes every session of a user.  KEYS: user index.  ARGV: key prefix.  Returns the count.
local count = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  count = count + redis.call('DEL', ARGV[1] .. 'session:' .. sid)
end
redis.call('DEL', KEYS[1])
return count
