-- add_attempt: owe a result to an attempt created by us (POST .../attempts).
--
-- KEYS: the record's keys (common.lua)
-- ARGV: [1] member  [2] now  [3] attempt id  [4] detail id
-- Returns 1 if the attempt is new, 0 if it was known.
local now, attempt, detail = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local fresh = redis.call('HSETNX', ATTEMPTS, attempt,
  cjson.encode({detail = detail, status = 'pending', at = now}))
if fresh == 1 then redis.call('HSET', RECORD, 'attempt_id', attempt) end
return fresh
