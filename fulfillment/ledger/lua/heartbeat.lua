-- heartbeat: a worker records that it lives, and learns which workers do not.
--
-- Not a record script. Time is Redis's own (TIME), for every worker alike: a worker's clock
-- never decides whether another is alive.
--
-- KEYS:
--   [1] the workers       zset    worker id -> last heartbeat (alive, or gone and not swept)
--   [2] the workers gone  zset    worker id -> last heartbeat (swept; kept a day)
--   [3] the scan throttle string  present while a look for lost messages is recent
--   [4] the queued records        zset (the state set of 'queued')
--   [5] the provisioning records  zset (the state set of 'provisioning')
-- ARGV:
--   [1] worker id  [2] lost after (seconds)  [3] look for lost messages at most every (ms)
--   [4] at most this many records of each state in that look
--   [5] '1' when this worker may look (it trusts its judgement: worker/liveness.py), else '0'
-- Returns {now, dead, look}: dead lists the workers whose last heartbeat is older than
--   ARGV[2] and who are not swept yet (at most 100); look is false, or, when this call
--   takes the throttle, {live workers, queued records, provisioning records}, the records
--   being those in their state for longer than ARGV[2], oldest first. A worker that may not
--   look leaves the throttle to one that may.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local me, lost_after, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
if redis.call('ZADD', KEYS[1], now, me) == 1 then
  redis.call('ZREM', KEYS[2], me)  -- back after it was swept (cut off, or paused, that long)
end
local before = '(' .. string.format('%.6f', now - lost_after)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', before, 'LIMIT', 0, 100)
local look = false
if ARGV[5] == '1' and redis.call('SET', KEYS[3], me, 'NX', 'PX', ARGV[3]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now - 86400))
  look = {
    redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%.6f', now - lost_after), '+inf'),
    redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', before, 'LIMIT', 0, most),
    redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', before, 'LIMIT', 0, most),
  }
end
return {string.format('%.6f', now), dead, look}
