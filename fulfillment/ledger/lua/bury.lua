-- bury: a gone worker that holds no message any more leaves the workers for the gone ones.
--
-- Not a record script. Run after a sweep put a dead worker's messages back in their queues,
-- and by a worker leaving cleanly (its messages went back as it closed).
--
-- KEYS:
--   [1] the workers  zset  [2] the workers gone  zset
--   [3] the delivery holders  hash  delivery tag -> '<worker id> <ref member>'
-- ARGV: [1] worker id  [2] lost after (seconds; 0 for a worker leaving: it is gone now)
-- Returns 1 when the worker moved, 0 when it beat since it was found dead, or still holds a
-- message (whose restore failed: the next sweep tries again).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local worker = ARGV[1]
local last = redis.call('ZSCORE', KEYS[1], worker)
if not last then return 0 end
local lost_after = tonumber(ARGV[2])
if lost_after > 0 and tonumber(last) >= now - lost_after then return 0 end
local prefix = worker .. ' '
for _, holder in ipairs(redis.call('HVALS', KEYS[3])) do
  if string.sub(holder, 1, #prefix) == prefix then return 0 end
end
redis.call('ZREM', KEYS[1], worker)
redis.call('ZADD', KEYS[2], last, worker)
return 1
