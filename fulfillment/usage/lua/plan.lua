-- plan: create a day's run with its jobs, unless it exists (two planners never both
-- create it).
-- KEYS[1]  the day's hash                   ff:usage:day:<day>
-- KEYS[2]  the day's pending jobs           ff:usage:day:<day>:pending
-- KEYS[3]  every run, by planning time      ff:usage:days
-- ARGV[1]  day (yyyy-mm-dd)
-- ARGV[2]  real time (Unix seconds)
-- ARGV[3]  the usage clock's time (ISO)
-- ARGV[4]  seconds to keep the run's keys
-- ARGV[5…] job names
-- Returns 1 when created, 0 when the day already had a run.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local jobs = #ARGV - 4
redis.call('HSET', KEYS[1], 'day', ARGV[1], 'created_at', ARGV[2], 'now', ARGV[3],
  'jobs', jobs, 'last_activity', ARGV[2])
if jobs == 0 then
  redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'state', 'running')
  for i = 5, #ARGV, 5000 do
    redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 4999, #ARGV)))
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
