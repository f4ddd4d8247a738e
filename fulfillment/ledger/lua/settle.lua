-- settle: an attempt got its result (or needs none); reported once nothing is owed.
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's report lock (optional: released with the settling, in the same
--             round trip, when the caller is done with it)
-- ARGV:
--   [1] member  [2] now  [3] attempt id ('' = none: just check what is owed)
--   [4] status (reported|superseded|rejected)  [5] result id  [6] note (why, if not reported)
--   [7] the report lock's token (with KEYS[12]: deleted only if it is still this one's)
-- Returns the record's state after.
local now, attempt, status, result, text = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if KEYS[12] and redis.call('GET', KEYS[12]) == ARGV[7] then redis.call('DEL', KEYS[12]) end
attempt_status(attempt, status, now, result)
if attempt ~= '' and status ~= 'reported' then
  note(now, 'result-' .. status, attempt .. ': ' .. text)
end
local state = redis.call('HGET', RECORD, 'state')
if state ~= 'provisioned' and state ~= 'failed' then return state or '' end
local detail = redis.call('HGET', RECORD, 'outcome_detail_id')
local all = redis.call('HGETALL', ATTEMPTS)
for i = 2, #all, 2 do
  local a = cjson.decode(all[i])
  if a.detail == detail and (a.status == 'pending' or a.status == 'posting') then
    return state
  end
end
redis.call('HSET', RECORD, 'reported_at', now, 'report_retries', 0)
set_state('reported', now, 'reported', attempt)
return 'reported'
