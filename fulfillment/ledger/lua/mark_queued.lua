-- mark_queued: received -> queued once the caller published the task.
--
-- KEYS: the record's keys (common.lua)
-- ARGV: [1] member  [2] now  [3] detail id (only a record still on this detail moves)
-- Returns the state after ('' when there is no record).
local now, detail = tonumber(ARGV[2]), ARGV[3]
local state = redis.call('HGET', RECORD, 'state')
if state == 'received' and redis.call('HGET', RECORD, 'detail_id') == detail then
  set_state('queued', now, 'enqueued', '')
  return 'queued'
end
return state or ''
