-- restore_delivery: put a held message back on its queue, if the worker named still holds it.
--
-- Not a record script. Run by the worker's broker transport (worker/broker.py): for the
-- messages of a worker that is gone (the sweep), those a worker hands back (a warm shutdown,
-- a channel closing, a reject with requeue), and kombu's own visibility-timeout sweep.
--
-- KEYS:
--   [1] kombu's unacked hash  [2] its index  [3] the delivery holders
--   [4..] the queue(s) to push it to (lists; kombu's consumers pop from their right end)
-- ARGV:
--   [1] delivery tag  [2] the holder's worker id ('' = whoever holds it: kombu's visibility
--   sweep)  [3] the message to push (the entry's, marked redelivered)
--   [4] 'front' to push it where it is taken next, 'back' behind what waits
-- Returns 1 when restored, 0 when there was nothing to restore (acknowledged, restored
-- already) or another worker holds it now.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
if ARGV[2] ~= '' then
  local holder = redis.call('HGET', KEYS[3], ARGV[1])
  local prefix = ARGV[2] .. ' '
  if not holder or string.sub(holder, 1, #prefix) ~= prefix then return 0 end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
for i = 4, #KEYS do
  redis.call(ARGV[4] == 'front' and 'RPUSH' or 'LPUSH', KEYS[i], ARGV[3])
end
return 1
