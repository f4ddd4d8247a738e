-- report_retries: count one more failed try to report the record, or restart the count.
--
-- KEYS: the record's keys (common.lua)
-- ARGV: [1] member  [2] '1' = count one more, '0' = restart the budget
-- Returns the tries counted since the budget last restarted (0 when there is no record:
--   nothing is written then, so no half-record appears).
local state = redis.call('HGET', RECORD, 'state')
if not state then return 0 end
if ARGV[2] == '0' then
  redis.call('HSET', RECORD, 'report_retries', 0)
  return 0
end
return redis.call('HINCRBY', RECORD, 'report_retries', 1)
