-- lock_release: delete a lock only if the caller's token still holds it.
--
-- KEYS: [1] the lock
-- ARGV: [1] token
-- Returns 1 if it was deleted, 0 if it had expired or another owner holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
