-- register: note a subscription active (a provisioning Success) or ended (a Deprovision
-- Success).
-- KEYS[1]  the subscription's hash          ff:usage:sub:<scope>:<id>
-- KEYS[2]  every subscription, by start     ff:usage:subs
-- ARGV[1]  member (<scope>:<id>)
-- ARGV[2]  event: "active" or "ended"
-- ARGV[3]  when (usage clock, Unix seconds)
-- ARGV[4]  fields to set (JSON object of strings: scope, id, product_id, ...)
-- Returns 1.
local fields = cjson.decode(ARGV[4])
for name, value in pairs(fields) do
  redis.call('HSET', KEYS[1], name, value)
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
if ARGV[2] == 'ended' then
  redis.call('HSETNX', KEYS[1], 'ended_at', ARGV[3])
  -- Provisioned before this worker kept a registry: active since before anything we know.
  redis.call('HSETNX', KEYS[1], 'activated_at', '0')
else
  redis.call('HSETNX', KEYS[1], 'activated_at', ARGV[3])
end
local since = redis.call('HGET', KEYS[1], 'activated_at')
redis.call('ZADD', KEYS[2], tonumber(since), ARGV[1])
return 1
