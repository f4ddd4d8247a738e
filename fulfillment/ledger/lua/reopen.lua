-- reopen: an attempt settled without a result (rejected) that Pax8 counts as acknowledged
-- is owed again; a reported record goes back to its outcome's state to be reported.
--
-- KEYS: the record's keys (common.lua)
-- ARGV: [1] member  [2] now  [3] attempt id  [4] note (why)
-- Returns the state after, or '' when the attempt was not rejected (nothing changed).
local now, attempt, text = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local raw = redis.call('HGET', ATTEMPTS, attempt)
if not raw or cjson.decode(raw).status ~= 'rejected' then return '' end
attempt_status(attempt, 'pending', now, nil)
local state = redis.call('HGET', RECORD, 'state')
if state == 'reported' then
  local outcome = redis.call('HGET', RECORD, 'outcome')
  state = outcome == 'Fail' and 'failed' or 'provisioned'
  set_state(state, now, 'reopened', attempt .. ': ' .. text)
else
  note(now, 'reopened', attempt .. ': ' .. text)
end
return state
