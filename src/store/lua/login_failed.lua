#!lua
-- Counts a failed login; locks the account once the failures reach the limit.
-- KEYS: the account's throttle key.  ARGV: max failures, first lock ms, longest lock ms,
-- window ms (failures are forgotten this long after the last one).  Returns the lock in ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local lock = 0
if failures >= tonumber(ARGV[1]) then
  lock = math.min(tonumber(ARGV[2]) * 2 ^ (failures - tonumber(ARGV[1])), tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'until', now + lock)
end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[4]), lock))
return lock
