-- requeue_lost: queue again an order in flight whose task message is nowhere in Redis (taken
-- off its queue by a worker that died before recording it, fault 4b), with a new message.
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the task's queue (list)
-- ARGV:
--   [1] member  [2] now  [3] detail id  [4] the state it was seen in  [5] its state_at as
--   read (the record must not have moved since it was looked at)  [6] the task message
--   [7] note (why)
-- Returns {action, previous state}: ok, refused (it moved on since), or missing.
-- A provisioning record keeps its call's deadline: the new message's claim waits for it.
local now, detail, seen, seen_at = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local message, text = ARGV[6], ARGV[7]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if state ~= seen or redis.call('HGET', RECORD, 'state_at') ~= seen_at
    or redis.call('HGET', RECORD, 'detail_id') ~= detail then
  return {'refused', state}
end
redis.call('HSET', RECORD, 'claim_task', '', 'claim_worker', '', 'claim_until', 0)
redis.call('RPUSH', KEYS[12], message)
set_state('queued', now, 'requeued', text)
return {'ok', state}
