-- wake: put an outcome token back for the next waiter (the receiver answering a CloudBlue
-- call). Not a record script: it takes no prelude. notify_waiters in common.lua pushes the
-- same token when a script settles the outcome.
--
-- KEYS: [1] the record's outcome list
-- ARGV: [1] seconds the token lives
-- Returns 0.
redis.call('LPUSH', KEYS[1], '1')
redis.call('LTRIM', KEYS[1], 0, 9)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
