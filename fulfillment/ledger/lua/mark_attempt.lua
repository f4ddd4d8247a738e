-- mark_attempt: set one attempt's status while it is still owed a result.
--
-- KEYS: the record's keys (common.lua)
-- ARGV:
--   [1] member  [2] now  [3] attempt id  [4] status (posting|pending)
--   [5] event ('' = no history entry)  [6] note
-- Returns 1, or 0 when the attempt is unknown.
local now, attempt, status, event, text = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local a = attempt_status(attempt, status, now, nil)
if a and event ~= '' then note(now, event, text) end
return a and 1 or 0
