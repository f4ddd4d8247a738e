-- finish: a job's outcome, into the day's run and the subscription's period.
-- KEYS[1]  the job's hash                   ff:usage:job:<day>:<job>
-- KEYS[2]  the day's pending jobs           ff:usage:day:<day>:pending
-- KEYS[3]  the day's hash                   ff:usage:day:<day>
-- KEYS[4]  the subscription's period        ff:usage:period:<scope>:<id>:<period>
-- KEYS[5]  the period's closed set          ff:usage:closed:<period>
-- KEYS[6]  running totals                   ff:usage:stats
-- ARGV[1]  job name
-- ARGV[2]  claim token
-- ARGV[3]  outcome (posted, empty, refused, too_late, failed, source_error)
-- ARGV[4]  now (real, Unix seconds)
-- ARGV[5]  "1" when these were the closing totals (posted after the period ended)
-- ARGV[6]  member (<scope>:<id>)
-- ARGV[7]  message ("" for none)
-- ARGV[8]  day (yyyy-mm-dd)
-- ARGV[9]  seconds to keep the period's keys
-- ARGV[10] "1" when the outcome satisfies the period (posted, empty)
-- ARGV[11] lines posted
-- Returns "ok", "lost" (the claim is another's) or "done" (finished already).
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[2] then
  return 'lost'
end
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then
  return 'done'
end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HSET', KEYS[3], 'last_activity', ARGV[4])
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[3], 'state', 'done', 'finished_at', ARGV[4])
end
redis.call('HSET', KEYS[4], 'last_outcome', ARGV[3], 'last_at', ARGV[4], 'last_day', ARGV[8],
  'last_message', ARGV[7])
if ARGV[10] == '1' then
  redis.call('HSET', KEYS[4], 'last_success_at', ARGV[4], 'last_success_day', ARGV[8],
    'lines', ARGV[11])
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[4], 'closed_at', ARGV[4])
    redis.call('SADD', KEYS[5], ARGV[6])
    redis.call('EXPIRE', KEYS[5], ARGV[9])
  end
end
redis.call('EXPIRE', KEYS[4], ARGV[9])
redis.call('HINCRBY', KEYS[6], 'jobs_' .. ARGV[3], 1)
return 'ok'
