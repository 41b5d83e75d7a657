#!lua
-- Milliseconds the account stays locked (0 if it is not).  KEYS: the account's throttle key.
local locked_until = redis.call('HGET', KEYS[1], 'until')
if not locked_until then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(tonumber(locked_until) - now, 0)
