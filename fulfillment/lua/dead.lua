-- dead: give up on the record.
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's outcome list (optional: given when someone may wait for it)
-- ARGV: [1] member  [2] now  [3] task id ('' = whoever holds it)  [4] error  [5] event
-- Returns {action, previous state}: ok, stale (another task holds it), or missing.
local now, task, error, event = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if task ~= '' and redis.call('HGET', RECORD, 'claim_task') ~= task then
  return {'stale', state}
end
redis.call('HSET', RECORD, 'error', error, 'claims', 0, 'claim_task', '', 'claim_until', 0)
set_state('dead', now, event, error)
notify_waiters(KEYS[12])
return {'ok', state}
