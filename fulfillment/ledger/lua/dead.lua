-- dead: give up on the record.
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's outcome list (optional: given when someone may wait for it)
-- ARGV: [1] member  [2] now  [3] claim token ('' = whoever holds it)  [4] error  [5] event
-- Returns {action, previous state}: ok, stale (that claim no longer holds it), or missing.
local now, token, error, event = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if token ~= '' and not (state == 'provisioning'
    and redis.call('HGET', RECORD, 'claim_token') == token) then
  return {'stale', state}
end
redis.call('HSET', RECORD, 'error', error, 'claims', 0, 'claim_task', '',
  'claim_worker', '', 'claim_until', 0)
set_state('dead', now, event, error)
notify_waiters(KEYS[12])
return {'ok', state}
