-- claim: take the record for provisioning one detail (at most one holder at a time).
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's outcome list (optional: given when someone may wait for it)
-- ARGV:
--   [1] member  [2] now  [3] detail id  [4] task id (the claim's holder)
--   [5] lease until: when the claim lapses if its holder dies (a timestamp)
--   [6] max claims: deliveries of one task message before the order is dead
--   [7] call until: when the vendor call this claim starts may still be running, at the
--       latest (a timestamp: the adapter's own deadline)
--   [8] claim token: this claim's own, which finish, release and dead must present (a
--       redelivery of the same task id takes over with a new one, so the first holder,
--       if only cut off, can no longer write)
--   [9] the route the claimer expects (it took the call's deadline from that route's
--       adapter); '*': any (a claim made by hand, not by a worker)
--   [10] [11] [12] route, previous route and refusal to keep with a record written before
--       routes (it has none)
--   [13] worker: the id of the worker process that claims ('' unknown), shown to operators
--       with its heartbeat (fulfillment/ledger/liveness.py)
-- Returns {action, previous state}: action is one of fulfillment.states.Claimed
--   claimed, done, busy, wait, stale, dead, dead_now, missing; wait adds the seconds left;
--   reroute adds '0' and the record's route (nothing changed: claim again with that one);
--   claimed adds '0', '' and the record as claimed (its HGETALL), so the claimer needs no
--   second round trip to read it.
local now, detail, task = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local lease_until, max_claims, call_until, token = ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local expected, decided, decided_previous, refusal = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local worker = ARGV[13] or ''
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
-- An earlier call (its worker killed mid-call, or the call abandoned) may still be running
-- at the vendor, which may store its idempotency key only when it finishes: whoever asks,
-- no second call before that call's deadline.
local running = tonumber(redis.call('HGET', RECORD, 'call_until') or '0') or 0
if running > now then
  local left = running - now
  note(now, 'wait', string.format('an earlier vendor call may still be running for %.1fs', left))
  return {'wait', state, tostring(left)}
end
-- The order goes to the backend of the route it was recorded with, and no other.
local recorded = redis.call('HGET', RECORD, 'route') or ''
if expected ~= '*' and recorded ~= expected then return {'reroute', state, '0', recorded} end
if recorded == '' and decided ~= '' then
  redis.call('HSET', RECORD, 'route', decided, 'previous_route', decided_previous,
    'route_refusal', refusal)
end
if state == 'received' then
  -- The worker got the message before the receiver marked it: it was queued.
  set_state('queued', now, 'enqueued', '')
end
local claims = redis.call('HINCRBY', RECORD, 'claims', 1)
if claims > max_claims then
  local why = 'the task was lost with its worker ' .. (claims - 1) ..
    ' times in a row (killed, out of memory or over its time limit)'
  redis.call('HSET', RECORD, 'error', why, 'claim_task', '', 'claim_worker', '')
  set_state('dead', now, 'worker-lost', why)
  notify_waiters(KEYS[12])
  return {'dead_now', state}
end
redis.call('HSET', RECORD, 'claim_task', task, 'claim_token', token, 'claim_until', lease_until,
  'call_until', call_until, 'claim_worker', worker)
set_state('provisioning', now, 'claimed', task)
return {'claimed', state, '0', '', redis.call('HGETALL', RECORD)}
