-- lock_acquire: take a lock if it is free, or extend it if it is already ours.
--
-- KEYS: [1] the lock
-- ARGV: [1] token (the owner)  [2] ttl in milliseconds
-- Returns 1 if the caller holds the lock now, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
