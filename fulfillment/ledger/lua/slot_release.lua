-- slot_release: give a vendor-call slot back (a no-op if its lease had ended), and fold the
-- call's duration into the backend's mean (what slot_acquire spaces its waiters by).
-- KEYS[1]  the backend's holders      ff:slots:<backend>
-- KEYS[2]  the backend's figures      ff:slots:<backend>:stats
-- ARGV[1]  the holder (claim token)
-- ARGV[2]  the lease (ms) it was taken with
-- Returns 1 if the holder still held the slot, else 0.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
local took = now - (tonumber(ends) - tonumber(ARGV[2]))
if took >= 0 then
  local mean = tonumber(redis.call('HGET', KEYS[2], 'avg') or '0')
  if mean <= 0 then
    mean = took
  else
    mean = 0.8 * mean + 0.2 * took
  end
  redis.call('HSET', KEYS[2], 'avg', string.format('%d', math.floor(mean)))
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
return 1
