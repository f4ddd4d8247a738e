-- deliver: a message was delivered to a worker: kombu's unacknowledged record of it, and who
-- holds it, in one step (kombu's QoS.append, plus the holder).
--
-- Not a record script. Run by the worker's broker transport (worker/broker.py).
--
-- KEYS:
--   [1] kombu's unacked hash   delivery tag -> JSON [message, exchange, routing key]
--   [2] kombu's unacked index  zset  delivery tag -> when delivered
--   [3] the delivery holders   hash  delivery tag -> '<worker id> <ref member>'
-- ARGV:
--   [1] delivery tag  [2] now (the consumer's clock: kombu's visibility sweep reads it)
--   [3] the unacked entry  [4] the holder ('<worker id> <ref member>'; member '' for a task
--   of no order)
-- Returns 1.
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 1
