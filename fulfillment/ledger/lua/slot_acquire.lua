-- slot_acquire: take one of a backend's vendor-call slots (VENDOR_MAX_IN_FLIGHT), or say how
-- long to wait before asking again. On Redis's own clock (milliseconds).
-- KEYS[1]  the backend's holders: claim token -> when its lease ends    ff:slots:<backend>
-- KEYS[2]  the backend's waiters: order -> when it comes back to ask    ff:slots:<backend>:waiting
-- KEYS[3]  the backend's figures: avg (the recent calls' mean, ms)      ff:slots:<backend>:stats
-- ARGV[1]  the holder (the claim token of the call about to start)
-- ARGV[2]  the waiter (the order, <scope>:<id>)
-- ARGV[3]  the cap
-- ARGV[4]  the lease (ms): the call's deadline, past which the slot frees itself
-- ARGV[5]  the shortest wait (ms)   ARGV[6] the longest wait (ms)
-- ARGV[7]  a random number in [0, 1) from the caller (the wait's jitter)
-- Returns 0 when the slot is taken (or was already this holder's), else the ms to wait.
-- The wait grows with the waiters ahead, so that all of them together come back about
-- twice as often as slots free (2 x cap / the mean call), however long the queue behind the
-- cap is: often enough that a freed slot is soon taken, seldom enough that the waiting
-- costs the workers little.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cap = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local shortest = tonumber(ARGV[5])
local longest = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- A waiter that did not come back within its wait and as long again is gone (its order
-- was taken elsewhere, or its worker died): it no longer counts as ahead.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - longest)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
local ahead = redis.call('ZCARD', KEYS[2])
local mean = tonumber(redis.call('HGET', KEYS[3], 'avg') or '0')
if mean <= 0 then
  mean = math.min(lease, 500)
end
local wait = mean * (ahead + 1) / (2 * cap) * (0.75 + 0.5 * tonumber(ARGV[7]))
wait = math.floor(math.max(shortest, math.min(longest, wait)))
redis.call('ZADD', KEYS[2], now + wait, ARGV[2])
redis.call('PEXPIRE', KEYS[2], 2 * longest + 1000)
return wait
