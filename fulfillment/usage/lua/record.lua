-- record: keep one post: the lines sent and Pax8's answer, and count it.
-- KEYS[1]  the subscription period's posts  ff:usage:posts:<scope>:<id>:<period>
-- KEYS[2]  the latest posts of all          ff:usage:recent
-- KEYS[3]  running totals                   ff:usage:stats
-- ARGV[1]  the record (JSON)
-- ARGV[2]  seconds to keep the period's posts
-- ARGV[3]  how many recent posts to keep
-- ARGV[4…] pairs: a total's name, how much to add
-- Returns the number of posts kept for the period.
local kept = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
return kept
