-- settle: an attempt got its result (or needs none); reported once nothing is owed.
--
-- KEYS: the record's keys (common.lua)
-- ARGV:
--   [1] member  [2] now  [3] attempt id ('' = none: just check what is owed)
--   [4] status (reported|superseded|rejected)  [5] result id  [6] note (why, if not reported)
-- Returns the record's state after.
local now, attempt, status, result, text = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
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
