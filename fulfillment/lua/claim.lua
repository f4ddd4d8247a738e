-- claim: take the record for provisioning one detail (at most one holder at a time).
--
-- KEYS: the record's keys (common.lua)
-- ARGV:
--   [1] member  [2] now  [3] detail id  [4] task id (the claim's holder)
--   [5] lease until: when the claim lapses if its holder dies (a timestamp)
--   [6] max claims: deliveries of one task message before the order is dead
--   [7] claim token: this claim's own, which finish, release and dead must present (a
--       redelivery of the same task id takes over with a new one, so the first holder,
--       if only cut off, can no longer write)
-- Returns {action, previous state}: action is one of fulfillment.states.Claimed
--   claimed, done, busy, stale, dead, dead_now, missing.
local now, detail, task = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local lease_until, max_claims, token = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if redis.call('HGET', RECORD, 'detail_id') ~= detail then return {'stale', state} end
if state == 'provisioned' or state == 'failed' or state == 'reported' then
  return {'done', state}
end
if state == 'dead' then return {'dead', state} end
if state == 'provisioning' then
  local holder = redis.call('HGET', RECORD, 'claim_task')
  local lease = tonumber(redis.call('HGET', RECORD, 'claim_until') or '0') or 0
  if holder ~= task and lease > now then return {'busy', state} end
end
if state == 'received' then
  -- The worker got the message before the receiver marked it: it was queued.
  set_state('queued', now, 'enqueued', '')
end
local claims = redis.call('HINCRBY', RECORD, 'claims', 1)
if claims > max_claims then
  local why = 'the task was lost with its worker ' .. (claims - 1) ..
    ' times in a row (killed, out of memory or over its time limit)'
  redis.call('HSET', RECORD, 'error', why, 'claim_task', '')
  set_state('dead', now, 'worker-lost', why)
  return {'dead_now', state}
end
redis.call('HSET', RECORD, 'claim_task', task, 'claim_token', token, 'claim_until', lease_until)
set_state('provisioning', now, 'claimed', task)
return {'claimed', state}
