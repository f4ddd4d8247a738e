-- overdue: keep what the latest check found overdue (beat's exporter reads it at each
-- scrape).
-- KEYS[1]  the overdue figures              ff:usage:overdue
-- ARGV[1]  the period checked (yyyy-MM)
-- ARGV[2]  when it was checked (real, Unix seconds)
-- ARGV[3…] pairs: a scope, how many of its subscriptions are overdue
-- Returns 1.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'period', ARGV[1], 'checked_at', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'scope:' .. ARGV[i], ARGV[i + 1])
end
return 1
