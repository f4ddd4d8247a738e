-- ratelimit: the shared rate limit of every worker's posts (GCRA: a token every ARGV[1]
-- microseconds, at most ARGV[2] at once), on Redis's own clock so the workers' clocks do
-- not matter.
-- KEYS[1]  the limiter's state              ff:usage:ratelimit
-- ARGV[1]  microseconds per post
-- ARGV[2]  burst (posts that may leave at once)
-- Returns 0 when a post may leave now (and counts it), else the microseconds to wait.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local allowed_at = tat - burst * interval
if now < allowed_at then
  return allowed_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
  math.floor((new_tat - now) / 1000) + 1000)
return 0
