-- claim: take a job of a day's run to post it.
-- KEYS[1]  the job's hash                   ff:usage:job:<day>:<job>
-- KEYS[2]  the day's pending jobs           ff:usage:day:<day>:pending
-- KEYS[3]  the day's hash                   ff:usage:day:<day>
-- KEYS[4]  the job's subscription           ff:usage:sub:<scope>:<id>
-- ARGV[1]  job name
-- ARGV[2]  claim token (the task id: a redelivery of the same message takes it back)
-- ARGV[3]  now (real, Unix seconds)
-- ARGV[4]  lease until (real, Unix seconds)
-- ARGV[5]  seconds to keep the job's hash
-- Returns {action, attempts, next_batch, lines, the subscription's fields...}: action
-- claimed, busy or done (the fields only when claimed).
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return {'done', 0, 0, ''}
end
local holder = redis.call('HGET', KEYS[1], 'holder')
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if holder and holder ~= ARGV[2] and lease > tonumber(ARGV[3]) then
  return {'busy', 0, 0, ''}
end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'lease_until', ARGV[4])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('HSET', KEYS[3], 'last_activity', ARGV[3])
local next_batch = tonumber(redis.call('HGET', KEYS[1], 'next_batch') or '0')
local lines = redis.call('HGET', KEYS[1], 'lines') or ''
local reply = {'claimed', attempts, next_batch, lines}
for _, value in ipairs(redis.call('HGETALL', KEYS[4])) do
  reply[#reply + 1] = value
end
return reply
