-- settle_delivery: forget a message its worker acknowledged (or dropped), unless it was
-- taken from that worker meanwhile.
--
-- Not a record script. Run by the worker's broker transport (worker/broker.py). A worker
-- declared gone (cut off, or paused, longer than WORKER_LOST_AFTER_SECONDS) had its messages
-- put back in their queues, maybe delivered again to another worker under the same tag: its
-- late acknowledgement must not erase the other's record of the message.
--
-- KEYS: [1] kombu's unacked hash  [2] its index  [3] the delivery holders
-- ARGV: [1] delivery tag  [2] the worker id of the one acknowledging
-- Returns 1 when forgotten, 0 when another worker holds it now (nothing changed).
local holder = redis.call('HGET', KEYS[3], ARGV[1])
local prefix = ARGV[2] .. ' '
if holder and string.sub(holder, 1, #prefix) ~= prefix then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
